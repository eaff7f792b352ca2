"""The channel's broker in the kustomize base (`kit deploy k8s --channel in-cluster`).

One NATS JetStream server as a StatefulSet (its store on a claimed volume), its headless
Service and the Service the replicas reach it by (`DeploySpec.channel_service`, port 4222).
Non-root on a read-only root like the kit's own pods. Validated against the Kubernetes
schemas only: its image cannot be pulled here (no registry), so it is not run here.
"""

from __future__ import annotations

from app_production.k8s import (
    CHANNEL_PORT,
    CONTAINER_SECURITY,
    DeploySpec,
    Doc,
    _meta,
    _pod,
    _probe,
    labels,
    selector,
)

NATS_IMAGE = "nats:2.10-alpine"  # its entrypoint runs nats-server when the arguments are flags
NATS_UID = 1000  # any non-root user: nats-server writes only to its volume (fsGroup)
MONITOR_PORT = 8222  # NATS' monitoring port (/healthz)
CHANNEL_DATA = "/data"  # JetStream's store: the StatefulSet's volume
# The broker's volume. To change it, edit volumeClaimTemplates in base/channel/statefulset.yaml
# (or patch it in an overlay) before the first apply: a StatefulSet's claim templates cannot
# change afterwards; then resize the PVC data-<StatefulSet>-0 itself, if its StorageClass
# allows expansion.
CHANNEL_STORAGE = "1Gi"


def channel_container(spec: DeploySpec) -> Doc:
    """NATS with JetStream, storing in its volume, monitoring (/healthz) on MONITOR_PORT."""
    return {
        "name": "nats",
        "image": NATS_IMAGE,
        "imagePullPolicy": "IfNotPresent",
        "args": ["-js", "-sd", CHANNEL_DATA, "-m", str(MONITOR_PORT)],
        "ports": [
            {"name": "client", "containerPort": CHANNEL_PORT, "protocol": "TCP"},
            {"name": "monitor", "containerPort": MONITOR_PORT, "protocol": "TCP"},
        ],
        "env": [{"name": "GOMEMLIMIT", "value": "450MiB"}],  # Go's GC keeps it under the limit
        # /healthz answers 200 once JetStream is up (it reads its store back at a start)
        "startupProbe": _probe("/healthz", MONITOR_PORT, period=2, failures=30),
        "readinessProbe": _probe("/healthz", MONITOR_PORT, period=5, failures=2),
        "livenessProbe": _probe("/healthz", MONITOR_PORT, period=10, failures=3, timeout=3),
        # Not measured: a few model versions in the object store, streamed through in chunks.
        "resources": {
            "requests": {"cpu": "100m", "memory": "128Mi"},
            "limits": {"cpu": "1000m", "memory": "512Mi"},
        },
        "securityContext": CONTAINER_SECURITY,  # its only writes: JetStream's store, the volume
        "volumeMounts": [{"name": "data", "mountPath": CHANNEL_DATA}],
    }


def channel_statefulset(spec: DeploySpec) -> Doc:
    """The broker: one server (several would need a JetStream cluster: routes, 3 replicas)."""
    pod = _pod(channel_container(spec), NATS_UID)
    del pod["volumes"]  # its volume is the claim's
    claim = {
        "accessModes": ["ReadWriteOnce"],
        "resources": {"requests": {"storage": CHANNEL_STORAGE}},
    }
    return {
        "apiVersion": "apps/v1",
        "kind": "StatefulSet",
        "metadata": _meta(spec, spec.channel_statefulset, "channel"),
        "spec": {
            "replicas": 1,
            "serviceName": spec.channel_headless,
            "selector": {"matchLabels": selector(spec, "channel")},
            "template": {"metadata": {"labels": labels(spec, "channel")}, "spec": pod},
            "volumeClaimTemplates": [{"metadata": _meta(spec, "data", "channel"), "spec": claim}],
        },
    }


def channel_services(spec: DeploySpec) -> tuple[Doc, Doc]:
    """The Service the replicas reach the broker by, and the StatefulSet's headless one."""
    port = {"name": "client", "port": CHANNEL_PORT, "targetPort": CHANNEL_PORT, "protocol": "TCP"}

    def made(name: str, kind: Doc) -> Doc:
        return {
            "apiVersion": "v1",
            "kind": "Service",
            "metadata": _meta(spec, name, "channel"),
            "spec": {**kind, "selector": selector(spec, "channel"), "ports": [port]},
        }

    return made(spec.channel_service, {"type": "ClusterIP"}), made(
        spec.channel_headless, {"clusterIP": "None"}
    )
