"""The running service's state file, and ending exactly the processes the kit started."""

from __future__ import annotations

import contextlib
import json
import shutil
import time
import urllib.parse
import urllib.request
from dataclasses import asdict, dataclass
from http.client import HTTPResponse
from pathlib import Path
from typing import TYPE_CHECKING

import psutil

from app_production.private_files import write_private

if TYPE_CHECKING:
    from model.settings import KitSettings

# The kit's own servers on this machine are never reached through a proxy (HTTP_PROXY without
# NO_PROXY would send even 127.0.0.1 to it): an opener with no proxy handler at all.
_DIRECT = urllib.request.build_opener(urllib.request.ProxyHandler({}))


@dataclass
class ServiceState:
    """What `kit promote` started: enough for `kit status`, `kit stop` and the remote backend."""

    url: str
    host: str
    port: int
    pid: int  # the `bentoml serve` process; it leads its own process group
    model: str  # BentoML model tag, e.g. "penguins:v1"
    bento: str
    log: str
    started_at: str
    api_key_required: bool = False
    service_id: str = ""  # in every service process's environment as KIT_SERVICE_ID
    ready_after_s: float | None = None  # cold start: process start to /readyz 200
    channel: str = ""  # the file `kit publish` writes and this service follows

    def save(self, path: Path) -> None:
        write_private(path, json.dumps(asdict(self), indent=2) + "\n")  # 0600, atomic

    @classmethod
    def load(cls, path: Path) -> ServiceState | None:
        try:
            return cls(**json.loads(path.read_text()))
        except FileNotFoundError:
            return None
        except (ValueError, TypeError):
            return None  # a damaged file is treated as "nothing promoted"


def read_state(settings: KitSettings) -> ServiceState | None:
    return ServiceState.load(settings.state_file)


def is_loopback_url(url: str) -> bool:
    """Whether `url` names this machine's loopback: localhost, 127.0.0.0/8 or ::1."""
    from app_prototype.sharing import is_loopback  # the one loopback rule, shared with the UIs

    return is_loopback(urllib.parse.urlsplit(url).hostname or "")


def http_get(url: str, timeout: float) -> HTTPResponse:
    """GET `url`: directly when it is loopback, else with the environment's proxy settings."""
    opener = _DIRECT if is_loopback_url(url) else urllib.request.build_opener()
    response: HTTPResponse = opener.open(url, timeout=timeout)
    return response


def is_ready(url: str, timeout: float = 2.0) -> bool:
    """GET /readyz == 200 (loopback, never through a proxy, or the address the user chose)."""
    try:
        with http_get(f"{url}/readyz", timeout=timeout) as response:
            return bool(response.status == 200)
    except OSError:
        return False


def is_our_service(pid: int) -> bool:
    """The pid is alive and is a `bentoml serve` (not a recycled pid of something else)."""
    try:
        command = " ".join(psutil.Process(pid).cmdline())
    except (psutil.NoSuchProcess, psutil.AccessDenied, psutil.ZombieProcess):
        return False
    return "bentoml" in command and "serve" in command


def service_processes(state: ServiceState) -> list[psutil.Process]:
    """Every live process of the service: the supervisor we started, its children, and any
    process carrying our KIT_SERVICE_ID (BentoML's worker leaves the supervisor's process
    group, and outlives it if the supervisor is killed)."""
    found: dict[int, psutil.Process] = {}
    if is_our_service(state.pid):
        leader = psutil.Process(state.pid)
        for process in [leader, *leader.children(recursive=True)]:
            found[process.pid] = process
    if state.service_id:
        for process in psutil.process_iter():
            with contextlib.suppress(psutil.Error):
                if process.environ().get("KIT_SERVICE_ID") == state.service_id:
                    found[process.pid] = process
    return [p for p in found.values() if _alive(p)]


def _alive(process: psutil.Process) -> bool:
    with contextlib.suppress(psutil.Error):
        return bool(process.status() != psutil.STATUS_ZOMBIE)
    return False


def stop_service(state: ServiceState, timeout: float = 15.0) -> list[int]:
    """SIGTERM every process of the service, SIGKILL what is left after `timeout`."""
    processes = service_processes(state)
    for process in processes:
        with contextlib.suppress(psutil.NoSuchProcess):
            process.terminate()
    _, alive = psutil.wait_procs(processes, timeout=timeout)
    for process in alive:
        with contextlib.suppress(psutil.NoSuchProcess):
            process.kill()
    psutil.wait_procs(alive, timeout=timeout)
    if state.channel:  # the record and the replicas' reports (app_production/file_channel.py)
        Path(state.channel).unlink(missing_ok=True)
        shutil.rmtree(Path(state.channel).with_suffix(".replicas"), ignore_errors=True)
    return [p.pid for p in processes]


def wait_port_closed(host: str, port: int, timeout: float = 10.0) -> bool:
    import socket

    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        with socket.socket() as sock:
            sock.settimeout(0.5)
            if sock.connect_ex((host if host not in ("0.0.0.0", "::") else "127.0.0.1", port)) != 0:  # noqa: S104
                return True
        time.sleep(0.1)
    return False
