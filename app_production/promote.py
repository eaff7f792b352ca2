"""`kit promote`: the current artifact becomes a BentoML service that the same UI calls.

verify → store → build → start → ready → parity → record. Each step reports one line; any
failure names the step, stops what this run started, and leaves the previous service serving.
BENTOML_HOME must point at the kit's store before this module is imported (the CLI does it).
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import time
import uuid
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from contextlib import AbstractContextManager
from datetime import UTC, datetime
from importlib.metadata import version
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

from app_production.channel import Channel, channel_path
from app_production.private_files import open_private_log
from app_production.state import (
    ServiceState,
    is_ready,
    read_state,
    stop_service,
    wait_port_closed,
)
from model import artifact
from model.errors import ArtifactError, KitError, UsageError
from model.sampling import parity_records
from model.settings import PACKAGE_ROOT, KitSettings

if TYPE_CHECKING:
    from model.predictor import LocalPredictor

SERVICE = "app_production.service:ModelService"
READY_TIMEOUT_S = 90.0
TOLERANCE = 1e-9
# What the service imports, pinned to the versions installed here (the Bento's requirements).
RUNTIME_PACKAGES = (
    "bentoml",
    "scikit-learn",
    "joblib",
    "pandas",
    "numpy",
    "scipy",
    "pydantic",
    "pydantic-settings",
    "psutil",
    "uvloop",  # uvicorn's faster event loop and HTTP parser: what `kit bench` measured
    "httptools",
    "nats-py",  # the broker channel (KIT_CHANNEL_URL): imported only when one is named
    "orjson",  # the prediction log (KIT_PREDICTION_LOG) encodes with it
)


class PromoteFailed(KitError):
    exit_code = 6


class Reporter(Protocol):
    def step(self, title: str) -> AbstractContextManager[Callable[[str], None]]: ...


def service_env(settings: KitSettings, model_tag: str) -> dict[str, str]:
    """The service's environment: this one, with the API key taken from `settings` only."""
    env = {
        **{k: v for k, v in os.environ.items() if k != "KIT_API_KEY"},
        "BENTOML_HOME": str(settings.bentoml_home),
        "KIT_MODEL_TAG": model_tag,
        "BENTOML_DO_NOT_TRACK": "True",
        "PYTHONUNBUFFERED": "1",
        "KIT_FEEDBACK_DB": str(settings.feedback_db),  # `kit feedback` reads it there
    }
    if (log := settings.prediction_log_dir) is not None:  # `kit monitor` reads it there
        env["KIT_PREDICTION_LOG"] = str(log)
    if settings.api_key is not None:
        env["KIT_API_KEY"] = settings.api_key.get_secret_value()
    return env


def serve_command(target: str, host: str, port: int) -> list[str]:
    return [sys.executable, "-m", "bentoml", "serve", target, "--host", host, "--port", str(port)]


def save_to_store(folder: Path, manifest: artifact.Manifest) -> str:
    """Copy the artifact (model + manifest) into the BentoML store; reuse an identical entry."""
    import bentoml

    tag = f"{manifest.name}:{manifest.version}"
    try:
        existing = bentoml.models.get(tag)
    except bentoml.exceptions.NotFound:
        existing = None
    if existing is not None:
        if existing.info.metadata.get("sha256") == manifest.sha256:
            return tag
        raise PromoteFailed(
            f"the BentoML store already has a different {tag} (another sha256): "
            "train or import again to make a new version"
        )
    metadata = {"manifest": manifest.model_dump_json_file(), "sha256": manifest.sha256}
    with bentoml.models.create(tag, labels={"source": manifest.source}, metadata=metadata) as ref:
        shutil.copyfile(folder / artifact.MODEL_FILE, ref.path_of(artifact.MODEL_FILE))
        shutil.copyfile(folder / artifact.MANIFEST_FILE, ref.path_of(artifact.MANIFEST_FILE))
    return tag


def verify_store_copy(model_tag: str) -> artifact.Manifest:
    """Check the BentoML store's copy as the service will before unpickling it (its sha256
    against its manifest): a tampered copy is refused here, not by a worker at every restart."""
    import bentoml

    folder = Path(bentoml.models.get(model_tag).path)
    try:
        return artifact.verify(folder)
    except ArtifactError as exc:
        raise ArtifactError(
            f"the BentoML store's copy of {model_tag} cannot be served: {exc}"
        ) from exc


class ServiceRefused(KitError):
    """The service stopped itself: it cannot serve its model (the reason is its own)."""

    exit_code = 6


def serve_foreground(settings: KitSettings, model_tag: str, host: str, port: int) -> int:
    """`kit serve`: run the service as a child until it exits; signals are passed on to it.

    A worker that cannot load its model stops the whole server and writes why in a file this
    process names (KIT_REFUSAL_FILE): then this raises ServiceRefused with that reason, instead
    of the server restarting its worker forever and looking alive."""
    import signal
    import tempfile

    from app_production.supervision import REFUSAL_FILE_ENV

    fd, name = tempfile.mkstemp(prefix="kit-refusal-", suffix=".txt")
    os.close(fd)
    refusal = Path(name)
    refusal.write_text("")
    env = {
        **service_env(settings, model_tag),
        "KIT_SERVICE_ID": uuid.uuid4().hex,  # as `kit promote`'s: every process is findable
        REFUSAL_FILE_ENV: str(refusal),
    }
    forwarded = (signal.SIGTERM, signal.SIGINT, signal.SIGHUP)
    previous = {signum: signal.getsignal(signum) for signum in forwarded}
    try:
        process = subprocess.Popen(serve_command(SERVICE, host, port), env=env, cwd=PACKAGE_ROOT)

        def forward(signum: int, _frame: object) -> None:
            if process.poll() is None:
                process.send_signal(signum)

        for signum in forwarded:
            signal.signal(signum, forward)
        code = process.wait()
        reason = refusal.read_text().strip()
    finally:
        for signum, handler in previous.items():
            signal.signal(signum, handler)
        refusal.unlink(missing_ok=True)
    if reason:
        raise ServiceRefused(f"the service stopped: {reason}")
    return code


def build_bento(model_tag: str, name: str) -> Any:
    """`bentoml build` from Python: sources, pinned requirements, the model, a Dockerfile.

    The Bento's description (its README.md) is the model's, from the manifest in the store:
    by default BentoML would copy the kit's own README from the build folder."""
    import bentoml
    from bentoml._internal.bento.build_config import BentoEnvSchema

    from app_production.openapi import bento_readme

    stored = json.loads(bentoml.models.get(model_tag).info.metadata["manifest"])
    served = artifact.Manifest.from_dict(stored)
    os.environ["KIT_MODEL_TAG"] = model_tag  # the service module reads it when imported
    return bentoml.bentos.build(
        SERVICE,
        name=f"kit-{name}",
        description=bento_readme(served.name, served.version, served.schema_),
        build_ctx=str(PACKAGE_ROOT),
        include=["model/*.py", "app_production/*.py"],
        envs=[BentoEnvSchema(name="KIT_MODEL_TAG", value=model_tag)],
        python={
            "packages": [f"{p}=={version(p)}" for p in RUNTIME_PACKAGES],
            "lock_packages": False,
        },
        labels={"model": model_tag.replace(":", "-")},
    )


def start_service(
    settings: KitSettings, model_tag: str, bento_tag: str, host: str, port: int
) -> ServiceState:
    settings.logs_dir.mkdir(parents=True, exist_ok=True)
    log = settings.logs_dir / f"service-{model_tag.replace(':', '-')}-{port}.log"
    service_id = uuid.uuid4().hex
    channel = channel_path(settings.home, service_id)
    Channel(model=model_tag).save(channel)  # `kit publish` / `kit rollback` rewrite it
    with open_private_log(log) as out:  # 0600: only the owner reads what the service logs
        process = subprocess.Popen(
            serve_command(bento_tag, host, port),
            env={
                **service_env(settings, model_tag),
                "KIT_SERVICE_ID": service_id,
                "KIT_CHANNEL": str(channel),
            },
            stdout=out,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            start_new_session=True,
        )
    shown = "127.0.0.1" if host in ("0.0.0.0", "::") else host  # noqa: S104
    return ServiceState(
        url=f"http://{shown}:{port}",
        host=host,
        port=port,
        pid=process.pid,
        model=model_tag,
        bento=bento_tag,
        log=str(log),
        started_at=datetime.now(UTC).isoformat(timespec="seconds"),
        api_key_required=settings.api_key is not None,
        service_id=service_id,
        channel=str(channel),
    )


def wait_ready(state: ServiceState, timeout: float = READY_TIMEOUT_S) -> None:
    import psutil

    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if is_ready(state.url, timeout=1.0):
            return
        if (
            not psutil.pid_exists(state.pid)
            or psutil.Process(state.pid).status() == psutil.STATUS_ZOMBIE
        ):
            raise PromoteFailed(
                f"the service exited before it was ready; its log:\n{log_tail(state.log)}"
            )
        time.sleep(0.1)
    raise PromoteFailed(
        f"/readyz did not answer 200 within {timeout:.0f} s; its log:\n{log_tail(state.log)}"
    )


def check_parity(local: LocalPredictor, state: ServiceState, settings: KitSettings) -> str:
    """Same records in-process and over HTTP: identical labels and warnings, probabilities (or
    values) within 1e-9. Some records lie outside the sample's range, so warnings are checked
    too. Returns what was checked, for the step's line."""
    from app_production.client import RemotePredictor
    from model.predictor import same_predictions

    records = parity_records(local.schema)
    remote = RemotePredictor(state.url, api_key=_key(settings))
    try:
        expected = local.predict(records)
        for i, (a, b) in enumerate(zip(expected, remote.predict(records), strict=True)):
            if not same_predictions(a, b, TOLERANCE):
                raise PromoteFailed(
                    f"record {i} {json.dumps(records[i])}: "
                    f"local {a.to_json()} != remote {b.to_json()}"
                )
    finally:
        remote.close()
    warned = sum(1 for p in expected if p.warnings)
    what = (
        f"identical labels, probabilities within {TOLERANCE:g}"
        if local.schema.task == "classification"
        else f"values within {TOLERANCE:g}"
    )
    return f"{len(records)} records ({warned} with warnings, identical): {what}"


def _key(settings: KitSettings) -> str | None:
    return settings.api_key.get_secret_value() if settings.api_key else None


def log_tail(path: str, lines: int = 15) -> str:
    """The last lines of a log, for an error message ("(no log)" when it cannot be read)."""
    try:
        return "\n".join(Path(path).read_text(errors="replace").splitlines()[-lines:])
    except OSError:
        return "(no log)"


def _load_local(folder: Path) -> LocalPredictor:
    from model.predictor import LocalPredictor

    return LocalPredictor(folder)


def version_folder(settings: KitSettings, version: str | None) -> Path:
    """The current model's folder, or that of one of its versions (a clear error if unknown)."""
    store = artifact.ModelStore(settings.home)
    folder = store.current()
    if version is None:
        return folder
    name, known = folder.parent.name, store.versions(folder.parent.name)
    if version not in known:
        raise UsageError(f"no version {version!r} of {name}; versions: {', '.join(known)}")
    return store.path(name, version)


def promote(
    settings: KitSettings,
    reporter: Reporter,
    *,
    host: str,
    port: int,
    version: str | None = None,
) -> ServiceState:
    """Run every step; on failure stop the new service and keep the previous one serving."""
    previous = read_state(settings)
    started: ServiceState | None = None
    # The in-process model for the parity check loads (pandas, scikit-learn: seconds) while
    # the service boots, instead of before or after it.
    loader = ThreadPoolExecutor(max_workers=1, thread_name_prefix="parity-model")
    local: Future[LocalPredictor] | None = None
    try:
        with reporter.step("verify artifact") as detail:
            folder = version_folder(settings, version)
            manifest = artifact.verify(folder)
            detail(f"{manifest.name}:{manifest.version}, sha256 {manifest.sha256[:12]}… ok")
        with reporter.step("save to the BentoML model store") as detail:
            model_tag = save_to_store(folder, manifest)
            verify_store_copy(model_tag)  # what the service will check, before starting it
            detail(f"{model_tag} in {settings.bentoml_home / 'models'}")
        with reporter.step("build the Bento") as detail:
            bento = build_bento(model_tag, manifest.name)
            detail(
                f"{bento.tag} (Dockerfile: {Path(bento.path) / 'env' / 'docker' / 'Dockerfile'})"
            )
        with reporter.step("start the service") as detail:
            spawned = time.perf_counter()
            started = start_service(settings, model_tag, str(bento.tag), host, port)
            local = loader.submit(_load_local, folder)
            detail(f"{started.url} (pid {started.pid}, log {started.log})")
        with reporter.step("wait for /readyz") as detail:
            wait_ready(started)
            started.ready_after_s = round(time.perf_counter() - spawned, 2)
            detail(f"ready {started.ready_after_s:.1f} s after start (cold start)")
        with reporter.step("parity check (local vs remote)") as detail:
            detail(check_parity(local.result(), started, settings))
        with reporter.step("record the endpoint") as detail:
            started.save(settings.state_file)
            replaced = ""
            if previous is not None and previous.pid != started.pid:
                stop_service(previous)
                replaced = f"; replaced {previous.model} at {previous.url}"
            # `kit promote --version V`: V is the model that answers, in-process too
            artifact.ModelStore(settings.home).set_current(manifest.name, manifest.version)
            detail(f"{settings.state_file}{replaced}")
        return started
    except BaseException:
        if started is not None:
            stop_service(started)
            wait_port_closed(host, port)
            if previous is not None:
                previous.save(settings.state_file)
        raise
    finally:
        loader.shutdown(wait=False, cancel_futures=True)
