"""`kit deploy k8s` as users run it, and the service run the way its rendered Deployment runs it.

`kit deploy k8s` needs the current model only, not a promoted one: the manifests name the
model's images by its name and version (from its manifest), and `kit build` makes those images
from the Bento that `kit promote` builds; neither a running service nor a Bento is needed to
write them. The manifests themselves are validated in tests/unit/test_k8s_manifests.py.

The read-only root filesystem is exercised without a container runtime: the Bento exported with
its model (as `bentoml containerize` lays it out) is served by `bentoml serve` in a private mount
namespace where every mount is read-only but the rendered Deployment's emptyDir mounts (tmpfs),
as the Deployment's user, with the Deployment's environment and arguments. Not exercised here:
the image itself (tests/integration/test_images.py builds and runs it) and any Kubernetes API
server (none can run on these machines).
"""

from __future__ import annotations

import json
import os
import secrets
import shutil
import subprocess
import sys
import tarfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import psutil
import pytest
import yaml

from tests.helpers import ROOT, ServerProcess, free_port, http_get, kit_env, run_kit

# A frozen full `kit bench` run (a copy of one committed run): the figures below stay true
# when scripts/bench/results is refreshed (tests/unit/test_sizing.py checks the live one).
BENCH_RUN = ROOT / "tests" / "data" / "bench-full-2026-11-29.json"
BUILD_BENTO = """
import sys
from pathlib import Path
from app_production.promote import build_bento, save_to_store
from model import artifact
folder = artifact.ModelStore(Path(sys.argv[1])).current()
print(build_bento(save_to_store(folder, artifact.verify(folder)), folder.parent.name).tag)
"""
# A pod's filesystem, made with mounts: everything read-only but the emptyDirs (tmpfs); the
# Bento at /mnt/bento (the image's $BENTO_PATH); the interpreter and the venv readable by the
# pod's user even where they live in a folder it may not enter (pyenv in /root, a clone in a
# 0700 temp folder): that folder is covered by an empty tmpfs with only them mounted back.
# KIT_TEST_KEEP: lines "HIDDEN-ANCESTOR KEPT-FOLDER".
READ_ONLY_POD = """
set -euo pipefail
mount --make-rprivate /
mount -t tmpfs tmpfs /mnt
mkdir /mnt/bento
mount --bind "$KIT_TEST_BENTO" /mnt/bento
hiddens=$(cut -s -d' ' -f1 <<< "$KIT_TEST_KEEP" | sort -u)
keep_back() {  # the kept folders, read-only, where they are not (or no longer) visible
  local i=0 hidden kept
  while read -r hidden kept; do
    [ -n "$hidden" ] || continue
    if [ ! -e "$kept/bin" ]; then
      mkdir -p "$kept" && mount --bind "/mnt/keep$i" "$kept" && mount -o remount,bind,ro "$kept"
    fi
    i=$((i+1))
  done <<< "$KIT_TEST_KEEP"
}
i=0
while read -r hidden kept; do  # put the kept folders aside before their ancestor is covered
  [ -n "$hidden" ] || continue
  mkdir "/mnt/keep$i" && mount --bind "$kept" "/mnt/keep$i" && i=$((i+1))
done <<< "$KIT_TEST_KEEP"
for hidden in $hiddens; do mount -t tmpfs -o mode=755 tmpfs "$hidden"; done
keep_back
for hidden in $hiddens; do mount -o remount,bind,ro "$hidden"; done
for m in /mnt/bento /mnt /; do mount -o remount,bind,ro "$m"; done
for d in $KIT_TEST_EMPTY_DIRS; do mount -t tmpfs -o size=256m,mode=1777 tmpfs "$d"; done
keep_back  # again: an emptyDir (/tmp) may cover one of them
cd /mnt/bento/src
exec setpriv --reuid "$KIT_TEST_UID" --regid "$KIT_TEST_UID" --clear-groups -- "$@"
"""


def deploy(home: Path, out: Path, *args: str, **env: str) -> subprocess.CompletedProcess[str]:
    return run_kit("deploy", "k8s", "--out", str(out), *args, home=home, **env)


def test_kit_deploy_k8s_writes_sized_manifests_without_a_secret_value(
    trained_home: Path, tmp_path: Path
) -> None:
    key, auth = secrets.token_hex(16), f"tester:{secrets.token_hex(8)}"
    out = tmp_path / "deploy"
    started = time.perf_counter()
    result = deploy(
        trained_home,
        out,
        "--target-rps", "3000", "--p99-ms", "50", "--bench", str(BENCH_RUN),
        "--host", "penguins.example.org", "--kserve",
        KIT_API_KEY=key, KIT_AUTH=auth,
    )  # fmt: skip
    seconds = time.perf_counter() - started
    assert result.returncode == 0, result.stderr
    said = result.stdout + result.stderr
    written = sorted(p.relative_to(out).as_posix() for p in out.rglob("*") if p.is_file())
    assert len(written) == 15 and "overlays/kserve/kustomization.yaml" in written
    for relative in written:
        assert f"wrote {out / relative}" in result.stderr
    # the arithmetic, one line per figure, from that bench run
    assert f"bench: {BENCH_RUN} (full run of" in said
    assert "per-replica throughput: 2034 req/s at concurrency 64 (p99 47.3 ms, <= 50 ms)" in said
    assert "replicas: ceil(3000 req/s / (2034 req/s × 0.7 headroom)) = ceil(2.11) = 3" in said
    assert "CPU request: 2034 req/s × 462 µs/req = 0.94 cores → 950m" in said
    assert "HPA: CPU target 70 % of the request (the headroom), 3 to 6 replicas" in said
    assert "memory request: (83 MiB main + 2 workers × 261 MiB) × 1.25" in said
    # names and version from the model's manifest; next steps with the Secrets' commands
    manifest = json.loads(
        (trained_home / "models" / "penguins" / "v1" / "manifest.json").read_text()
    )
    prod = yaml.safe_load((out / "overlays" / "prod" / "kustomization.yaml").read_text())
    assert prod["images"][0]["name"] == f"localhost/kit/{manifest['name']}-service"
    assert prod["images"][0]["newTag"] == manifest["version"]
    assert prod["replicas"] == [{"name": "penguins-service", "count": 3}]
    assert "create secret generic penguins-api-key --from-file=KIT_API_KEY=/dev/stdin" in said
    assert f"kubectl kustomize {out}/overlays/prod | kubectl apply -f -" in said
    assert "the UI: https://penguins.example.org" in said
    assert "kubectl -n penguins create secret tls penguins-ui-tls --cert=FULLCHAIN.pem" in said
    # no secret value anywhere: not in a file, not in the output
    for path in out.rglob("*"):
        if path.is_file():
            text = path.read_text()
            assert key not in text and auth not in text and auth.split(":")[1] not in text
    assert key not in said and auth not in said
    assert seconds < 30, f"kit deploy k8s took {seconds:.1f} s"


def test_without_a_bench_run_it_says_so_and_uses_the_defaults(
    trained_home: Path, tmp_path: Path
) -> None:
    result = deploy(trained_home, tmp_path / "d", "--target-rps", "100")
    assert result.returncode == 0, result.stderr
    assert f"no `kit bench` run at {trained_home / 'bench' / 'bench.json'}" in result.stderr
    assert "replicas: 2 (HPA 2 to 4, CPU target 70 %)" in result.stderr
    assert "the UI: kubectl -n penguins port-forward svc/penguins-ui 7860:80" in result.stderr
    again = deploy(trained_home, tmp_path / "d", "--replicas", "3", "--ui", "streamlit")
    assert again.returncode == 0, again.stderr
    assert f"replaced {tmp_path / 'd' / 'overlays' / 'prod' / 'kustomization.yaml'}" in again.stderr
    assert "--replicas 3: resources are the defaults" in again.stderr
    assert "count: 3" in (tmp_path / "d" / "overlays" / "prod" / "kustomization.yaml").read_text()
    assert "containerPort: 8501" in (tmp_path / "d" / "base" / "ui" / "deployment.yaml").read_text()


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--ui", "panel"], "--ui must be 'gradio' or 'streamlit'"),
        (["--replicas", "2", "--target-rps", "10"], "give --replicas or --target-rps, not both"),
        (["--p99-ms", "50"], "--p99-ms is the latency goal of --target-rps"),
        (["--host", "Not A Host"], "--host must be a DNS name"),
        (["--replicas", "0"], "Invalid value for '--replicas'"),
        (
            ["--target-rps", "10", "--p99-ms", "1", "--bench", str(BENCH_RUN)],
            "no concurrency",
        ),
    ],
    ids=["ui", "replicas-and-rps", "p99-alone", "host", "replicas-0", "p99-unmet"],
)
def test_bad_options_exit_2(
    trained_home: Path, tmp_path: Path, args: list[str], message: str
) -> None:
    result = deploy(trained_home, tmp_path / "d", *args)
    assert result.returncode == 2, result.stderr
    assert message in result.stderr
    assert not (tmp_path / "d").exists()  # nothing written


def test_kit_deploy_k8s_with_an_in_cluster_channel(trained_home: Path, tmp_path: Path) -> None:
    """The broker's manifests (validated in tests/unit/test_k8s_manifests.py; its image cannot
    be pulled here, so it is not run) and how to publish to it, in the next steps."""
    out = tmp_path / "deploy"
    result = deploy(trained_home, out, "--channel", "in-cluster", "--kserve")
    assert result.returncode == 0, result.stderr
    said = " ".join((result.stdout + result.stderr).split())
    for name in ("statefulset", "service", "headless-service", "kustomization"):
        assert (out / "base" / "channel" / f"{name}.yaml").is_file()
    assert "the channel (nats://penguins-channel:4222, in-cluster, base/channel)" in said
    assert "kubectl -n penguins port-forward svc/penguins-channel 4222" in said
    assert "KIT_CHANNEL_URL=nats://127.0.0.1:4222 kit publish --version vN" in said
    deployment = yaml.safe_load((out / "base" / "service" / "deployment.yaml").read_text())
    env = {e["name"]: e for e in deployment["spec"]["template"]["spec"]["containers"][0]["env"]}
    assert env["KIT_CHANNEL_URL"]["value"] == "nats://penguins-channel:4222"
    assert env["KIT_REPLICA_ID"]["valueFrom"] == {"fieldRef": {"fieldPath": "metadata.name"}}
    kserve = yaml.safe_load((out / "overlays" / "kserve" / "kustomization.yaml").read_text())
    assert "../../base/channel" in kserve["resources"]


def test_kit_deploy_k8s_with_an_existing_broker(trained_home: Path, tmp_path: Path) -> None:
    out = tmp_path / "deploy"
    result = deploy(trained_home, out, "--channel", "nats://broker.example:4222")
    assert result.returncode == 0, result.stderr
    said = " ".join((result.stdout + result.stderr).split())
    assert not (out / "base" / "channel").exists()
    assert "KIT_CHANNEL_URL=nats://broker.example:4222 kit publish --version vN" in said
    deployment = yaml.safe_load((out / "base" / "service" / "deployment.yaml").read_text())
    env = {e["name"]: e for e in deployment["spec"]["template"]["spec"]["containers"][0]["env"]}
    assert env["KIT_CHANNEL_URL"]["value"] == "nats://broker.example:4222"
    assert "StatefulSet" not in "".join(p.read_text() for p in out.rglob("*.yaml"))


@pytest.mark.parametrize("value", ["http://x", "nats://", "in_cluster", "nats://b:4222/path"])
def test_a_bad_channel_exits_2_and_says_the_forms_accepted(
    trained_home: Path, tmp_path: Path, value: str
) -> None:
    result = deploy(trained_home, tmp_path / "d", "--channel", value)
    assert result.returncode == 2, result.stderr
    said = " ".join(result.stderr.split())
    assert "--channel must be in-cluster" in said and "or nats://HOST:PORT" in said
    assert repr(value) in said
    assert not (tmp_path / "d").exists()  # nothing written


def test_the_channel_option_s_help_teaches_both_forms(tmp_path: Path) -> None:
    result = run_kit("deploy", "k8s", "--help", home=tmp_path, COLUMNS="200")
    assert result.returncode == 0, result.stderr
    said = " ".join(result.stdout.split())
    assert "--channel" in said and "in-cluster|nats://HOST:PORT" in said
    assert (
        "`in-cluster` writes one (base/channel), `nats://HOST:PORT` names an existing one" in said
    )
    assert "KIT_CHANNEL_URL=nats://... kit publish --version vN" in said


def test_no_model_exits_3(tmp_path: Path) -> None:
    result = deploy(tmp_path / "empty", tmp_path / "d")
    assert result.returncode == 3, result.stderr
    assert "no model yet" in result.stderr and "kit train" in result.stderr


@pytest.fixture(scope="module")
def bento(tmp_path_factory: pytest.TempPathFactory, trained_home: Path) -> Path:
    """The model's Bento as `bentoml containerize` puts it in the image: with its model."""
    folder = tmp_path_factory.mktemp("bento")
    home = folder / "kit"
    shutil.copytree(trained_home, home)
    env = kit_env(home, BENTOML_HOME=str(home / "bentoml"))
    run = {"cwd": ROOT, "env": env, "capture_output": True, "text": True, "timeout": 180}
    built = subprocess.run([sys.executable, "-c", BUILD_BENTO, str(home)], **run)
    assert built.returncode == 0, built.stderr
    tag = built.stdout.strip().splitlines()[-1]
    archive = folder / "model.bento"
    exported = subprocess.run([sys.executable, "-m", "bentoml", "export", tag, str(archive)], **run)
    assert exported.returncode == 0, exported.stderr
    target = folder / "bento"
    with tarfile.open(archive) as tar:
        tar.extractall(target, filter="data")
    for path in [target, *target.rglob("*")]:  # as the image's COPY leaves it: readable to all
        path.chmod(0o755 if path.is_dir() else 0o644)
    assert (target / "models" / "penguins" / "v1" / "model.joblib").exists()
    return target


def test_the_service_pod_runs_as_the_user_of_bentoml_s_image(
    bento: Path, rendered_service: dict[str, Any]
) -> None:
    dockerfile = (bento / "env" / "docker" / "Dockerfile").read_text()
    assert "ARG BENTO_USER_UID=1034" in dockerfile and "USER bentoml" in dockerfile
    assert rendered_service["spec"]["template"]["spec"]["securityContext"]["runAsUser"] == 1034


def _hidden_ancestor(path: Path) -> Path | None:
    """The first folder above `path` that other users may not enter (pyenv in /root)."""
    for parent in reversed(path.parents):
        if parent != Path("/") and not parent.stat().st_mode & 0o001:
            return parent
    return None


@pytest.fixture
def rendered_service(trained_home: Path, tmp_path: Path) -> dict[str, Any]:
    result = deploy(trained_home, tmp_path / "deploy")
    assert result.returncode == 0, result.stderr
    return dict(
        yaml.safe_load((tmp_path / "deploy" / "base" / "service" / "deployment.yaml").read_text())
    )


def _pod_run(
    bento: Path, deployment: dict[str, Any], log: Path, drop_env: str = ""
) -> tuple[ServerProcess, str, str]:
    if os.geteuid() != 0 or not Path("/usr/bin/unshare").exists():
        pytest.fail(
            "needs root and unshare (util-linux): mounts make the pod's read-only filesystem"
        )
    pod = deployment["spec"]["template"]["spec"]
    (container,) = pod["containers"]
    assert container["securityContext"]["readOnlyRootFilesystem"] is True
    volumes = {v["name"]: v for v in pod["volumes"]}
    empty_dirs = [
        m["mountPath"] for m in container["volumeMounts"] if "emptyDir" in volumes[m["name"]]
    ]
    key = secrets.token_hex(16)
    env = {
        e["name"]: e["value"] for e in container["env"] if "value" in e and e["name"] != drop_env
    }
    env.update({e["name"]: key for e in container["env"] if "valueFrom" in e})  # the Secret's
    bento_yaml = yaml.safe_load((bento / "bento.yaml").read_text())
    env.update({e["name"]: e["value"] for e in bento_yaml["envs"]})  # the image's ENV lines
    python, venv = Path(sys.base_prefix).resolve(), Path(sys.prefix)
    keep = [
        f"{hidden} {folder}"
        for folder in (python, venv)
        if (hidden := _hidden_ancestor(folder / "bin")) is not None
    ]
    env.update(
        PATH=f"{venv / 'bin'}:/usr/bin:/bin",
        HOME="/home/bentoml",  # the image user's (it does not exist here: read-only anyway)
        BENTOML_CONTAINERIZED="true",
        BENTOML_DO_NOT_TRACK="True",
        KIT_TEST_BENTO=str(bento),
        KIT_TEST_KEEP="\n".join(keep),
        KIT_TEST_EMPTY_DIRS=" ".join(empty_dirs),
        KIT_TEST_UID=str(pod["securityContext"]["runAsUser"]),
    )
    port = free_port()
    args = list(container["args"])  # serve --host 0.0.0.0 --port 3000: here loopback, a free port
    args[args.index("--host") + 1], args[args.index("--port") + 1] = "127.0.0.1", str(port)
    command = [
        "unshare",
        "--mount",
        "bash",
        "-c",
        READ_ONLY_POD,
        "pod",
        str(venv / "bin" / "bentoml"),
        *args,
        "/mnt/bento",
    ]
    return ServerProcess(command, log, env), f"http://127.0.0.1:{port}", key


def _stop(server: ServerProcess) -> None:
    """Stop the pod's processes: the group we started, then any worker still alive (BentoML's
    workers run in process groups of their own), each by its pid."""
    try:
        started = [p.pid for p in psutil.Process(server.proc.pid).children(recursive=True)]
    except psutil.NoSuchProcess:
        started = []
    server.stop()
    for pid in started:
        try:
            psutil.Process(pid).wait(timeout=10)
        except psutil.TimeoutExpired:
            psutil.Process(pid).kill()
        except psutil.NoSuchProcess:
            pass


@pytest.fixture
def pods_started() -> Iterator[list[ServerProcess]]:
    started: list[ServerProcess] = []
    yield started
    for server in started:
        _stop(server)


def test_the_service_runs_on_the_deployment_s_read_only_root_filesystem(
    bento: Path,
    rendered_service: dict[str, Any],
    trained_home: Path,
    tmp_path: Path,
    pods_started: list[ServerProcess],
) -> None:
    from app_production.client import RemotePredictor
    from model.predictor import LocalPredictor, same_predictions
    from model.sampling import parity_records

    server, url, key = _pod_run(bento, rendered_service, tmp_path / "pod.log")
    pods_started.append(server)
    started, deadline = time.monotonic(), time.monotonic() + 90
    while time.monotonic() < deadline:
        assert server.proc.poll() is None, f"the service exited:\n{server.output()}"
        try:
            if http_get(f"{url}/readyz", timeout=2)[0] == 200:
                break
        except OSError:
            pass
        time.sleep(0.2)
    else:
        raise AssertionError(f"/readyz did not answer 200 within 90 s:\n{server.output()}")
    ready_s = time.monotonic() - started
    uid = rendered_service["spec"]["template"]["spec"]["securityContext"]["runAsUser"]
    serving = psutil.Process(server.proc.pid)  # unshare, bash and setpriv exec: one process
    assert "serve" in serving.cmdline() and {serving.uids().real, serving.uids().effective} == {uid}
    assert http_get(f"{url}/livez")[0] == 200
    assert http_get(f"{url}/metrics")[0] == 200  # Prometheus' folder is in the emptyDir
    local = LocalPredictor(trained_home / "models" / "penguins" / "v1")
    records = parity_records(local.schema)
    remote = RemotePredictor(url, api_key=key)
    try:
        for a, b in zip(local.predict(records), remote.predict(records), strict=True):
            assert same_predictions(a, b, 1e-9), (a, b)
    finally:
        remote.close()
    print(f"read-only pod: ready {ready_s:.1f} s after start; {len(records)} records identical")


def test_without_moving_bentoml_s_home_the_read_only_root_refuses_it(
    bento: Path, rendered_service: dict[str, Any], tmp_path: Path, pods_started: list[ServerProcess]
) -> None:
    """The control: the filesystem really is read-only, and BENTOML_HOME is why it works."""
    server, _, _ = _pod_run(bento, rendered_service, tmp_path / "pod.log", drop_env="BENTOML_HOME")
    pods_started.append(server)
    assert server.wait_exit(timeout=90) != 0
    assert "Read-only file system" in server.output()


def test_the_probe_paths_are_routes_of_the_service(
    bento: Path, rendered_service: dict[str, Any]
) -> None:
    """The Bento's OpenAPI document is the one the service serves at /docs.json (one hook,
    app_production/service.py DocumentedService): its paths include the probes'."""
    document = yaml.safe_load((bento / "apis" / "openapi.yaml").read_text())
    (container,) = rendered_service["spec"]["template"]["spec"]["containers"]
    probed = {
        container[p]["httpGet"]["path"] for p in ("startupProbe", "readinessProbe", "livenessProbe")
    }
    assert probed == {"/readyz", "/livez"}
    assert probed <= set(document["paths"])
    assert all("get" in document["paths"][path] for path in probed)
