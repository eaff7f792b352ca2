"""Test helpers: free ports, real server processes started and always stopped by their pid."""

from __future__ import annotations

import contextlib
import json
import os
import pickle
import re
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import psutil

ROOT = Path(__file__).resolve().parent.parent
_SCRIPT = Path(sys.executable).parent / "kit"  # the installed console script, as users run it
KIT = [str(_SCRIPT)] if _SCRIPT.exists() else [sys.executable, "-m", "scripts.cli"]
OUTPUT_ROOT = ROOT / "test-output"
RELIABILITY = OUTPUT_ROOT / "reliability"  # figures of `make reliability`, one JSON per part


def write_figures(part: str, figures: dict[str, object]) -> None:
    """What a reliability test measured, for scripts/reliability/report.py to gather."""
    RELIABILITY.mkdir(parents=True, exist_ok=True)
    (RELIABILITY / f"{part}.json").write_text(json.dumps(figures, indent=2) + "\n")


# A record of the example model that only a Gentoo penguin fits (the defaults predict Adelie).
GENTOO = {
    "island": "Biscoe",
    "bill_length_mm": 47.5,
    "bill_depth_mm": 15.0,
    "flipper_length_mm": 217,
    "body_mass_g": 5400,
    "sex": "male",
}

# A record of the example body-mass regressor (scripts/example_regressor.py, README): a Gentoo male.
BODY_MASS = {
    "species": "Gentoo",
    "island": "Biscoe",
    "sex": "male",
    "bill_length_mm": 47.5,
    "bill_depth_mm": 15.0,
    "flipper_length_mm": 217.0,
}


def free_port() -> int:
    """A port nothing listens on now (the OS picks it on 127.0.0.1)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def closed_port() -> int:
    """A loopback port that refuses connections (nothing listens there)."""
    return free_port()


def kit_env(home: Path, **extra: str) -> dict[str, str]:
    """Environment for a `kit` subprocess: its own home, telemetry off, no stray KIT_ settings."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("KIT_")}
    env.update(
        KIT_HOME=str(home),
        GRADIO_ANALYTICS_ENABLED="False",
        HF_HUB_OFFLINE="1",
        HF_HUB_DISABLE_TELEMETRY="1",
        BENTOML_DO_NOT_TRACK="True",
        STREAMLIT_BROWSER_GATHER_USAGE_STATS="false",
        PYTHONUNBUFFERED="1",
        COLUMNS="200",
    )
    env.update(extra)
    return env


def run_kit(
    *args: str, home: Path, check: bool = False, timeout: float = 120, **env: str
) -> subprocess.CompletedProcess[str]:
    """Run `kit ARGS` to completion and return its output."""
    result = subprocess.run(
        [*KIT, *args],
        cwd=ROOT,
        env=kit_env(home, **env),
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )
    if check and result.returncode != 0:
        raise AssertionError(
            f"kit {' '.join(args)} exited {result.returncode}:\n{result.stdout}\n{result.stderr}"
        )
    return result


class ServerProcess:
    """A long-running command in its own process group, its output in a log file.

    `stop()` signals the group whose id is the pid we started (never a name), then waits.
    """

    def __init__(
        self, command: list[str], log: Path, env: dict[str, str], cwd: Path = ROOT
    ) -> None:
        log.parent.mkdir(parents=True, exist_ok=True)
        self.log_path = log
        self._log = log.open("w")
        self.proc = subprocess.Popen(
            command,
            cwd=cwd,
            env=env,
            stdout=self._log,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            start_new_session=True,
        )

    def output(self) -> str:
        return self.log_path.read_text(errors="replace")

    def wait_for(self, pattern: str, timeout: float = 90) -> re.Match[str]:
        """Wait for output matching `pattern`; fail with the output on exit or timeout."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            match = re.search(pattern, self.output())
            if match:
                return match
            if self.proc.poll() is not None:
                raise AssertionError(
                    f"exited with {self.proc.returncode} before {pattern!r}:\n{self.output()}"
                )
            time.sleep(0.2)
        raise AssertionError(f"no {pattern!r} after {timeout} s:\n{self.output()}")

    def wait_exit(self, timeout: float = 60) -> int:
        return self.proc.wait(timeout=timeout)

    def stop(self, timeout: float = 15) -> None:
        if self.proc.poll() is None:
            try:
                os.killpg(self.proc.pid, signal.SIGTERM)
                self.proc.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                os.killpg(self.proc.pid, signal.SIGKILL)
                self.proc.wait(timeout=timeout)
            except ProcessLookupError:
                pass
        self._log.close()


def start_kit(*args: str, home: Path, log: Path, **env: str) -> ServerProcess:
    return ServerProcess([*KIT, *args], log, kit_env(home, **env))


def bentoml_serve(
    home: Path, service_id: str, log: Path, tag: str = "penguins:v1"
) -> ServerProcess:
    """The service as a container runs it: `bentoml serve` of the model in `home`'s BentoML
    store, no kit in front, on a free loopback port."""
    env = kit_env(
        home, BENTOML_HOME=str(home / "bentoml"), KIT_MODEL_TAG=tag, KIT_SERVICE_ID=service_id
    )
    command = [sys.executable, "-m", "bentoml", "serve", "app_production.service:ModelService"]
    return ServerProcess([*command, "--host", "127.0.0.1", "--port", str(free_port())], log, env)


def http_get(url: str, timeout: float = 5) -> tuple[int, str]:
    """GET a loopback URL; (status, body) also for error statuses."""
    try:
        with urllib.request.urlopen(url, timeout=timeout) as response:
            return response.status, response.read().decode(errors="replace")
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read().decode(errors="replace")


def wait_http(url: str, timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            if http_get(url, timeout=2)[0] < 500:
                return
        except OSError:
            pass
        time.sleep(0.2)
    raise AssertionError(f"{url} did not answer within {timeout} s")


FAKE_FRPC = """#!{python}
# Stands in for Gradio's frpc tunnel client (it cannot be downloaded here): like the real one,
# it dials the share server and prints frpc's own failure line.
import socket, sys
host, port = sys.argv[sys.argv.index("--server_addr") + 1].rsplit(":", 1)
try:
    socket.create_connection((host, int(port)), timeout=2).close()
except OSError as exc:
    reason = exc.strerror
    print(f"login to server failed: dial tcp {{host}}:{{port}}: connect: {{reason}}", flush=True)
    sys.exit(1)
"""


def fake_frpc_home(tmp_path: Path) -> Path:
    """An HF_HOME whose frpc is the stand-in: Gradio then never downloads the real one."""
    from gradio.tunneling import BINARY_FILENAME

    hf_home = tmp_path / "hf"
    binary = hf_home / "gradio" / "frpc" / BINARY_FILENAME
    binary.parent.mkdir(parents=True)
    binary.write_text(FAKE_FRPC.format(python=sys.executable))
    binary.chmod(0o755)
    return hf_home


@dataclass
class Promoted:
    """A service started by `kit promote` for a test kit home."""

    home: Path
    url: str
    pid: int
    output: str


def promote(home: Path, *args: str, **env: str) -> Promoted:
    """`kit promote --port <free> ARGS` for `home`; fails the test with its output on error."""
    result = run_kit("promote", "--port", str(free_port()), *args, home=home, timeout=300, **env)
    if result.returncode != 0:
        raise AssertionError(f"kit promote exited {result.returncode}:\n{result.stderr}")
    state = json.loads((home / "state.json").read_text())
    return Promoted(home=home, url=state["url"], pid=state["pid"], output=result.stderr)


def stop_promoted(promoted: Promoted, **env: str) -> None:
    """`kit stop`, then check that no process of the service is left."""
    service_id = json.loads((promoted.home / "state.json").read_text()).get("service_id", "")
    run_kit("stop", home=promoted.home, check=True, **env)
    leftovers = service_leftovers(promoted.pid, service_id)
    assert not leftovers, f"processes of the service still alive: {leftovers}"


def service_leftovers(pid: int, service_id: str) -> list[int]:
    """Live processes of a promoted service: its process group, or its KIT_SERVICE_ID marker
    (BentoML's worker runs in a process group of its own)."""
    found = []
    for process in psutil.process_iter():
        with contextlib.suppress(psutil.Error, ProcessLookupError):
            if process.status() == psutil.STATUS_ZOMBIE:
                continue
            marked = service_id and process.environ().get("KIT_SERVICE_ID") == service_id
            if marked or os.getpgid(process.pid) == pid:
                found.append(process.pid)
    return found


def services_of_home(home: Path) -> set[str]:
    """KIT_SERVICE_IDs of the live service processes that use `home`'s BentoML store."""
    store = str(home / "bentoml")
    found = set()
    for process in psutil.process_iter():
        with contextlib.suppress(psutil.Error):
            env = process.environ()
            if env.get("BENTOML_HOME") == store and "KIT_SERVICE_ID" in env:
                found.add(env["KIT_SERVICE_ID"])
    return found


# Hard limits a user could declare for the example model (`kit import --annotations`): the
# inferred schema has none, so tests of refused values declare some, as a new version.
DECLARED_LIMITS = {"bill_length_mm": (10.0, 100.0), "body_mass_g": (500.0, 10_000.0)}


def declare_limits(home: Path, limits: dict[str, tuple[float, float]] = DECLARED_LIMITS) -> str:
    """Save a new version of the current model with hard limits declared; it becomes current."""
    from model.artifact import MODEL_FILE, Manifest, ModelStore

    store = ModelStore(home)
    folder = store.current()
    manifest = Manifest.from_file(folder / "manifest.json")
    schema = manifest.schema_.model_copy(deep=True)
    for name, (low, high) in limits.items():
        feature = schema.feature(name)
        feature.minimum, feature.maximum = low, high
    saved = store.save(
        name=manifest.name,
        schema=schema,
        metrics=manifest.metrics,
        source="annotate",
        model_file=folder / MODEL_FILE,
    )
    return saved.version


class _MakesMarker:
    """Unpickling this calls os.mkdir(marker): harmless, and visible from any process."""

    def __init__(self, marker: Path) -> None:
        self.marker = str(marker)

    def __reduce__(self) -> tuple[object, tuple[str]]:
        return os.mkdir, (self.marker,)


def evil_model(marker: Path) -> bytes:
    """A plain pickle (joblib.load reads one) that creates `marker` when loaded: a tampered
    model file whose code, if it were ever unpickled, leaves a trace a test can see."""
    return pickle.dumps(_MakesMarker(marker), protocol=pickle.DEFAULT_PROTOCOL)


def gradio_client(url: str, **kwargs: Any) -> Any:
    """A gradio_client.Client of a test's Gradio app: telemetry off, quiet (kwargs: auth, ...)."""
    from gradio_client import Client  # here: most tests never need it

    return Client(url, analytics_enabled=False, verbose=False, **kwargs)
