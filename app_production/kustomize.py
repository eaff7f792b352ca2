"""The kustomize layout of `kit deploy k8s`: which object goes in which file, the overlays, and
the commands a user runs (Secrets, apply). Objects come from app_production/k8s.py.

Every value a user must change is a named field of an overlay's kustomization.yaml, said in
its header: `namespace`, `images` (registry and tag), `replicas` and the HPA's bounds (a patch
named for them), and, with --host, the Ingress host (`configMapGenerator` kit-deploy-settings,
copied into the Ingress by `replacements`; the ConfigMap is local config: never applied).
With --channel in-cluster, the broker's image is one of the `images` too.
"""

from __future__ import annotations

from typing import Any

import yaml

from app_production import k8s, k8s_channel
from app_production.k8s import DeploySpec, Doc

KUSTOMIZE = {"apiVersion": "kustomize.config.k8s.io/v1beta1", "kind": "Kustomization"}
SETTINGS = "kit-deploy-settings"
UI_REPLICAS = 1  # Gradio and Streamlit keep each session in one process: more need sticky sessions
DEV_CPU = "100m"
DEV_MAX_REPLICAS = 2


class _Dumper(yaml.SafeDumper):  # type: ignore[misc]  # PyYAML has no type hints here
    """Block style for multi-line strings (the inline patches), keys in the order written."""


def _text(dumper: Any, value: str) -> Any:
    style = "|" if "\n" in value else None
    return dumper.represent_scalar("tag:yaml.org,2002:str", value, style=style)


_Dumper.add_representer(str, _text)


def dump(*docs: object, header: str = "") -> str:
    """YAML documents, after `header` as comment lines."""
    body = str(yaml.dump_all(docs, Dumper=_Dumper, sort_keys=False, width=100))
    comment = "".join(f"# {line}".rstrip() + "\n" for line in header.splitlines())
    return comment + body


def _replace(kind: str, name: str, values: dict[str, Any]) -> Doc:
    ops = [{"op": "replace", "path": path, "value": value} for path, value in values.items()]
    return {"target": {"kind": kind, "name": name}, "patch": dump(ops)}


def _images(spec: DeploySpec) -> list[Doc]:
    images = []
    references = [spec.service_image, spec.ui_image]
    if spec.channel == k8s.IN_CLUSTER:
        references.append(k8s_channel.NATS_IMAGE)
    for reference in references:
        name, _, tag = reference.rpartition(":")
        images.append({"name": name, "newName": name, "newTag": tag})
    return images


def _host(spec: DeploySpec, overlay: str) -> Doc:
    """The host name as a named field, copied into the Ingress's rule and TLS host."""
    return {
        "configMapGenerator": [
            {
                "name": SETTINGS,
                "literals": [f"host={spec.host_of(overlay)}"],
                "options": {
                    "disableNameSuffixHash": True,
                    "annotations": {"config.kubernetes.io/local-config": "true"},
                },
            }
        ],
        "replacements": [
            {
                "source": {"kind": "ConfigMap", "name": SETTINGS, "fieldPath": "data.host"},
                "targets": [
                    {
                        "select": {"kind": "Ingress", "name": spec.ui_name},
                        "fieldPaths": ["spec.rules.0.host", "spec.tls.0.hosts.0"],
                    }
                ],
            }
        ],
    }


def publish_commands(spec: DeploySpec, namespace: str) -> list[str]:
    """How a version reaches the replicas: `kit publish` to the channel's broker (none without
    a channel). The in-cluster broker through a port-forward, run in another shell."""
    if spec.channel is None:
        return []
    if spec.channel != k8s.IN_CLUSTER:
        return [f"KIT_CHANNEL_URL={spec.channel} kit publish --version vN"]
    return [
        f"kubectl -n {namespace} port-forward svc/{spec.channel_service} {k8s.CHANNEL_PORT}",
        f"KIT_CHANNEL_URL=nats://127.0.0.1:{k8s.CHANNEL_PORT} kit publish --version vN",
    ]


def _channel_note(spec: DeploySpec, namespace: str) -> list[str]:
    """Header lines: where the replicas' model versions come from, and how to publish one."""
    if spec.channel is None:
        return []
    lines = [f"Channel: the service's replicas serve the version published to {spec.channel_url}"]
    if spec.channel == k8s.IN_CLUSTER:
        lines.append(
            "(the broker of base/channel); publish one (the port-forward in another shell):"
        )
    else:
        lines.append("(an existing NATS broker); publish one:")
    return lines + [f"  {command}" for command in publish_commands(spec, namespace)]


def _storage_note(spec: DeploySpec) -> str:
    return "\n".join(
        [
            f"The broker's storage: {k8s_channel.CHANNEL_STORAGE} (volumeClaimTemplates). "
            "Change it before the first apply (a",
            "StatefulSet's claim templates cannot change afterwards); later, resize the PVC",
            f"data-{spec.channel_statefulset}-0 if its StorageClass allows it.",
        ]
    )


def _header(spec: DeploySpec, overlay: str, scaled: str) -> str:
    lines = [
        f'Overlay "{overlay}" of {spec.model}:{spec.version}, written by `kit deploy k8s`.',
        "The values to change are the fields of this file:",
        "  namespace          where it all goes (create it and its Secrets first: see below)",
        "  images[].newName   your registry, e.g. registry.example.org/team/<image> (push there)",
        "  images[].newTag    the tag `kit build` made",
        f"  {scaled}",
    ]
    if spec.channel == k8s.IN_CLUSTER:
        image = k8s_channel.NATS_IMAGE
        nats = f"images[] {image.split(':')[0]}"
        lines.append(f"  {nats:<19}the channel's broker ({image}): your registry's copy")
    if spec.host:
        lines.append(f"  configMapGenerator {SETTINGS}: host, the UI's host name (its Ingress)")
    lines += ["Render and apply:", f"  kubectl kustomize overlays/{overlay} | kubectl apply -f -"]
    lines += ["Secrets (values made by the commands, never written to a file):"]
    lines += [f"  {command}" for command in secret_commands(spec, spec.namespace(overlay))]
    if spec.host:
        lines.append(f"  {tls_command(spec, spec.namespace(overlay))}")
    lines += _channel_note(spec, spec.namespace(overlay))
    return "\n".join(lines)


def overlay(spec: DeploySpec, name: str) -> str:
    """overlays/<name>/kustomization.yaml: dev (1 replica, small CPU), prod (the sized shape),
    kserve (the UI and the InferenceService instead of the service's Deployment)."""
    fields: Doc = {**KUSTOMIZE, "namespace": spec.namespace(name)}
    sizing = spec.sizing
    if name == "kserve":
        fields["resources"] = ["../../base/ui", "../../base/kserve"]
        if spec.channel == k8s.IN_CLUSTER:
            fields["resources"].append("../../base/channel")
        url = {"name": "KIT_SERVICE_URL", "value": f"http://{spec.predictor_service}"}
        ui_patch = {
            "apiVersion": "apps/v1",
            "kind": "Deployment",
            "metadata": {"name": spec.ui_name},
            "spec": {"template": {"spec": {"containers": [{"name": "ui", "env": [url]}]}}},
        }
        bounds = {"/spec/predictor/minReplicas": sizing.replicas}
        bounds["/spec/predictor/maxReplicas"] = sizing.max_replicas
        patches = [_replace("InferenceService", spec.app, bounds), {"patch": dump(ui_patch)}]
        scaled = "patches             the predictor's minReplicas and maxReplicas (KServe's HPA)"
    else:
        replicas = 1 if name == "dev" else sizing.replicas
        top = DEV_MAX_REPLICAS if name == "dev" else sizing.max_replicas
        fields["resources"] = ["../../base"]
        fields["replicas"] = [{"name": spec.service_name, "count": replicas}]
        hpa = {"/spec/minReplicas": replicas, "/spec/maxReplicas": top}
        patches = [_replace("HorizontalPodAutoscaler", spec.service_name, hpa)]
        if name == "dev":
            cpu = {"/spec/template/spec/containers/0/resources/requests/cpu": DEV_CPU}
            patches.append(_replace("Deployment", spec.service_name, cpu))
        scaled = "replicas           the service's replicas (= the HPA's minReplicas in patches)"
    fields["images"] = _images(spec)
    fields["patches"] = patches
    if spec.host:
        fields.update(_host(spec, name))
    return dump(fields, header=_header(spec, name, scaled))


def render(spec: DeploySpec) -> dict[str, str]:
    """Every file, by its path relative to the output folder."""
    made = f"Written by `kit deploy k8s` for {spec.model}:{spec.version}; change the overlays."
    service_url = f"http://{spec.service_name}"
    ui_files = {
        "deployment.yaml": k8s.deployment(
            spec, "ui", k8s.ui_container(spec, service_url), k8s.UI_UID, UI_REPLICAS
        ),
        "service.yaml": k8s.service(spec, "ui", spec.ui_port),
    }
    if spec.host:
        ui_files["ingress.yaml"] = k8s.ingress(spec)
    service_container = k8s.service_container(spec)
    folders: dict[str, dict[str, Doc]] = {
        "base/service": {
            "deployment.yaml": k8s.deployment(
                spec, "service", service_container, k8s.SERVICE_UID, spec.sizing.replicas
            ),
            "service.yaml": k8s.service(spec, "service", k8s.SERVICE_PORT),
            "hpa.yaml": k8s.autoscaler(spec),
            "pdb.yaml": k8s.disruption_budget(spec),
        },
        "base/ui": ui_files,
    }
    if spec.kserve:
        folders["base/kserve"] = {"inferenceservice.yaml": k8s.inference_service(spec)}
    if spec.channel == k8s.IN_CLUSTER:
        client, headless = k8s_channel.channel_services(spec)
        folders["base/channel"] = {
            "statefulset.yaml": k8s_channel.channel_statefulset(spec),
            "service.yaml": client,
            "headless-service.yaml": headless,
        }
    files: dict[str, str] = {}
    for folder, docs in folders.items():
        header = made + (f"\n{k8s.KSERVE_REASON}" if folder == "base/kserve" else "")
        if folder != "base/ui" and spec.channel is not None:
            header = "\n".join([header, *_channel_note(spec, "NAMESPACE")])
            if spec.channel == k8s.IN_CLUSTER:
                header += "\n(NAMESPACE: the overlay's)"
        if folder == "base/channel":
            header += f"\n{_storage_note(spec)}"
        for filename, doc in docs.items():
            files[f"{folder}/{filename}"] = dump(doc, header=header)
        files[f"{folder}/kustomization.yaml"] = dump(
            {**KUSTOMIZE, "resources": list(docs)}, header=made
        )
    base = ["service", "ui", "channel"] if spec.channel == k8s.IN_CLUSTER else ["service", "ui"]
    files["base/kustomization.yaml"] = dump({**KUSTOMIZE, "resources": base}, header=made)
    for name in spec.overlays:
        files[f"overlays/{name}/kustomization.yaml"] = overlay(spec, name)
    return files


def secret_commands(spec: DeploySpec, namespace: str) -> list[str]:
    """The namespace and the two Secrets, with values made in the pipe: never in a file, in the
    shell's history or on a command line (`--from-file=KEY=/dev/stdin`)."""
    create = f"kubectl -n {namespace} create secret generic"
    return [
        f"kubectl create namespace {namespace}",
        f"openssl rand -hex 32 | tr -d '\\n' | {create} {spec.api_key_secret} "
        "--from-file=KIT_API_KEY=/dev/stdin",
        f"printf 'tester:%s' \"$(openssl rand -hex 12)\" | {create} {spec.auth_secret} "
        "--from-file=KIT_AUTH=/dev/stdin",
    ]


def reveal_auth(spec: DeploySpec, namespace: str) -> str:
    """How the owner reads the testers' USER:PASS back (to hand it to them)."""
    return (
        f"kubectl -n {namespace} get secret {spec.auth_secret} "
        "-o jsonpath='{.data.KIT_AUTH}' | base64 -d"
    )


def tls_command(spec: DeploySpec, namespace: str) -> str:
    """The Ingress's certificate: the user's files (or cert-manager makes the Secret)."""
    return (
        f"kubectl -n {namespace} create secret tls {spec.tls_secret} "
        "--cert=FULLCHAIN.pem --key=KEY.pem  # or let cert-manager make it"
    )
