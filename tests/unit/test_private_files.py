"""The service's state, channel and log files are owner-only (0600), even under umask 022."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from app_production.channel import Channel
from app_production.private_files import open_private_log, write_private
from app_production.state import ServiceState

pytestmark = pytest.mark.reliability  # `make reliability` runs and reports these


def mode(path: Path) -> int:
    return path.stat().st_mode & 0o777


def test_files_are_written_owner_only_and_atomically(tmp_path: Path) -> None:
    previous = os.umask(0o022)
    try:
        target = tmp_path / "deep" / "state.json"
        write_private(target, "{}\n")
        assert mode(target) == 0o600 and target.read_text() == "{}\n"
        target.chmod(0o644)  # a file left by an older kit
        write_private(target, "[]\n")
        assert mode(target) == 0o600 and target.read_text() == "[]\n"
        assert [p.name for p in target.parent.iterdir()] == ["state.json"], "no tmp file left"
        with open_private_log(tmp_path / "logs" / "service.log") as log:
            log.write("started\n")
        assert mode(tmp_path / "logs" / "service.log") == 0o600
    finally:
        os.umask(previous)


def test_the_state_and_channel_files_use_it(tmp_path: Path) -> None:
    state = ServiceState(
        url="http://127.0.0.1:3000", host="127.0.0.1", port=3000, pid=1, model="m:v1", bento="b",
        log=str(tmp_path / "log"), started_at="now",
    )  # fmt: skip
    state.save(tmp_path / "state.json")
    Channel(model="m:v1").save(tmp_path / "channel.json")
    assert mode(tmp_path / "state.json") == mode(tmp_path / "channel.json") == 0o600
