"""kill -9 of a promoted service's worker under 8 callers: what the callers see.

Used by tests/integration/test_faults.py, and runnable on its own to compare configurations:

    .venv/bin/python -m tests.worker_kill_probe HOME   # HOME: a kit home with a trained model

Each caller is an `app_production.client.RemotePredictor` without retries (a failure shows as
one). Figures: requests that failed, the longest a request started after the kill waited, and
the time from the kill until a request started after it succeeds ("traffic is back").
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import sys
import threading
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

import psutil

CALLERS = 8


@dataclass
class KillReport:
    workers_before: list[int]
    killed: int
    failed: int = 0
    failures: list[str] = field(default_factory=list)
    answered: int = 0
    longest_new_wait_s: float = 0.0  # a request started after the kill: start to its outcome
    back_after_s: float | None = None  # kill to the first success of a request sent after it
    new_worker: int | None = None
    client_timeout_s: float = 0.0


def service_workers(service_id: str, supervisor: int) -> list[int]:
    """The worker processes: marked with the service's KIT_SERVICE_ID, not the supervisor."""
    found = []
    for process in psutil.process_iter():
        try:
            if process.pid == supervisor or process.status() == psutil.STATUS_ZOMBIE:
                continue
            if process.environ().get("KIT_SERVICE_ID") != service_id:
                continue
            if "_bentoml_impl.worker" in " ".join(process.cmdline()):
                found.append(process.pid)
        except psutil.Error:
            continue
    return sorted(found)


def serving_worker(workers: list[int], port: int) -> int:
    """The worker that holds the callers' connections (a standby accepts none)."""
    for pid in workers:
        with contextlib.suppress(psutil.Error):
            for conn in psutil.Process(pid).net_connections(kind="tcp"):
                if conn.status == psutil.CONN_ESTABLISHED and conn.laddr.port == port:
                    return pid
    raise AssertionError(f"no worker of {workers} holds a connection on port {port}")


def kill_worker_under_load(
    url: str, record: dict[str, object], service_id: str, supervisor: int, watch_s: float = 20.0
) -> KillReport:
    """8 callers in a loop; kill -9 one worker once they all answered; watch for `watch_s`."""
    from app_production.client import RemotePredictor

    workers = service_workers(service_id, supervisor)
    assert workers, "no worker carries the service's KIT_SERVICE_ID"
    report = KillReport(workers_before=workers, killed=0)
    lock = threading.Lock()
    stop = threading.Event()
    warm = threading.Barrier(CALLERS + 1)
    killed_at: list[float] = []
    timeouts: list[float] = []

    def caller() -> None:
        client = RemotePredictor(url, retries=0, timeout=(3.05, 30.0))
        timeouts.append(client.timeout[1])
        try:
            client.predict([record])
            warm.wait(60)
            while not stop.is_set():
                started = time.monotonic()
                try:
                    client.predict([record])
                    ok, why = True, ""
                except Exception as exc:  # counted, never raised: the figures are the point
                    ok, why = False, f"{type(exc).__name__}: {exc}"
                ended = time.monotonic()
                with lock:
                    report.answered += ok
                    if not ok:
                        report.failed += 1
                        if len(report.failures) < 20:
                            report.failures.append(why)
                    if killed_at and started > killed_at[0]:
                        wait = ended - started
                        report.longest_new_wait_s = max(report.longest_new_wait_s, wait)
                        if ok and report.back_after_s is None:
                            report.back_after_s = ended - killed_at[0]
                if not ok:
                    time.sleep(0.05)  # a refused connection fails at once: do not spin
        finally:
            client.close()

    threads = [threading.Thread(target=caller, daemon=True) for _ in range(CALLERS)]
    for thread in threads:
        thread.start()
    warm.wait(120)
    time.sleep(0.5)  # requests in flight
    report.killed = serving_worker(workers, int(url.rsplit(":", 1)[1]))
    with lock:
        killed_at.append(time.monotonic())
    os.kill(report.killed, signal.SIGKILL)
    deadline = time.monotonic() + watch_s
    while time.monotonic() < deadline:
        with lock:
            back = report.back_after_s
        if back is not None and time.monotonic() - killed_at[0] > back + 2.0:
            break  # back, and 2 s of traffic after it seen
        time.sleep(0.1)
    stop.set()
    for thread in threads:
        thread.join(40)
    report.client_timeout_s = timeouts[0] if timeouts else 0.0
    report.longest_new_wait_s = round(report.longest_new_wait_s, 3)
    if report.back_after_s is not None:
        report.back_after_s = round(report.back_after_s, 3)
    after = [p for p in service_workers(service_id, supervisor) if p not in workers]
    report.new_worker = after[0] if after else None
    return report


def main(home: Path) -> None:  # pragma: no cover - a measuring tool
    from tests.helpers import GENTOO, promote, stop_promoted

    promoted = promote(home)
    state = json.loads((home / "state.json").read_text())
    try:
        report = kill_worker_under_load(promoted.url, GENTOO, state["service_id"], state["pid"])
        print(json.dumps(asdict(report), indent=2))
    finally:
        stop_promoted(promoted)


if __name__ == "__main__":  # pragma: no cover
    main(Path(sys.argv[1]))
