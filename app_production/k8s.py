"""Kubernetes manifests of a model: a kustomize base, `dev` and `prod` overlays, and optionally a
KServe InferenceService. Every object is a Python dict built from one `DeploySpec`; the files
and overlays are app_production/kustomize.py's, `kit deploy k8s` (scripts/deploy_commands.py)
writes them.

Layout (paths relative to the output folder)::

    base/service/  Deployment, Service (80 → 3000), HorizontalPodAutoscaler, PodDisruptionBudget
    base/ui/       Deployment, Service (80 → the UI's port), Ingress (with --host)
    base/kserve/   InferenceService (with --kserve): the same image as a custom predictor
    base/channel/  with --channel in-cluster: a NATS JetStream broker (StatefulSet, 1 replica),
                   its headless Service and the Service the replicas reach it by (4222)
    overlays/dev/  overlays/prod/  overlays/kserve/ (with --kserve: UI + InferenceService)

With a channel (--channel), every service replica follows the model version published to a
NATS broker (KIT_CHANNEL_URL; KIT_REPLICA_ID, its pod's name, says who serves what).

Secrets are referenced, never written: their values are made by the `kubectl create secret`
commands of `kustomize.secret_commands`, so no value is ever on disk.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from app_production.images import UI_PORTS, UiKind, default_tag
from app_production.sizing import Sizing

Doc = dict[str, Any]
SERVICE_PORT = 3000  # BentoML's default: `EXPOSE 3000` in the Bento's Dockerfile
READY_PATH, LIVE_PATH = "/readyz", "/livez"  # BentoML's own; open without a key (guards.py)
SERVICE_UID = 1034  # user bentoml of BentoML's image
UI_UID = 1035  # user kit of the UI image (scripts/container/ui.Containerfile)
# A path the UI answers without credentials: Gradio with auth answers GET / with its login
# page; Streamlit's health endpoint is open.
UI_PROBE_PATHS: dict[str, str] = {"gradio": "/", "streamlit": "/_stcore/health"}
MAX_PREFIX = 63 - len("-predictor")  # the longest suffix of a name below (KServe's Service)
KSERVE_REASON = (
    "The kit's own image, not KServe's stock scikit-learn runtime: that runtime pins an older "
    "scikit-learn than the kit's artifacts are saved with, and would not serve the kit's API."
)
IN_CLUSTER = "in-cluster"  # --channel in-cluster: the broker is written into the base
CHANNEL_PORT = 4222  # NATS' client port (the broker itself: app_production/k8s_channel.py)
# Each pod's /tmp (BENTOML_HOME is there). Without a channel it holds BentoML's own files only
# (the model is read from the image): 256Mi. With one, it also holds every version downloaded
# from the broker (its model file and BentoML's copy of it): 1Gi leaves room for a few. Only
# with a channel, so the manifests without one stay as they were.
TMP_LIMIT, CHANNEL_TMP_LIMIT = "256Mi", "1Gi"


def object_prefix(model: str) -> str:
    """The model's name as the prefix of object names (DNS-1035: a-z, 0-9, '-', a letter first)."""
    name = model.replace("_", "-").strip("-")
    if not name[:1].isalpha():
        name = f"kit-{name}"
    return name[:MAX_PREFIX].rstrip("-")


@dataclass(frozen=True)
class DeploySpec:
    """What a model's manifests are made of; every name and value in them comes from here.

    `model` and `version` come from the model's manifest (model/artifact.py); the images are
    the ones `kit build` tags (`service_image`, `ui_image`); `sizing` from `kit bench`
    (app_production/sizing.py). Object names derive from the model's name: for `penguins`,
    Deployments `penguins-service` and `penguins-ui`, Secrets `penguins-api-key` (KIT_API_KEY,
    read by the service and the UI) and `penguins-ui-auth` (KIT_AUTH, the testers' USER:PASS),
    namespaces `penguins-dev` and `penguins` (and `penguins-kserve`). The UI reaches the
    service by its short cluster DNS name (`http://penguins-service`): it resolves in the
    pod's own namespace, so an overlay's `namespace:` needs no second edit.

    `channel`: None (the service serves its image's model), `IN_CLUSTER` (a broker in the base,
    reached the same way: `nats://penguins-channel:4222`), or an existing broker's URL
    (nats://HOST:PORT, checked by the CLI with broker_channel.broker_address).
    """

    model: str
    version: str
    sizing: Sizing
    ui: UiKind = "gradio"
    host: str | None = None
    kserve: bool = False
    channel: str | None = None
    app: str = field(init=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "app", object_prefix(self.model))

    @property
    def service_name(self) -> str:
        return f"{self.app}-service"

    @property
    def ui_name(self) -> str:
        return f"{self.app}-ui"

    @property
    def api_key_secret(self) -> str:
        return f"{self.app}-api-key"

    @property
    def auth_secret(self) -> str:
        return f"{self.app}-ui-auth"

    @property
    def tls_secret(self) -> str:
        return f"{self.ui_name}-tls"  # the Ingress's certificate: the user's, or cert-manager's

    @property
    def predictor_service(self) -> str:
        return f"{self.app}-predictor"  # the Service KServe's Standard mode makes

    @property
    def channel_url(self) -> str | None:
        """The service's KIT_CHANNEL_URL (None: no channel)."""
        if self.channel == IN_CLUSTER:
            return f"nats://{self.channel_service}:{CHANNEL_PORT}"
        return self.channel

    @property
    def channel_service(self) -> str:
        return f"{self.app}-channel"  # the Service the replicas (and port-forward) reach it by

    @property
    def channel_statefulset(self) -> str:
        # Its pods carry the label controller-revision-hash=NAME-HASH (at most 63 characters,
        # the hash up to 10): a name of at most 52.
        return f"{self.app[: 52 - len('-channel')].rstrip('-')}-channel"

    @property
    def channel_headless(self) -> str:
        return f"{self.channel_statefulset}-headless"  # the StatefulSet's serviceName

    def namespace(self, overlay: str) -> str:
        return self.app if overlay == "prod" else f"{self.app}-{overlay}"

    @property
    def overlays(self) -> tuple[str, ...]:
        return ("dev", "prod", "kserve") if self.kserve else ("dev", "prod")

    @property
    def service_image(self) -> str:
        return default_tag(f"{self.model}:{self.version}", "service")  # as `kit build` tags it

    @property
    def ui_image(self) -> str:
        return default_tag(f"{self.model}:{self.version}", self.ui)  # `kit build --ui UI`

    @property
    def ui_port(self) -> int:
        return UI_PORTS[self.ui]

    def host_of(self, overlay: str) -> str | None:
        if self.host is None:
            return None
        return self.host if overlay == "prod" else f"{overlay}.{self.host}"


def labels(spec: DeploySpec, component: str) -> dict[str, str]:
    return {
        "app.kubernetes.io/name": f"{spec.app}-{component}",
        "app.kubernetes.io/part-of": spec.app,
        "app.kubernetes.io/component": component,
        "app.kubernetes.io/managed-by": "kit",
    }


def selector(spec: DeploySpec, component: str) -> dict[str, str]:
    keys = ("app.kubernetes.io/name", "app.kubernetes.io/part-of")
    return {k: v for k, v in labels(spec, component).items() if k in keys}


def _meta(spec: DeploySpec, name: str, component: str) -> Doc:
    return {"name": name, "labels": labels(spec, component)}


def _probe(path: str, port: int, period: int, failures: int, timeout: int = 2) -> Doc:
    return {
        "httpGet": {"path": path, "port": port},
        "periodSeconds": period,
        "failureThreshold": failures,
        "timeoutSeconds": timeout,
    }


def _secret_env(name: str, secret: str) -> Doc:
    return {"name": name, "valueFrom": {"secretKeyRef": {"name": secret, "key": name}}}


def _pod_security(uid: int) -> Doc:
    return {
        "runAsNonRoot": True,
        "runAsUser": uid,
        "runAsGroup": uid,
        "fsGroup": uid,
        "seccompProfile": {"type": "RuntimeDefault"},
    }


CONTAINER_SECURITY: Doc = {
    "allowPrivilegeEscalation": False,
    "readOnlyRootFilesystem": True,  # writes go to the emptyDir at /tmp
    "capabilities": {"drop": ["ALL"]},
}
TMP_MOUNT: Doc = {"name": "tmp", "mountPath": "/tmp"}  # noqa: S108 - an emptyDir of the pod


def service_container(spec: DeploySpec, name: str = "service") -> Doc:
    """The service's container: BentoML's entrypoint runs `bentoml serve` with these args.

    The root filesystem is read-only: BentoML writes only under BENTOML_HOME (its folders and
    the Prometheus multiprocess folder) and the temp folder (its sockets, the workers' serving
    lock), both moved to the emptyDir at /tmp; the model is read from the image."""
    startup = _probe(READY_PATH, SERVICE_PORT, period=2, failures=60)  # model load: up to 120 s
    return {
        "name": name,
        "image": spec.service_image,
        "imagePullPolicy": "IfNotPresent",
        "args": ["serve", "--host", "0.0.0.0", "--port", str(SERVICE_PORT)],  # noqa: S104
        "ports": [{"name": "http", "containerPort": SERVICE_PORT, "protocol": "TCP"}],
        "env": [
            {"name": "KIT_REQUIRE_API_KEY", "value": "true"},  # no key: the service refuses
            _secret_env("KIT_API_KEY", spec.api_key_secret),
            {"name": "BENTOML_HOME", "value": "/tmp/bentoml"},  # noqa: S108
            {"name": "PYTHONDONTWRITEBYTECODE", "value": "1"},
            *_channel_env(spec),
        ],
        "startupProbe": startup,
        "readinessProbe": _probe(READY_PATH, SERVICE_PORT, period=5, failures=2),
        # In a container BentoML does not restart a killed worker: this probe restarts the pod.
        "livenessProbe": _probe(LIVE_PATH, SERVICE_PORT, period=10, failures=3, timeout=3),
        "resources": spec.sizing.resources.to_k8s(),
        "securityContext": CONTAINER_SECURITY,
        "volumeMounts": [TMP_MOUNT],
    }


def _channel_env(spec: DeploySpec) -> list[Doc]:
    """The broker to follow and this replica's id (its pod's name): none without a channel."""
    if spec.channel_url is None:
        return []
    pod_name = {"fieldRef": {"fieldPath": "metadata.name"}}
    return [
        {"name": "KIT_CHANNEL_URL", "value": spec.channel_url},
        {"name": "KIT_REPLICA_ID", "valueFrom": pod_name},
    ]


def service_tmp_limit(spec: DeploySpec) -> str:
    return TMP_LIMIT if spec.channel is None else CHANNEL_TMP_LIMIT


def _pod(container: Doc, uid: int, tmp_limit: str = TMP_LIMIT) -> Doc:
    return {
        "automountServiceAccountToken": False,
        "enableServiceLinks": False,
        "securityContext": _pod_security(uid),
        "containers": [container],
        "volumes": [{"name": "tmp", "emptyDir": {"sizeLimit": tmp_limit}}],
    }


def deployment(spec: DeploySpec, component: str, container: Doc, uid: int, replicas: int) -> Doc:
    name = f"{spec.app}-{component}"
    template_labels = {**labels(spec, component), "app.kubernetes.io/version": spec.version}
    pod = _pod(container, uid, service_tmp_limit(spec) if component == "service" else TMP_LIMIT)
    if component == "service":  # spread the replicas over nodes where the cluster can
        pod["topologySpreadConstraints"] = [
            {
                "maxSkew": 1,
                "topologyKey": "kubernetes.io/hostname",
                "whenUnsatisfiable": "ScheduleAnyway",
                "labelSelector": {"matchLabels": selector(spec, component)},
            }
        ]
    return {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": _meta(spec, name, component),
        "spec": {
            "replicas": replicas,
            "selector": {"matchLabels": selector(spec, component)},
            "strategy": {
                "type": "RollingUpdate",
                "rollingUpdate": {"maxSurge": 1, "maxUnavailable": 0},
            },
            "template": {"metadata": {"labels": template_labels}, "spec": pod},
        },
    }


def service(spec: DeploySpec, component: str, port: int) -> Doc:
    return {
        "apiVersion": "v1",
        "kind": "Service",
        "metadata": _meta(spec, f"{spec.app}-{component}", component),
        "spec": {
            "type": "ClusterIP",
            "selector": selector(spec, component),
            "ports": [{"name": "http", "port": 80, "targetPort": port, "protocol": "TCP"}],
        },
    }


def autoscaler(spec: DeploySpec) -> Doc:
    target = {"type": "Utilization", "averageUtilization": spec.sizing.hpa_cpu_percent}
    return {
        "apiVersion": "autoscaling/v2",
        "kind": "HorizontalPodAutoscaler",
        "metadata": _meta(spec, spec.service_name, "service"),
        "spec": {
            "scaleTargetRef": {
                "apiVersion": "apps/v1",
                "kind": "Deployment",
                "name": spec.service_name,
            },
            "minReplicas": spec.sizing.replicas,
            "maxReplicas": spec.sizing.max_replicas,
            "metrics": [{"type": "Resource", "resource": {"name": "cpu", "target": target}}],
        },
    }


def disruption_budget(spec: DeploySpec) -> Doc:
    return {
        "apiVersion": "policy/v1",
        "kind": "PodDisruptionBudget",
        "metadata": _meta(spec, spec.service_name, "service"),
        "spec": {"maxUnavailable": 1, "selector": {"matchLabels": selector(spec, "service")}},
    }


def ui_container(spec: DeploySpec, service_url: str) -> Doc:
    """The UI's container: the image's `kit demo --backend remote`, calling the service."""
    port, path = spec.ui_port, UI_PROBE_PATHS[spec.ui]
    return {
        "name": "ui",
        "image": spec.ui_image,
        "imagePullPolicy": "IfNotPresent",
        "ports": [{"name": "http", "containerPort": port, "protocol": "TCP"}],
        "env": [
            {"name": "KIT_SERVICE_URL", "value": service_url},
            {"name": "PORT", "value": str(port)},  # the image's `kit demo --port "$PORT"`
            _secret_env("KIT_API_KEY", spec.api_key_secret),
            _secret_env("KIT_AUTH", spec.auth_secret),
            {"name": "HOME", "value": "/tmp/home"},  # noqa: S108 - caches of the UI framework
        ],
        "startupProbe": _probe(path, port, period=2, failures=60),
        "readinessProbe": _probe(path, port, period=5, failures=2),
        "livenessProbe": _probe(path, port, period=10, failures=3, timeout=3),
        # Not measured: the prototype (model in-process) peaked at ~460 MiB in `kit bench`.
        "resources": {
            "requests": {"cpu": "100m", "memory": "512Mi"},
            "limits": {"cpu": "1000m", "memory": "1Gi"},
        },
        "securityContext": CONTAINER_SECURITY,
        "volumeMounts": [TMP_MOUNT],
    }


def ingress(spec: DeploySpec) -> Doc:
    assert spec.host is not None
    backend = {"service": {"name": spec.ui_name, "port": {"number": 80}}}
    return {
        "apiVersion": "networking.k8s.io/v1",
        "kind": "Ingress",
        "metadata": _meta(spec, spec.ui_name, "ui"),
        "spec": {
            "tls": [{"hosts": [spec.host], "secretName": spec.tls_secret}],
            "rules": [
                {
                    "host": spec.host,
                    "http": {"paths": [{"path": "/", "pathType": "Prefix", "backend": backend}]},
                }
            ],
        },
    }


def inference_service(spec: DeploySpec) -> Doc:
    """The service image as a KServe custom predictor: Standard mode (no Knative), HPA on CPU."""
    container = service_container(spec, name="kserve-container")
    container["ports"] = [{"containerPort": SERVICE_PORT, "protocol": "TCP"}]
    pod = _pod(container, SERVICE_UID, service_tmp_limit(spec))
    return {
        "apiVersion": "serving.kserve.io/v1beta1",
        "kind": "InferenceService",
        "metadata": {
            "name": spec.app,
            "labels": labels(spec, "service"),
            "annotations": {
                "serving.kserve.io/deploymentMode": "Standard",
                "serving.kserve.io/autoscalerClass": "hpa",
            },
        },
        "spec": {
            "predictor": {
                "minReplicas": spec.sizing.replicas,
                "maxReplicas": spec.sizing.max_replicas,
                "scaleMetric": "cpu",
                "scaleTarget": spec.sizing.hpa_cpu_percent,
                **pod,
            }
        },
    }
