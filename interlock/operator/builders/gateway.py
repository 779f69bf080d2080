"""A gateway's children, one gateway per namespace and ``Route.spec.gateway``.

The ConfigMap with the compiled ``GatewayConfig``; the Deployment that mounts it as a directory (so the kubelet's
symlink swap reaches running pods; no config hash on the pod template, so a config change never restarts them) and
the referenced Secrets as files (re-read by the gateway when the kubelet swaps them: key rotation needs no
restart); a Service with the client port only (the ops port, ``/readyz`` and ``/metrics``, is for the kubelet,
Prometheus and the operator); a PodDisruptionBudget; and the Secret with the gateway's own control-plane
credential. Stopping pods drain: a preStop delay while endpoints go, then up to ``gateway_drain_seconds`` for
in-flight streams.
"""

from __future__ import annotations

import base64
from collections.abc import Iterable
from typing import Any

from interlock.gatewayconfig.model import GatewayConfig
from interlock.operator.builders.common import (
    CONTAINER_SECURITY,
    Manifest,
    canonical_resources,
    http_probe,
    meta,
    pull_secrets,
    spread,
)
from interlock.operator.naming import (
    ANNOTATION_CONFIG_VERSION,
    ANNOTATION_SNAPSHOT_VERSION,
    COMPONENT_GATEWAY,
    CONFIG_KEY,
    CONTROL_PLANE_TOKEN_KEY,
    LABEL_COMPONENT,
    LABEL_GATEWAY,
    LABEL_INSTANCE,
    LABEL_MANAGED_BY,
    LABEL_NAME,
    LABEL_PART_OF,
    MANAGED_BY,
    SNAPSHOT_KEY,
    control_plane_secret_name,
    dns_label,
    gateway_object_name,
    snapshot_secret_name,
)
from interlock.operator.settings import OperatorSettings

__all__ = [
    "SNAPSHOT_DIR",
    "control_plane_secret",
    "gateway_config_map",
    "gateway_deployment",
    "gateway_hpa",
    "gateway_labels",
    "gateway_pdb",
    "gateway_selector",
    "gateway_service",
    "snapshot_secret",
]

_RUN_AS = 10001
SNAPSHOT_DIR = "/var/run/interlock/snapshot"


def gateway_selector(gateway: str) -> dict[str, str]:
    return {LABEL_GATEWAY: gateway, LABEL_COMPONENT: COMPONENT_GATEWAY}


def gateway_labels(gateway: str) -> dict[str, str]:
    return {
        LABEL_NAME: "interlock-gateway",
        LABEL_INSTANCE: gateway_object_name(gateway),
        LABEL_PART_OF: "interlock",
        LABEL_MANAGED_BY: MANAGED_BY,
        **gateway_selector(gateway),
    }


def gateway_config_map(namespace: str, gateway: str, config: GatewayConfig) -> Manifest:
    """The compiled config, key ``gateway.json``; its version is an annotation of the ConfigMap, not of the pods."""
    return {
        "apiVersion": "v1",
        "kind": "ConfigMap",
        "metadata": meta(
            gateway_object_name(gateway),
            namespace,
            gateway_labels(gateway),
            {ANNOTATION_CONFIG_VERSION: config.version},
        ),
        "data": {CONFIG_KEY: config.to_json().decode()},
    }


def control_plane_secret(namespace: str, gateway: str, credential: str) -> Manifest:
    """``<gateway>-controlplane``: the credential the gateway presents to the control plane (key ``token``)."""
    return {
        "apiVersion": "v1",
        "kind": "Secret",
        "type": "Opaque",
        "metadata": meta(control_plane_secret_name(gateway), namespace, gateway_labels(gateway)),
        "data": {CONTROL_PLANE_TOKEN_KEY: base64.b64encode(credential.encode()).decode()},
    }


def snapshot_secret(namespace: str, gateway: str, body: bytes, version: str) -> Manifest:
    """``<gateway>-snapshot``: the last key snapshot (key ``snapshot.json``), annotated with its version."""
    return {
        "apiVersion": "v1",
        "kind": "Secret",
        "type": "Opaque",
        "metadata": meta(
            snapshot_secret_name(gateway), namespace, gateway_labels(gateway), {ANNOTATION_SNAPSHOT_VERSION: version}
        ),
        "data": {SNAPSHOT_KEY: base64.b64encode(body).decode()},
    }


def _secret_mounts(config: GatewayConfig, secrets_dir: str) -> tuple[list[Manifest], list[Manifest]]:
    """One volume per referenced Secret with only the referenced keys, at ``<secrets_dir>/<secret>/<key>``.

    ``optional``: a missing Secret or key leaves that backend without a key file (its requests fail and its
    LLMBackend says why) instead of keeping every gateway pod from starting.
    """
    keys: dict[str, set[str]] = {}
    for backend in config.backends.values():
        if backend.credentials is not None:
            keys.setdefault(backend.credentials.secret, set()).add(backend.credentials.key)
    volumes, mounts = [], []
    for secret in sorted(keys):
        volume = dns_label("secret", secret.replace(".", "-"))
        volumes.append(
            {
                "name": volume,
                "secret": {
                    "secretName": secret,
                    "items": [{"key": key, "path": key} for key in sorted(keys[secret])],
                    "optional": True,
                    "defaultMode": 0o440,
                },
            }
        )
        mounts.append({"name": volume, "mountPath": f"{secrets_dir}/{secret}", "readOnly": True})
    return volumes, mounts


def _merged_env(*groups: Iterable[dict[str, Any]]) -> list[dict[str, Any]]:
    """EnvVar lists joined by name: a later entry replaces an earlier one in place (the API rejects repeats)."""
    out: dict[str, dict[str, Any]] = {}
    for group in groups:
        for entry in group:
            out[str(entry["name"])] = dict(entry)
    return list(out.values())


def _env(namespace: str, gateway: str, settings: OperatorSettings) -> list[dict[str, Any]]:
    config_dir = str(settings.gateway_config_dir)
    env: list[dict[str, Any]] = [
        {"name": "POD_NAME", "valueFrom": {"fieldRef": {"apiVersion": "v1", "fieldPath": "metadata.name"}}},
        {"name": "INTERLOCK_GATEWAY_HOST", "value": "0.0.0.0"},  # noqa: S104
        {"name": "INTERLOCK_GATEWAY_PORT", "value": str(settings.gateway_port)},
        {"name": "INTERLOCK_GATEWAY_OPS_PORT", "value": str(settings.gateway_ops_port)},
        {"name": "INTERLOCK_GATEWAY_CONFIG_FILE", "value": f"{config_dir}/{CONFIG_KEY}"},
        {"name": "INTERLOCK_GATEWAY_SECRETS_DIR", "value": str(settings.gateway_secrets_dir)},
        # Usage seq numbers are per gateway id: one per pod, under the scope of the gateway's credential.
        {"name": "INTERLOCK_GATEWAY_GATEWAY_ID", "value": f"{namespace}/{gateway}/$(POD_NAME)"},
    ]
    if settings.gateway_signing_key is not None:
        ref = {"name": control_plane_secret_name(gateway), "key": CONTROL_PLANE_TOKEN_KEY}
        env.append({"name": "INTERLOCK_GATEWAY_CONTROL_PLANE_TOKEN", "valueFrom": {"secretKeyRef": ref}})
    if _mirrors_snapshots(settings):
        env.append({"name": "INTERLOCK_GATEWAY_SNAPSHOT_SEED_FILE", "value": f"{SNAPSHOT_DIR}/{SNAPSHOT_KEY}"})
    return _merged_env(env, settings.gateway_env)


def _mirrors_snapshots(settings: OperatorSettings) -> bool:
    return bool(settings.control_plane_url) and settings.gateway_signing_key is not None


def gateway_deployment(namespace: str, gateway: str, config: GatewayConfig, settings: OperatorSettings) -> Manifest:
    name = gateway_object_name(gateway)
    labels = gateway_labels(gateway)
    secret_volumes, secret_mounts = _secret_mounts(config, str(settings.gateway_secrets_dir))
    if _mirrors_snapshots(settings):
        secret_volumes.append({"name": "snapshot", "secret": {"secretName": snapshot_secret_name(gateway),
                                                              "optional": True, "defaultMode": 0o440}})  # fmt: skip
        secret_mounts.append({"name": "snapshot", "mountPath": SNAPSHOT_DIR, "readOnly": True})
    container: Manifest = {
        "name": "gateway",
        "image": settings.gateway_image,
        "imagePullPolicy": "IfNotPresent",
        "command": ["interlock", "gateway"],
        "env": _env(namespace, gateway, settings),
        "ports": [
            {"name": "http", "containerPort": settings.gateway_port, "protocol": "TCP"},
            {"name": "ops", "containerPort": settings.gateway_ops_port, "protocol": "TCP"},
        ],
        "readinessProbe": http_probe("/readyz", port="ops", period=5, failures=3, timeout=2),
        "livenessProbe": http_probe("/healthz", period=10, failures=3, timeout=2),
        "lifecycle": {"preStop": {"sleep": {"seconds": settings.gateway_prestop_seconds}}},
        "resources": canonical_resources(settings.gateway_resources),
        "securityContext": {
            **CONTAINER_SECURITY,
            "runAsNonRoot": True,
            "runAsUser": _RUN_AS,
            "runAsGroup": _RUN_AS,
            "readOnlyRootFilesystem": True,
        },
        "volumeMounts": [
            # The whole directory, never subPath: only a directory mount sees the kubelet's updates.
            {"name": "config", "mountPath": str(settings.gateway_config_dir), "readOnly": True},
            {"name": "tmp", "mountPath": "/tmp"},  # noqa: S108
            *secret_mounts,
        ],
    }
    pod: Manifest = {
        "automountServiceAccountToken": False,
        "enableServiceLinks": False,
        "securityContext": {"fsGroup": _RUN_AS, "seccompProfile": {"type": "RuntimeDefault"}},
        "terminationGracePeriodSeconds": settings.gateway_prestop_seconds + settings.gateway_drain_seconds,
        "affinity": spread(gateway_selector(gateway)),
        "containers": [container],
        "volumes": [
            {"name": "config", "configMap": {"name": name, "defaultMode": 0o444}},
            {"name": "tmp", "emptyDir": {}},
            *secret_volumes,
        ],
    }
    secrets = pull_secrets(settings.image_pull_secrets)
    if secrets:
        pod["imagePullSecrets"] = secrets
    return {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": meta(name, namespace, labels),
        "spec": {
            **({} if settings.gateway_autoscaling else {"replicas": settings.gateway_replicas}),
            "selector": {"matchLabels": gateway_selector(gateway)},
            "strategy": {"type": "RollingUpdate", "rollingUpdate": {"maxSurge": 1, "maxUnavailable": 0}},
            "revisionHistoryLimit": 3,
            "template": {
                "metadata": {
                    "labels": labels,
                    "annotations": {
                        "prometheus.io/scrape": "true",
                        "prometheus.io/port": str(settings.gateway_ops_port),
                        "prometheus.io/path": "/metrics",
                    },
                },
                "spec": pod,
            },
        },
    }


def gateway_service(namespace: str, gateway: str, settings: OperatorSettings) -> Manifest:
    """The client port only: the ops port's tenant names and spend are not for every caller."""
    return {
        "apiVersion": "v1",
        "kind": "Service",
        "metadata": meta(gateway_object_name(gateway), namespace, gateway_labels(gateway)),
        "spec": {
            "type": "ClusterIP",
            "selector": gateway_selector(gateway),
            "ports": [{"name": "http", "port": settings.gateway_service_port, "targetPort": "http", "protocol": "TCP"}],
        },
    }


def gateway_hpa(namespace: str, gateway: str, settings: OperatorSettings) -> Manifest | None:
    """With ``gateway_autoscaling``: an HPA on the gateway pods' CPU (the Deployment then carries no replicas)."""
    scaling = settings.gateway_autoscaling
    if scaling is None:
        return None
    name = gateway_object_name(gateway)
    return {
        "apiVersion": "autoscaling/v2",
        "kind": "HorizontalPodAutoscaler",
        "metadata": meta(name, namespace, gateway_labels(gateway)),
        "spec": {
            "scaleTargetRef": {"apiVersion": "apps/v1", "kind": "Deployment", "name": name},
            "minReplicas": scaling.min_replicas,
            "maxReplicas": scaling.max_replicas,
            "metrics": [
                {
                    "type": "Resource",
                    "resource": {
                        "name": "cpu",
                        "target": {"type": "Utilization", "averageUtilization": scaling.cpu_utilization},
                    },
                }
            ],
        },
    }


def gateway_pdb(namespace: str, gateway: str) -> Manifest:
    """At most one gateway pod down at a time for voluntary disruptions (drains), whatever the replica count."""
    return {
        "apiVersion": "policy/v1",
        "kind": "PodDisruptionBudget",
        "metadata": meta(gateway_object_name(gateway), namespace, gateway_labels(gateway)),
        "spec": {"maxUnavailable": 1, "selector": {"matchLabels": gateway_selector(gateway)}},
    }
