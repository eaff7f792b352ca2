"""`kit build`: OCI images of the promoted model's service and of its demo UI.

The service image is `bentoml containerize` of the Bento that `kit promote` built: only
containerize copies the model into the build context, so the image carries the model that the
promote checked. It is marked KIT_REQUIRE_API_KEY=true: a container listens beyond loopback, so
the service refuses to start without KIT_API_KEY. The UI image (scripts/container/ui.Containerfile)
is the kit installed from this checkout with its runtime lock, running `kit demo --backend
remote` on 0.0.0.0 (so it needs KIT_AUTH). Both start FROM python:3.11-slim and run as a
non-root user (bentoml, uid 1034; kit, uid 1035).

Three things of machines like these are handled here rather than left to the user:
- no image registry: when python:3.11-slim cannot be pulled, a stand-in made from Debian packages
  takes its name (scripts/container/debian-base.sh, `--base-from-debian`);
- a sandbox that forbids raising rlimits and refuses crun's cgroups: the kit's own podman/buildah
  settings in <home>/containers/ (the kit's images live in that storage, not the system's);
- a TLS-intercepting proxy: the host's CA bundle is bind-mounted read-only into each RUN step of
  a build, with a pip.conf and a uv.toml pointing pip and uv at it. It is in no layer of the image
  (only two empty mount points, /etc/pip.conf and /etc/uv/uv.toml, remain).
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import ssl
import subprocess
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from app_production.private_files import open_private_log
from app_production.promote import Reporter, log_tail
from model.artifact import ModelStore
from model.errors import KitError, UsageError
from model.settings import PACKAGE_ROOT, KitSettings

BuilderName = Literal["buildah", "podman", "docker"]
UiKind = Literal["gradio", "streamlit"]

BASE_IMAGE = "docker.io/library/python:3.11-slim"
STAND_IN_LABEL = "kit.stand-in"
CONTAINER_FILES = PACKAGE_ROOT / "scripts" / "container"
UI_PORTS: dict[UiKind, int] = {"gradio": 7860, "streamlit": 8501}  # of ui.Containerfile's targets
UI_SOURCES = ("pyproject.toml", "README.md", "requirements.lock")
UI_PACKAGES = ("model", "app_prototype", "app_production", "scripts")
INSTALL = "`apt-get install podman buildah` on Debian, or Docker"
BUILD_TIMEOUT_S = 3600.0
PULL_TIMEOUT_S = 300.0
SYSTEM_CA = "/etc/ssl/certs/ca-certificates.crt"  # where Debian's pip (and uv) look in the build
PIP_CONF = f"[global]\ncert = {SYSTEM_CA}\n"  # pip of the public image: its own certifi otherwise
UV_TOML = "system-certs = true\n"  # uv: its bundled roots otherwise


class BuildFailed(KitError):
    """A step of `kit build` failed; the message names it and the end of its log."""

    exit_code = 6


class NoImageBuilder(UsageError):
    """No podman/buildah or docker on this machine."""


@dataclass(frozen=True)
class Builder:
    """The image builder (`name`) and what runs, inspects and imports images (`runner`)."""

    name: BuilderName
    runner: str  # podman for buildah and podman, docker for docker
    env: dict[str, str]  # the kit's CONTAINERS_CONF / CONTAINERS_STORAGE_CONF (not docker)

    def run(self, *args: str, timeout: float = 120.0) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [self.runner, *args],
            env={**os.environ, **self.env},
            capture_output=True,
            text=True,
            timeout=timeout,
            check=False,
        )

    def inspect(self, image: str) -> dict[str, object] | None:
        """`image inspect` of a local image, None when there is none by that name."""
        result = self.run("image", "inspect", image)
        if result.returncode != 0:
            return None
        found: list[dict[str, object]] = json.loads(result.stdout)
        return found[0] if found else None


@dataclass(frozen=True)
class BuiltImage:
    reference: str
    user: str
    size_bytes: int
    builder: Builder


def find_builder(settings: KitSettings, requested: BuilderName | None) -> Builder:
    """The requested builder, else the first of buildah (with podman), podman, docker."""
    candidates: list[BuilderName] = [requested] if requested else ["buildah", "podman", "docker"]
    for name in candidates:
        problem = _builder_problem(name)
        if problem is None:
            if name == "docker":
                return Builder("docker", "docker", {})
            return Builder(name, "podman", podman_settings(settings.home))
        if requested:
            raise NoImageBuilder(f"--backend {name}: {problem}")
    raise NoImageBuilder(
        f"no image builder found (podman/buildah or docker): install one, {INSTALL}"
    )


def _builder_problem(name: BuilderName) -> str | None:
    needs = ["buildah", "podman"] if name == "buildah" else [name]  # podman imports and runs
    missing = [tool for tool in needs if shutil.which(tool) is None]
    if missing:
        return f"{' and '.join(missing)} is not installed: {INSTALL}"
    if name == "docker":
        info = subprocess.run(["docker", "info"], capture_output=True, timeout=30, check=False)
        if info.returncode != 0:
            return "docker's daemon does not answer (`docker info`): start it, or use podman"
    return None


def podman_settings(home: Path) -> dict[str, str]:
    """Write the kit's podman/buildah settings and storage into <home>/containers/."""
    folder = home / "containers"
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "containers.conf").write_text(containers_conf([]))
    (folder / "storage.conf").write_text(
        "# written by `kit build`: the kit's images live here, not in the system's storage\n"
        f'[storage]\ndriver = "overlay"\ngraphroot = "{folder / "storage"}"\n'
        "# runtime state: a short path, or `podman run` waits 20 s for each container's exit\n"
        f'runroot = "{runroot(home)}"\n'
    )
    return {
        "CONTAINERS_CONF": str(folder / "containers.conf"),
        "CONTAINERS_STORAGE_CONF": str(folder / "storage.conf"),
    }


def runroot(home: Path) -> Path:
    """podman's runtime state for `home`, under /run (root) or the user's runtime folder: with a
    runroot longer than about 50 characters (a kit home in a deep folder), podman 4.3 misses
    conmon's exit and waits out its 20 s timeout after every `podman run`."""
    digest = hashlib.sha256(str(home.resolve()).encode()).hexdigest()[:12]
    runtime = "/run" if os.geteuid() == 0 else os.environ.get("XDG_RUNTIME_DIR")
    return Path(runtime or tempfile.gettempdir()) / "kit-containers" / digest


def containers_conf(volumes: list[str]) -> str:
    """containers.conf for sandboxes that refuse to raise rlimits (`error setting rlimit type 7`)
    and crun's hybrid cgroups; `volumes` are bind-mounted into every RUN step of a build."""
    lines = [
        "# written by `kit build`: podman and buildah settings for the kit's images",
        "[containers]",
        "# limits set, not raised: some sandboxes forbid raising them, even for root",
        'default_ulimits = ["nofile=20000:20000", "nproc=32768:32768"]',
        'netns = "host"',
    ]
    if volumes:
        lines.append(f"volumes = {json.dumps(volumes)}")
    lines += ["", "[engine]", 'cgroup_manager = "cgroupfs"', 'events_logger = "file"']
    if shutil.which("runc"):
        lines.append('runtime = "runc"  # crun refuses hybrid cgroup v1/v2 hosts')
    return "\n".join(lines) + "\n"


def ca_bundle() -> Path | None:
    """The CA bundle this machine trusts: $SSL_CERT_FILE, else the system's."""
    paths = ssl.get_default_verify_paths()
    for candidate in (os.environ.get("SSL_CERT_FILE"), paths.openssl_cafile, SYSTEM_CA):
        if candidate and Path(candidate).is_file():
            return Path(candidate).resolve()
    return None


def build_env(builder: Builder, scratch: Path) -> tuple[dict[str, str], str]:
    """The environment of a build command, and what it does with the CA bundle (one line)."""
    if builder.name == "docker":
        return {"DOCKER_BUILDKIT": "0"}, "docker: the build uses the daemon's own trust settings"
    env = {**builder.env, "BUILDAH_ISOLATION": "chroot"}
    ca = ca_bundle()
    if ca is None:
        return env, "no CA bundle on this machine: the build trusts the base image's own"
    (scratch / "pip.conf").write_text(PIP_CONF)
    (scratch / "uv.toml").write_text(UV_TOML)
    volumes = [
        f"{ca}:{SYSTEM_CA}:ro",
        f"{scratch / 'pip.conf'}:/etc/pip.conf:ro",
        f"{scratch / 'uv.toml'}:/etc/uv/uv.toml:ro",
    ]
    (scratch / "containers.conf").write_text(containers_conf(volumes))
    env["CONTAINERS_CONF"] = str(scratch / "containers.conf")
    return env, f"{ca} mounted read-only in the build's RUN steps only (in no layer)"


def ensure_base(builder: Builder, from_debian: bool, log: Path) -> str:
    """python:3.11-slim present, pulled, or else made from Debian packages: what happened."""
    found = builder.inspect(BASE_IMAGE)
    if found is not None:
        labels = _config(found).get("Labels")
        stand_in = isinstance(labels, dict) and STAND_IN_LABEL in labels
        return f"{BASE_IMAGE} present" + (" (the kit's Debian-made stand-in)" if stand_in else "")
    why = "--base-from-debian"
    if not from_debian:
        pulled = builder.run("pull", BASE_IMAGE, timeout=PULL_TIMEOUT_S)
        with log.open("a") as out:
            out.write(pulled.stdout + pulled.stderr)
        if pulled.returncode == 0:
            return f"{BASE_IMAGE} pulled"
        error = (pulled.stderr.strip().splitlines() or ["?"])[-1].removeprefix("Error: ")
        why = f"{BASE_IMAGE} cannot be pulled ({error})"
    make_stand_in(builder, log)
    return f"{why}: made a stand-in for it from Debian bookworm packages (Python 3.11)"


def make_stand_in(builder: Builder, log: Path) -> None:
    """scripts/container/debian-base.sh: debootstrap, then import as python:3.11-slim."""
    if shutil.which("debootstrap") is None:
        raise UsageError(
            f"{BASE_IMAGE} cannot be pulled and debootstrap is missing to make a stand-in: "
            "`apt-get install debootstrap` (Debian), or make the image pullable"
        )
    if os.geteuid() != 0:
        raise UsageError(
            f"{BASE_IMAGE} cannot be pulled, and making a stand-in from Debian packages needs "
            "root (debootstrap): run `kit build` as root once, or make the image pullable"
        )
    with tempfile.TemporaryDirectory(prefix="kit-base-") as work:
        script = CONTAINER_FILES / "debian-base.sh"
        command = ["sh", str(script), work, builder.runner, BASE_IMAGE]
        _check_call("debian-base.sh", command, {**os.environ, **builder.env}, log)


def promoted_bento(settings: KitSettings) -> tuple[str, str]:
    """The newest Bento `kit promote` built for the current model: (Bento tag, model tag)."""
    import bentoml

    folder = ModelStore(settings.home).current()
    name, version = folder.parent.name, folder.name
    try:
        bentos = bentoml.bentos.list(f"kit-{name}")
    except bentoml.exceptions.NotFound:
        bentos = []
    ours = [b for b in bentos if b.info.labels.get("model") == f"{name}-{version}"]
    if not ours:
        raise UsageError(
            f"no Bento of {name}:{version} in the kit's store: run `kit promote` first "
            "(it builds the Bento that `kit build` puts into the image)"
        )
    return str(max(ours, key=lambda b: b.info.creation_time).tag), f"{name}:{version}"


def default_tag(model_tag: str, kind: str) -> str:
    name, _, version = model_tag.partition(":")
    return f"localhost/kit/{name.lower()}-{kind}:{version}"


def containerize(builder: Builder, bento: str, image: str, env: dict[str, str], log: Path) -> None:
    """`bentoml containerize` of the Bento, marked to refuse starting without an API key."""
    command = [sys.executable, "-m", "bentoml", "containerize", bento]
    command += ["--backend", builder.name, "-t", image, "--opt", "network=host"]
    if builder.name != "docker":
        command += ["--opt", "isolation=chroot", "--opt", "env=KIT_REQUIRE_API_KEY=true"]
    _check_call("bentoml containerize", command, env, log)
    if builder.name == "docker":  # docker build has no --env: one more layer sets it
        finish = f"FROM {image}\nENV KIT_REQUIRE_API_KEY=true\n"
        _check_call("docker build", ["docker", "build", "-t", image, "-"], env, log, stdin=finish)


def build_ui(builder: Builder, ui: UiKind, image: str, env: dict[str, str], log: Path) -> None:
    """The UI image from a context of the kit's own files (never the checkout itself)."""
    with tempfile.TemporaryDirectory(prefix="kit-ui-context-") as context:
        for name in UI_SOURCES:
            shutil.copy2(PACKAGE_ROOT / name, Path(context) / name)
        skip = shutil.ignore_patterns("__pycache__", "*.pyc", "results", "container")
        for package in UI_PACKAGES:
            shutil.copytree(PACKAGE_ROOT / package, Path(context) / package, ignore=skip)
        command = [builder.name, "build", "-f", str(CONTAINER_FILES / "ui.Containerfile")]
        command += ["--target", ui, "-t", image, "--network", "host"]
        if builder.name != "docker":
            command += ["--isolation", "chroot", "--layers"]
        _check_call(f"{builder.name} build", [*command, context], env, log)


def check_image(builder: Builder, image: str, *, service: bool) -> BuiltImage:
    """The image exists, runs as a user other than root, and (the service) requires a key."""
    found = builder.inspect(image)
    if found is None:
        raise BuildFailed(f"the build ended without an image {image}")
    config = _config(found)
    user = str(config.get("User") or "root")
    if user.split(":")[0] in ("root", "0"):
        raise BuildFailed(f"{image} would run as root (USER {user})")
    env = config.get("Env")
    if service and not (isinstance(env, list) and "KIT_REQUIRE_API_KEY=true" in env):
        raise BuildFailed(f"{image} lacks KIT_REQUIRE_API_KEY=true: it would serve without a key")
    return BuiltImage(image, user, int(str(found.get("Size") or 0)), builder)


def build_image(
    settings: KitSettings,
    reporter: Reporter,
    *,
    ui: UiKind | None,
    tag: str | None,
    backend: BuilderName | None,
    base_from_debian: bool,
) -> BuiltImage:
    """Every step of `kit build` (the service image, or with `ui` the UI image)."""
    with reporter.step("find the model") as detail:
        if ui is None:
            bento, model_tag = promoted_bento(settings)
            detail(f"{model_tag}, Bento {bento} (built by `kit promote`)")
        else:
            folder = ModelStore(settings.home).current()
            model_tag = f"{folder.parent.name}:{folder.name}"
            detail(f"{model_tag}: the UI image asks the service for its schema at start")
    image = tag or default_tag(model_tag, ui or "service")
    with reporter.step("find an image builder") as detail:
        builder = find_builder(settings, backend)
        where = f"; settings and storage in {settings.home / 'containers'}" if builder.env else ""
        detail(f"{builder.name}{where}")
    log = settings.logs_dir / f"build-{image.replace('/', '_').replace(':', '_')}.log"
    open_private_log(log).close()  # 0600 and empty; each command appends its output
    with tempfile.TemporaryDirectory(prefix="kit-build-") as scratch:
        with reporter.step("base image") as detail:
            detail(ensure_base(builder, base_from_debian, log))
        with reporter.step("CA bundle for the build") as detail:
            env, what = build_env(builder, Path(scratch))
            detail(what)
        env = {k: v for k, v in os.environ.items() if not k.startswith("KIT_")} | env
        env |= {"BENTOML_HOME": str(settings.bentoml_home), "BENTOML_DO_NOT_TRACK": "True"}
        title = "bentoml containerize" if ui is None else f"build the {ui} UI image"
        with reporter.step(title) as detail:
            if ui is None:
                containerize(builder, bento, image, env, log)
            else:
                build_ui(builder, ui, image, env, log)
            detail(f"{image} (log {log})")
    with reporter.step("check the image") as detail:
        built = check_image(builder, image, service=ui is None)
        needs = "KIT_API_KEY" if ui is None else "KIT_AUTH"
        detail(f"runs as {built.user} (not root), needs {needs}, {built.size_bytes / 1e9:.2f} GB")
    return built


def _config(found: dict[str, object]) -> dict[str, object]:
    config = found.get("Config")
    return config if isinstance(config, dict) else {}


def _check_call(
    what: str, command: list[str], env: dict[str, str], log: Path, stdin: str | None = None
) -> None:
    """Run a build command (in `env`, as is) with its output appended to the log; a failure
    names it and quotes the end of the log."""
    with log.open("a") as out:
        out.write(f"$ {' '.join(command)}\n")
        out.flush()
        result = subprocess.run(
            command,
            env=env,
            stdout=out,
            stderr=subprocess.STDOUT,
            input=stdin or "",  # never the terminal: a build asks nothing
            text=True,
            timeout=BUILD_TIMEOUT_S,
            check=False,
        )
    if result.returncode != 0:
        raise BuildFailed(
            f"{what} exited {result.returncode}; the end of its log ({log}):\n{log_tail(str(log))}"
        )
