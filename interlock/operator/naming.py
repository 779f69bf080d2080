"""Names the operator writes into the cluster: labels, annotations, its finalizer, and the names of its children."""

from __future__ import annotations

import hashlib

from interlock.resources.common import API_GROUP

__all__ = [
    "ANNOTATION_CONFIG_VERSION",
    "COMPONENT_GATEWAY",
    "COMPONENT_INFERENCE",
    "CONFIG_KEY",
    "EVENT_PREFIX",
    "FIELD_MANAGER",
    "FINALIZER",
    "LABEL_BACKEND",
    "LABEL_COMPONENT",
    "LABEL_GATEWAY",
    "LABEL_INSTANCE",
    "LABEL_MANAGED_BY",
    "LABEL_NAME",
    "LABEL_PART_OF",
    "MANAGED_BY",
    "PROGRESS_PREFIX",
    "USER_AGENT",
    "dns_label",
    "gateway_object_name",
    "model_cache_name",
]

FINALIZER = f"{API_GROUP}/finalizer"
PROGRESS_PREFIX = API_GROUP  # kopf's progress and diff-base annotations: interlock.dev/...
FIELD_MANAGER = "interlock-operator"
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
CONFIG_KEY = "gateway.json"

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
