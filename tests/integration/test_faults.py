"""Faults an operator meets: a killed supervisor or worker, a model the service refuses."""

from __future__ import annotations

import json
import os
import signal
import socket
import time
from dataclasses import asdict
from pathlib import Path

import psutil
import pytest

from tests.helpers import (
    GENTOO,
    bentoml_serve,
    free_port,
    promote,
    run_kit,
    service_leftovers,
    start_kit,
    stop_promoted,
    write_figures,
)

pytestmark = pytest.mark.reliability  # `make reliability` runs and reports these


def _wait(condition: object, timeout: float = 60) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if condition():  # type: ignore[operator]
            return True
        time.sleep(0.1)
    return False


def _port_open(port: int) -> bool:
    with socket.socket() as sock:
        sock.settimeout(2)
        return sock.connect_ex(("127.0.0.1", port)) == 0


def test_a_killed_supervisor_is_reported_and_kit_stop_ends_its_orphan(kit_home: Path) -> None:
    port = free_port()
    run_kit("promote", "--port", str(port), home=kit_home, timeout=300, check=True)
    state = json.loads((kit_home / "state.json").read_text())
    try:
        os.kill(state["pid"], signal.SIGKILL)  # the supervisor only: its worker keeps the port
        assert _wait(lambda: not psutil.pid_exists(state["pid"]) or _zombie(state["pid"]))
        # The serving worker outlives its supervisor (NOTES-reliability); the standby leaves
        assert _wait(lambda: len(service_leftovers(state["pid"], state["service_id"])) == 1)
        orphans = service_leftovers(state["pid"], state["service_id"])
        assert orphans, "BentoML's worker outlives its supervisor (NOTES-reliability)"

        status = run_kit("status", home=kit_home)
        assert status.returncode == 4, status.stdout + status.stderr  # not "ready", exit 0
        assert f"supervisor (pid {state['pid']}) is gone" in status.stderr
        assert "run `kit stop`, then `kit promote`" in status.stderr
        report = json.loads(run_kit("status", "--json", home=kit_home).stdout)
        assert report["service"]["supervisor_alive"] is False
        assert set(report["service"]["orphans"]) == set(orphans)

        run_kit("stop", home=kit_home, check=True)
        assert _wait(lambda: not service_leftovers(state["pid"], state["service_id"]))
        assert _wait(lambda: not _port_open(port)), "the orphan's port is free again"

        run_kit("promote", "--port", str(port), home=kit_home, timeout=300, check=True)
        answer = run_kit("predict", "--json", json.dumps(GENTOO), home=kit_home, check=True)
        assert json.loads(answer.stdout)["label"] == "Gentoo"
        write_figures(
            "supervisor_killed",
            {
                "orphaned_workers": len(orphans),
                "kit_status_exit": status.returncode,
                "orphans_after_kit_stop": 0,
                "port_free_after_kit_stop": True,
                "promote_again_on_the_port": "served",
            },
        )
    finally:
        run_kit("stop", home=kit_home)
        latest = (
            json.loads((kit_home / "state.json").read_text())
            if (kit_home / "state.json").exists()
            else state
        )
        assert not service_leftovers(latest["pid"], latest["service_id"])


def _zombie(pid: int) -> bool:
    try:
        return psutil.Process(pid).status() == psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return True


def test_a_killed_worker_is_replaced_by_its_standby_within_5_s(kit_home: Path) -> None:
    from tests.worker_kill_probe import kill_worker_under_load, service_workers

    promoted = promote(kit_home)
    state = json.loads((kit_home / "state.json").read_text())
    try:
        assert _wait(lambda: len(service_workers(state["service_id"], state["pid"])) == 2)
        report = kill_worker_under_load(promoted.url, GENTOO, state["service_id"], state["pid"])
        write_figures("worker_killed", {**asdict(report), "goal_s": 5.0})
        # Only requests in flight on the killed worker may fail (8 callers: at most 8).
        assert report.failed <= 8, report.failures
        assert report.back_after_s is not None and report.back_after_s < 5.0, report
        assert report.longest_new_wait_s < min(5.0, report.client_timeout_s), report
        # BentoML starts a new standby (quick check: seconds, not BentoML's 10 s + boot)
        assert _wait(lambda: len(service_workers(state["service_id"], state["pid"])) == 2)
    finally:
        stop_promoted(promoted)


def _tamper_store_copy(home: Path) -> None:
    run_kit("promote", "--port", str(free_port()), home=home, timeout=300, check=True)
    run_kit("stop", home=home, check=True)  # the model is in the BentoML store now
    stored = home / "bentoml/models/penguins/v1/model.joblib"
    stored.write_bytes(stored.read_bytes() + b"tampered")


def test_kit_serve_refuses_a_tampered_store_copy_and_exits(kit_home: Path, tmp_path: Path) -> None:
    _tamper_store_copy(kit_home)
    server = start_kit("serve", "--port", str(free_port()), home=kit_home, log=tmp_path / "s.log")
    try:
        code = server.wait_exit(timeout=60)
    finally:
        server.stop()
    assert code != 0, server.output()
    assert "sha256" in server.output() and "cannot be served" in server.output()
    assert not service_leftovers(server.proc.pid, "")


def test_a_service_that_cannot_load_its_model_stops_the_whole_server(
    kit_home: Path, tmp_path: Path
) -> None:
    """As a container runs it (`bentoml serve`, no kit in front): the worker's refusal ends the
    server, exit 3, instead of a restart every few seconds forever."""
    _tamper_store_copy(kit_home)
    service_id = "refusal-test"
    server = bentoml_serve(kit_home, service_id, tmp_path / "b.log")
    started = time.monotonic()
    try:
        code = server.wait_exit(timeout=90)
    finally:
        server.stop()
    write_figures(
        "model_refused",
        {"exit_code": code, "exited_after_s": round(time.monotonic() - started, 2)},
    )
    assert code == 3, server.output()
    assert "the service refuses to start" in server.output() and "sha256" in server.output()
    assert _wait(lambda: not service_leftovers(server.proc.pid, service_id), timeout=20)
