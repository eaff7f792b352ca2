"""Faults an operator meets: the service's supervisor killed while its worker keeps serving."""

from __future__ import annotations

import json
import os
import signal
import socket
import time
from pathlib import Path

import psutil

from tests.helpers import GENTOO, free_port, run_kit, service_leftovers


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
