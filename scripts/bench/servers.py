"""The servers `kit bench` starts: each timed from process start to ready, watched, stopped.

A `Server` is one process tree started on a free loopback port; `Watcher` samples the resident
memory (RSS) of every process in each tree in the background, and reads their CPU time, so the
report can give peak RSS per process and CPU per request.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import threading
import time
import urllib.request
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import psutil

from model.errors import KitError
from model.settings import PACKAGE_ROOT

READY_TIMEOUT_S = 120.0
MB = 1024 * 1024


class BenchFailed(KitError):
    """A server of the benchmark did not start or answer: the report would be meaningless."""


def answers(url: str, timeout: float = 1.0) -> bool:
    try:
        with urllib.request.urlopen(url, timeout=timeout) as response:  # noqa: S310 - loopback
            return bool(response.status == 200)
    except OSError:
        return False


@dataclass
class Server:
    """One server process (and its children) started by the bench."""

    name: str
    pid: int
    url: str
    log: Path
    cold_start_s: float
    stop_fn: Callable[[], object] | None = None

    def processes(self) -> list[psutil.Process]:
        try:
            root = psutil.Process(self.pid)
            return [root, *root.children(recursive=True)]
        except psutil.NoSuchProcess:
            return []

    def cpu_seconds(self) -> float:
        total = 0.0
        for process in self.processes():
            with contextlib.suppress(psutil.Error):
                times = process.cpu_times()
                total += times.user + times.system
        return total

    def stop(self) -> None:
        if self.stop_fn is not None:
            self.stop_fn()
            return
        stop_group(self.pid)


def stop_group(pid: int, grace_s: float = 10.0) -> None:
    """SIGTERM the process group this bench started (by its leader's pid), then SIGKILL."""
    with contextlib.suppress(ProcessLookupError):
        os.killpg(pid, signal.SIGTERM)
    deadline = time.monotonic() + grace_s
    while time.monotonic() < deadline:
        with contextlib.suppress(ChildProcessError):
            if os.waitpid(pid, os.WNOHANG)[0] == pid:
                break
        if not psutil.pid_exists(pid):
            break
        time.sleep(0.05)
    with contextlib.suppress(ProcessLookupError):
        os.killpg(pid, signal.SIGKILL)
    with contextlib.suppress(ChildProcessError):
        os.waitpid(pid, 0)


def start(
    name: str, command: list[str], env: dict[str, str], ready_url: str, url: str, log: Path
) -> Server:
    """Start `command` in its own process group; cold start = process start to `ready_url` 200."""
    log.parent.mkdir(parents=True, exist_ok=True)
    began = time.perf_counter()
    with log.open("w") as out:
        process = subprocess.Popen(
            command,
            env=env,
            stdout=out,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            start_new_session=True,
            cwd=PACKAGE_ROOT,
        )
    deadline = time.monotonic() + READY_TIMEOUT_S
    while not answers(ready_url):
        if process.poll() is not None or time.monotonic() > deadline:
            stop_group(process.pid)
            tail = "\n".join(log.read_text(errors="replace").splitlines()[-15:])
            raise BenchFailed(f"{name} did not become ready ({' '.join(command)}):\n{tail}")
        time.sleep(0.02)
    return Server(name, process.pid, url, log, time.perf_counter() - began)


def log_stats(url: str, timeout: float = 5.0) -> dict[str, int] | None:
    """The service's prediction log counters (POST /metadata: its "prediction_log"); None when
    the service does not log or does not answer."""
    request = urllib.request.Request(  # noqa: S310 - loopback
        f"{url}/metadata", data=b"{}", headers={"Content-Type": "application/json"}
    )
    try:
        with urllib.request.urlopen(request, timeout=timeout) as response:  # noqa: S310
            stats = json.loads(response.read()).get("prediction_log")
    except (OSError, ValueError):
        return None
    return {str(k): int(v) for k, v in stats.items()} if isinstance(stats, dict) else None


def wait_ready(server: Server, ready_url: str) -> None:
    deadline = time.monotonic() + READY_TIMEOUT_S
    while not answers(ready_url):
        if time.monotonic() > deadline:
            raise BenchFailed(f"{server.name} stopped answering {ready_url}")
        time.sleep(0.05)


@dataclass
class Watcher:
    """Samples the RSS of every process of the server under load (`busy`), every `interval`
    seconds: the sampling itself costs CPU, so idle servers are only sampled on `sample()`."""

    interval: float = 0.25
    busy: Server | None = None
    peaks: dict[str, dict[str, float]] = field(default_factory=dict)  # server -> role -> MB
    series: dict[str, list[tuple[float, float]]] = field(default_factory=dict)  # t, total MB
    _servers: list[Server] = field(default_factory=list)
    _stop: threading.Event = field(default_factory=threading.Event)
    _thread: threading.Thread | None = None
    _t0: float = field(default_factory=time.monotonic)

    def watch(self, server: Server) -> None:
        self._servers.append(server)
        self.peaks.setdefault(server.name, {})
        self.series.setdefault(server.name, [])

    def sample(self, servers: list[Server] | None = None) -> None:
        now = time.monotonic() - self._t0
        for server in self._servers if servers is None else servers:
            total = 0.0
            processes = server.processes()
            for process in processes:
                with contextlib.suppress(psutil.Error):
                    mb = process.memory_info().rss / MB
                    total += mb
                    role = role_of(server.pid, process.pid, [p.pid for p in processes])
                    peaks = self.peaks[server.name]
                    peaks[role] = max(peaks.get(role, 0.0), mb)
            self.series[server.name].append((round(now, 2), round(total, 1)))
            peaks = self.peaks[server.name]
            peaks["total"] = max(peaks.get("total", 0.0), total)

    def __enter__(self) -> Watcher:
        def loop() -> None:
            while not self._stop.wait(self.interval):
                if (busy := self.busy) is not None:
                    self.sample([busy])

        self._thread = threading.Thread(target=loop, name="rss-watcher", daemon=True)
        self._thread.start()
        return self

    def __exit__(self, *_: object) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join()


def role_of(root: int, pid: int, tree: list[int]) -> str:
    """'main' for the process the bench started; 'worker-N' (pid order) for its children."""
    if pid == root:
        return "main"
    children = sorted(p for p in tree if p != root)
    return f"worker-{children.index(pid) + 1}"
