"""Names the operator writes into the cluster: labels, annotations, its finalizer, and the names of its children."""

from __future__ import annotations

import hashlib

from interlock.gatewayconfig.compile import engine_key_secret
from interlock.resources.common import API_GROUP

__all__ = [
    "ANNOTATION_APPLIED",
    "ANNOTATION_CONFIG_VERSION",
    "ANNOTATION_SNAPSHOT_VERSION",
    "COMPONENT_GATEWAY",
    "COMPONENT_INFERENCE",
    "CONFIG_KEY",
    "CONTROL_PLANE_TOKEN_KEY",
    "ENGINE_KEY_KEY",
    "EVENT_PREFIX",
    "FIELD_MANAGER",
    "FINALIZER",
    "HANDOVER_MANAGER",
    "LABEL_BACKEND",
    "LABEL_COMPONENT",
    "LABEL_GATEWAY",
    "LABEL_INSTANCE",
    "LABEL_MANAGED_BY",
    "LABEL_NAME",
    "LABEL_PART_OF",
    "MANAGED_BY",
    "PROGRESS_PREFIX",
    "SNAPSHOT_KEY",
    "USER_AGENT",
    "control_plane_secret_name",
    "dns_label",
    "engine_key_name",
    "gateway_object_name",
    "model_cache_name",
    "snapshot_secret_name",
]

FINALIZER = f"{API_GROUP}/finalizer"
PROGRESS_PREFIX = API_GROUP  # kopf's progress and diff-base annotations: interlock.dev/...
FIELD_MANAGER = "interlock-operator"
HANDOVER_MANAGER = "interlock-operator-handover"  # keeps replicas while an autoscaler takes them over
MANAGED_BY = "interlock-operator"
USER_AGENT = "interlock-operator"
EVENT_PREFIX = "interlock-"

LABEL_NAME = "app.kubernetes.io/name"
LABEL_INSTANCE = "app.kubernetes.io/instance"
LABEL_COMPONENT = "app.kubernetes.io/component"
LABEL_PART_OF = "app.kubernetes.io/part-of"
LABEL_MANAGED_BY = "app.kubernetes.io/managed-by"
LABEL_BACKEND = f"{API_GROUP}/backend"
LABEL_GATEWAY = f"{API_GROUP}/gateway"

COMPONENT_INFERENCE = "inference"
COMPONENT_GATEWAY = "gateway"

ANNOTATION_CONFIG_VERSION = f"{API_GROUP}/config-version"
ANNOTATION_APPLIED = f"{API_GROUP}/applied"  # digest of the applied configuration of a child
ANNOTATION_SNAPSHOT_VERSION = f"{API_GROUP}/snapshot-version"
CONFIG_KEY = "gateway.json"
SNAPSHOT_KEY = "snapshot.json"
CONTROL_PLANE_TOKEN_KEY = "token"  # noqa: S105 (a key name)
ENGINE_KEY_KEY = "api-key"

_MAX_LABEL = 63


def dns_label(*parts: str) -> str:
    """Join ``parts`` with '-' into a DNS-1123 label; too long, it keeps a prefix and a hash of the whole."""
    name = "-".join(p for p in parts if p)
    if len(name) <= _MAX_LABEL:
        return name
    digest = hashlib.sha256(name.encode()).hexdigest()[:8]
    return f"{name[: _MAX_LABEL - 9].rstrip('-.')}-{digest}"


def gateway_object_name(gateway: str) -> str:
    """ConfigMap, Deployment, Service and PodDisruptionBudget of one gateway: ``interlock-gateway-<gateway>``."""
    return dns_label("interlock-gateway", gateway)


def model_cache_name(backend: str) -> str:
    return f"{backend}-model-cache"


def control_plane_secret_name(gateway: str) -> str:
    """The Secret holding a gateway's control-plane credential: ``<gateway>-controlplane``."""
    return f"{gateway}-controlplane"


def snapshot_secret_name(gateway: str) -> str:
    """The Secret with a gateway's last key snapshot, for pods that start while the control plane is down."""
    return f"{gateway}-snapshot"


def engine_key_name(backend: str) -> str:
    """The Secret holding the API key a self-hosted engine demands (and its gateways send)."""
    return engine_key_secret(backend)
