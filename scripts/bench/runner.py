"""`kit bench`: the current model, served five ways on this machine, measured in one run.

Order of a run (all on loopback, in a private copy of the kit home so that the user's own
service is never touched):

1. `kit promote` end to end (a subprocess, timed as a user sees it); its service is the
   production target, and its cold start is the one `kit promote` measured;
2. the FastAPI baseline and the Gradio prototype (`kit demo --backend local`), each timed
   from process start to ready; in full mode each server is restarted for more cold starts;
3. a second start of the same Bento with its prediction log on (every answer, into the
   workdir): the logged target, running beside production for the whole run;
4. the in-process floor (LocalPredictor, single record and batched) in the load generator;
5. for each round and concurrency: production, logged, FastAPI, prototype and RemotePredictor
   back to back (the order rotates per round), CPU time of each server read around each run;
6. full mode: a 60 s load on the service while its RSS is sampled (the leak check);
7. the prediction log's own account: rows in its files and its counters (POST /metadata),
   against the predictions the logged target answered.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import socket
import sqlite3
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from app_production.prediction_log import log_files
from app_production.state import ServiceState, stop_service
from model import artifact
from model.sampling import parity_records
from model.settings import PACKAGE_ROOT, TELEMETRY_OFF, KitSettings
from scripts.bench import servers
from scripts.bench.servers import BenchFailed, Server, Watcher

PRODUCTION, LOGGED, FASTAPI, PROTOTYPE, REMOTE, LOCAL = (
    "production",
    "logged",  # production with its prediction log on, every answer logged
    "fastapi",
    "prototype",
    "remote",
    "local",
)
SETTLE_S = 15.0  # at most this long for the log's writer to catch up after the last run


@dataclass(frozen=True)
class Plan:
    mode: str
    levels: tuple[int, ...]
    warmup_s: float
    duration_s: float
    rounds: int
    cold_starts: int
    leak_s: float
    leak_concurrency: int = 32
    batch: int = 1000


QUICK = Plan(
    "quick", levels=(1, 32), warmup_s=0.3, duration_s=1.0, rounds=1, cold_starts=1, leak_s=0
)
FULL = Plan(
    "full", levels=(1, 8, 32, 64), warmup_s=0.5, duration_s=3.0, rounds=4, cold_starts=3, leak_s=60
)


class LoadGenerator:
    """The load generator process (scripts/bench/loadgen.py), one run at a time."""

    def __init__(self, records: Path, env: dict[str, str]) -> None:
        self._process = subprocess.Popen(
            [sys.executable, "-m", "scripts.bench.loadgen", "--records", str(records)],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            env=env,
            cwd=PACKAGE_ROOT,
            text=True,
        )
        assert self._process.stdout is not None
        hello = self._process.stdout.readline()  # after its imports: they are timed
        if not hello:
            raise BenchFailed(f"the load generator did not start ({self._process.wait()})")
        self.import_s: float = json.loads(hello)["import_s"]

    def run(self, **spec: Any) -> dict[str, Any]:
        assert self._process.stdin is not None and self._process.stdout is not None
        self._process.stdin.write(json.dumps(spec) + "\n")
        self._process.stdin.flush()
        line = self._process.stdout.readline()
        if not line:
            raise BenchFailed(f"the load generator exited ({self._process.wait()}) during {spec}")
        result: dict[str, Any] = json.loads(line)
        return result

    def close(self) -> None:
        if self._process.stdin is not None:
            self._process.stdin.close()
        try:
            self._process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self._process.kill()
            self._process.wait()


def bench_env(home: Path) -> dict[str, str]:
    """The environment of everything the bench starts: its own home, no auth, no telemetry."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("KIT_")}
    return {**env, **TELEMETRY_OFF, "KIT_HOME": str(home), "PYTHONUNBUFFERED": "1"}


def private_home(settings: KitSettings, into: Path) -> Path:
    """A kit home holding only a copy of the current model version."""
    store = artifact.ModelStore(settings.home)
    folder = store.current()
    manifest = artifact.verify(folder)
    home = into / "home"
    shutil.copytree(folder, artifact.ModelStore(home).path(manifest.name, manifest.version))
    shutil.copyfile(store.current_file, artifact.ModelStore(home).current_file)
    return home


def free_port() -> int:
    """A port the OS says is free on loopback now."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


Say = Callable[[str], None]


@dataclass
class Collected:
    """Everything measured; `report.summarize` turns it into the report."""

    plan: Plan
    model: dict[str, Any]
    promote_s: float
    cold_starts: dict[str, list[float]]
    runs: list[dict[str, Any]]
    floor: dict[str, dict[str, Any]]  # "batched"; the single-record floor is in `runs`
    peaks: dict[str, dict[str, float]]
    leak: dict[str, Any] | None
    import_floor_s: float
    prediction_log: dict[str, Any] | None = None  # rows, counters, predictions answered

    def to_json(self) -> dict[str, Any]:
        return {**asdict(self), "plan": asdict(self.plan)}


def timed_promote(
    home: Path, env: dict[str, str], port: int, logs: Path
) -> tuple[float, ServiceState]:
    began = time.perf_counter()
    done = subprocess.run(
        [sys.executable, "-m", "scripts.cli", "promote", "--port", str(port)],
        env=env,
        cwd=PACKAGE_ROOT,
        capture_output=True,
        text=True,
        check=False,
    )
    seconds = time.perf_counter() - began
    (logs / "promote.log").write_text(done.stdout + done.stderr)
    state = ServiceState.load(home / "state.json")
    if done.returncode != 0 or state is None:
        raise BenchFailed(f"kit promote failed (exit {done.returncode}):\n{done.stdout[-2000:]}")
    return seconds, state


class Bench:
    def __init__(
        self, settings: KitSettings, plan: Plan, workdir: Path, say: Say, progress: Say
    ) -> None:
        self.plan, self.say, self.progress, self.workdir = plan, say, progress, workdir
        self.home = private_home(settings, workdir)
        self.env = bench_env(self.home)
        self.logs = workdir / "logs"
        self.logs.mkdir()
        current = artifact.ModelStore(self.home).current()
        self.model_dir = current
        self.manifest = artifact.verify(current)

    def _start(self, name: str, module_args: list[str], ready_path: str) -> Server:
        """`python -m MODULE ARGS --port <free>` on loopback, timed until `ready_path` answers."""
        port = free_port()
        url = f"http://127.0.0.1:{port}"
        command = [sys.executable, "-m", *module_args, "--port", str(port)]
        log = self.logs / f"{name}-{port}.log"
        return servers.start(name, command, self.env, f"{url}{ready_path}", url, log)

    def start_fastapi(self) -> Server:
        args = ["scripts.bench.fastapi_baseline", "--model-dir", str(self.model_dir)]
        return self._start(FASTAPI, args, "/readyz")

    def start_prototype(self) -> Server:
        args = ["scripts.cli", "demo", "--backend", "local"]
        return self._start(PROTOTYPE, args, "/gradio_api/info")

    @property
    def log_dir(self) -> Path:
        """Where the logged target writes its prediction log."""
        return self.workdir / "prediction-log"

    def start_production(self, state: ServiceState, logged: bool = False) -> Server:
        """Another start of the promoted Bento, the way `kit promote` starts it; `logged`:
        with its prediction log on (into `log_dir`, every answer)."""
        from app_production.promote import start_service

        settings = KitSettings(  # as promoted: no key
            home=self.home,
            api_key=None,
            prediction_log=str(self.log_dir) if logged else "off",
            prediction_log_sample=1.0,
        )
        port = free_port()
        began = time.perf_counter()
        with _environ_without("KIT_PREDICTION_LOG", "KIT_PREDICTION_LOG_SAMPLE"):
            new = start_service(settings, state.model, state.bento, "127.0.0.1", port)
        name = LOGGED if logged else PRODUCTION
        server = Server(
            name, new.pid, new.url, Path(new.log), 0.0, stop_fn=lambda: stop_service(new)
        )
        try:
            servers.wait_ready(server, f"{new.url}/readyz")
        except BaseException:
            stop_service(new)
            raise
        server.cold_start_s = time.perf_counter() - began
        return server

    def run(self) -> Collected:
        records = self.workdir / "records.json"
        records.write_text(json.dumps(parity_records(self.manifest.schema_)))
        cold: dict[str, list[float]] = {PRODUCTION: [], LOGGED: [], FASTAPI: [], PROTOTYPE: []}
        self.say("kit promote (end to end, a private copy of the kit home)…")
        promote_s, state = timed_promote(self.home, self.env, free_port(), self.logs)
        self.say(
            f"kit promote: {promote_s:.1f} s; service ready {state.ready_after_s} s after start"
        )
        production = Server(
            PRODUCTION,
            state.pid,
            state.url,
            Path(state.log),
            state.ready_after_s or 0.0,
            stop_fn=lambda: stop_service(state),
        )
        started: list[Server] = [production]
        cold[PRODUCTION].append(production.cold_start_s)
        try:
            for _ in range(self.plan.cold_starts - 1):  # more cold starts, then keep the last
                production.stop()
                production = self.start_production(state)
                started[0] = production
                cold[PRODUCTION].append(production.cold_start_s)
            fastapi: Server | None = None
            prototype: Server | None = None
            for _ in range(self.plan.cold_starts):
                for old in (fastapi, prototype):
                    if old is not None:
                        old.stop()
                fastapi = self.start_fastapi()
                cold[FASTAPI].append(fastapi.cold_start_s)
                prototype = self.start_prototype()
                cold[PROTOTYPE].append(prototype.cold_start_s)
            assert fastapi is not None and prototype is not None
            started += [fastapi, prototype]
            logged = self.start_production(state, logged=True)  # once: it runs beside production
            started.append(logged)
            cold[LOGGED].append(logged.cold_start_s)
            self.say("cold starts (s): " + ", ".join(f"{k} {min(v):.1f}" for k, v in cold.items()))
            return self._measure(records, production, logged, fastapi, prototype, cold, promote_s)
        finally:
            for server in started:
                server.stop()

    def _measure(
        self,
        records: Path,
        production: Server,
        logged: Server,
        fastapi: Server,
        prototype: Server,
        cold: dict[str, list[float]],
        promote_s: float,
    ) -> Collected:
        plan = self.plan
        loadgen = LoadGenerator(records, self.env)
        self.say(
            f"import floor (scikit-learn + pandas in a fresh interpreter): {loadgen.import_s:.1f} s"
        )
        runs: list[dict[str, Any]] = []
        try:
            with Watcher() as watcher:
                for server in (production, logged, fastapi, prototype):
                    watcher.watch(server)
                watcher.sample()  # each server at rest, once
                floor = {
                    "batched": loadgen.run(
                        kind="local",
                        target=str(self.model_dir),
                        concurrency=1,
                        warmup=plan.warmup_s,
                        duration=plan.duration_s,
                        batch=plan.batch,
                    ),
                }
                floor["batched"]["batch"] = plan.batch
                targets = [
                    (PRODUCTION, "http", production),
                    (LOGGED, "http", logged),
                    (FASTAPI, "http", fastapi),
                    (PROTOTYPE, "gradio", prototype),
                    (REMOTE, "remote", production),
                ]
                for round_ in range(plan.rounds):
                    order = targets[round_ % len(targets) :] + targets[: round_ % len(targets)]
                    for level in plan.levels:
                        if level == 1:  # the in-process floor, next to what it is compared with
                            local = loadgen.run(
                                kind="local",
                                target=str(self.model_dir),
                                concurrency=1,
                                warmup=plan.warmup_s,
                                duration=plan.duration_s,
                            )
                            runs.append(
                                {"target": LOCAL, "concurrency": 1, "round": round_ + 1, **local}
                            )
                        for name, kind, server in order:
                            self.progress(
                                f"round {round_ + 1}/{plan.rounds}: {name} at concurrency {level}"
                            )
                            before = server.cpu_seconds()
                            watcher.busy = server
                            result = loadgen.run(
                                kind=kind,
                                target=server.url,
                                concurrency=level,
                                warmup=plan.warmup_s,
                                duration=plan.duration_s,
                            )
                            watcher.busy = None
                            result["cpu_s"] = server.cpu_seconds() - before
                            runs.append(
                                {
                                    "target": name,
                                    "concurrency": level,
                                    "round": round_ + 1,
                                    **result,
                                }
                            )
                leak = self._leak(loadgen, production, watcher) if plan.leak_s else None
        finally:
            loadgen.close()
        answered = sum(
            r["calls"] - sum(r["errors"].values()) for r in runs if r["target"] == LOGGED
        )
        prediction_log = self._prediction_log(logged, answered)
        return Collected(
            plan,
            self._model(),
            promote_s,
            cold,
            runs,
            floor,
            watcher.peaks,
            leak,
            loadgen.import_s,
            prediction_log,
        )

    def _prediction_log(self, logged: Server, answered: int) -> dict[str, Any]:
        """What the logged target's log holds once its writer has caught up: rows in its files,
        its counters (the serving worker's, from POST /metadata), and `answered` (every
        successful call of the logged runs, warm-up included: each one was logged)."""
        deadline = time.monotonic() + SETTLE_S
        stats = servers.log_stats(logged.url)
        while time.monotonic() < deadline:
            if stats is not None and sum(stats.values()) - stats["sampled_out"] >= answered:
                break  # every answer accounted for: written, or dropped and counted
            time.sleep(0.2)
            stats = servers.log_stats(logged.url)
        files = log_files(self.log_dir)
        return {
            "folder": "prediction-log",
            "files": len(files),
            "rows": sum(count_rows(path) for path in files),
            "answered": answered,
            "stats": stats,
        }

    def _leak(self, loadgen: LoadGenerator, production: Server, watcher: Watcher) -> dict[str, Any]:
        plan = self.plan
        self.say(f"leak check: {plan.leak_s:.0f} s at concurrency {plan.leak_concurrency}")
        start = len(watcher.series[PRODUCTION])
        began = time.monotonic()
        watcher.busy = production
        result = loadgen.run(
            kind="http",
            target=production.url,
            concurrency=plan.leak_concurrency,
            warmup=0.0,
            duration=plan.leak_s,
        )
        watcher.busy = None
        series = watcher.series[PRODUCTION][start:]
        t0 = series[0][0] if series else 0.0
        return {
            "seconds": plan.leak_s,
            "concurrency": plan.leak_concurrency,
            "requests": len(result["latencies_ms"]),
            "errors": result["errors"],
            "wall_s": time.monotonic() - began,
            "rss_mb": [(round(t - t0, 2), mb) for t, mb in series],
        }

    def _model(self) -> dict[str, Any]:
        m = self.manifest
        return {"name": m.name, "version": m.version, "estimator": m.estimator, "sha256": m.sha256}


def count_rows(path: Path) -> int:
    """Rows of one prediction log file (read-only; committed rows only)."""
    uri = path.resolve().as_uri() + "?mode=ro"
    with contextlib.closing(sqlite3.connect(uri, uri=True, timeout=5.0)) as connection:
        try:
            count: int = connection.execute("SELECT COUNT(*) FROM predictions").fetchone()[0]
        except sqlite3.OperationalError:  # a file just created: no table committed yet
            return 0
        return count


@contextmanager
def _environ_without(*names: str) -> Iterator[None]:
    """The service's environment copies this one: keep the user's own log settings out of it,
    so that production is not logged and the logged target logs every answer."""
    saved = {name: os.environ.pop(name) for name in names if name in os.environ}
    try:
        yield
    finally:
        os.environ.update(saved)


@contextmanager
def workdir() -> Iterator[Path]:
    with tempfile.TemporaryDirectory(prefix="kit-bench-") as folder:
        yield Path(folder)
