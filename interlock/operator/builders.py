"""Pure builders: a spec in, a manifest dict out. No I/O, no owner references (``reconcile`` adds those).

Self-hosted ``LLMBackend``: a Deployment running the engine, a ClusterIP Service on port 8000 (the URL
``compile_config`` gives the gateway) and, with ``serving.modelCache``, the PersistentVolumeClaim for the weights.
Gateway (one per namespace and ``Route.spec.gateway``): the ConfigMap with the compiled ``GatewayConfig``, the
gateway Deployment that mounts it as a directory (so the kubelet's symlink swap reaches running pods; no config hash
on the pod template, so a config change never restarts them) and the referenced Secrets as files, a Service and a
PodDisruptionBudget.
"""

from __future__ import annotations

from typing import Any

from interlock.gatewayconfig.compile import SELF_HOSTED_PORT
from interlock.gatewayconfig.model import GatewayConfig
from interlock.operator.engines import ENGINES
from interlock.operator.naming import (
    ANNOTATION_CONFIG_VERSION,
    COMPONENT_GATEWAY,
    COMPONENT_INFERENCE,
    CONFIG_KEY,
    LABEL_BACKEND,
    LABEL_COMPONENT,
    LABEL_GATEWAY,
    LABEL_INSTANCE,
    LABEL_MANAGED_BY,
    LABEL_NAME,
    LABEL_PART_OF,
    MANAGED_BY,
    dns_label,
    gateway_object_name,
    model_cache_name,
)
from interlock.operator.settings import OperatorSettings
from interlock.resources.llmbackend import LLMBackend

__all__ = [
    "Manifest",
    "gateway_config_map",
    "gateway_deployment",
    "gateway_pdb",
    "gateway_selector",
    "gateway_service",
    "inference_deployment",
    "inference_selector",
    "inference_service",
    "model_cache_claim",
]

Manifest = dict[str, Any]

GPU_RESOURCE = "nvidia.com/gpu"
STARTUP_BUDGET_S = 30 * 60  # weights of a large model can take this long to download and load
_STARTUP_PERIOD_S = 10


def _meta(name: str, namespace: str, labels: dict[str, str], annotations: dict[str, str] | None = None) -> Manifest:
    meta: Manifest = {"name": name, "namespace": namespace, "labels": labels}
    if annotations:
        meta["annotations"] = annotations
    return meta


def _http_probe(path: str, *, period: int, failures: int, timeout: int = 5) -> Manifest:
    return {
        "httpGet": {"path": path, "port": "http"},
        "periodSeconds": period,
        "timeoutSeconds": timeout,
        "failureThreshold": failures,
    }


def _spread(selector: dict[str, str]) -> Manifest:
    """Prefer one pod per node: a node failure then takes out one replica, and a small cluster still schedules."""
    return {
        "podAntiAffinity": {
            "preferredDuringSchedulingIgnoredDuringExecution": [
                {
                    "weight": 100,
                    "podAffinityTerm": {
                        "labelSelector": {"matchLabels": selector},
                        "topologyKey": "kubernetes.io/hostname",
                    },
                }
            ]
        }
    }


# --- self-hosted backends ------------------------------------------------------------------------------------


def inference_selector(backend: LLMBackend) -> dict[str, str]:
    """Pod selector of a backend's Deployment and Service; immutable, so it never names the engine."""
    return {LABEL_BACKEND: backend.metadata.name, LABEL_COMPONENT: COMPONENT_INFERENCE}


def _inference_labels(backend: LLMBackend) -> dict[str, str]:
    serving = backend.spec.serving
    assert serving is not None
    return {
        LABEL_NAME: ENGINES[serving.engine].name,
        LABEL_INSTANCE: backend.metadata.name,
        LABEL_PART_OF: "interlock",
        LABEL_MANAGED_BY: MANAGED_BY,
        **inference_selector(backend),
    }


def _resources(extra: dict[str, Any], gpus: int) -> Manifest:
    out: Manifest = {key: dict(value) for key, value in extra.items() if isinstance(value, dict)}
    out.update({key: value for key, value in extra.items() if not isinstance(value, dict)})
    if gpus > 0:
        out.setdefault("limits", {})[GPU_RESOURCE] = str(gpus)
    return out


def inference_deployment(backend: LLMBackend) -> Manifest:
    """The engine's Deployment. The served model name is the backend's first ``models[].name``."""
    serving = backend.spec.serving
    if serving is None:
        raise ValueError(f"backend {backend.metadata.name!r} has no serving section")
    engine = ENGINES[serving.engine]
    served_name = backend.spec.models[0].name
    labels = _inference_labels(backend)
    selector = inference_selector(backend)
    cache_volume: Manifest = (
        {"name": "model-cache", "persistentVolumeClaim": {"claimName": model_cache_name(backend.metadata.name)}}
        if serving.model_cache is not None
        else {"name": "model-cache", "emptyDir": {}}
    )
    container: Manifest = {
        "name": engine.name,
        "image": engine.image_for(serving),
        "imagePullPolicy": "IfNotPresent",
        "command": list(engine.command),
        "args": [*engine.args(serving, served_name, engine.port), *serving.args],
        "env": [{"name": engine.cache_env, "value": engine.cache_dir}, *serving.env],
        "ports": [{"name": "http", "containerPort": engine.port, "protocol": "TCP"}],
        "startupProbe": _http_probe(
            engine.health_path, period=_STARTUP_PERIOD_S, failures=STARTUP_BUDGET_S // _STARTUP_PERIOD_S
        ),
        "readinessProbe": _http_probe(engine.health_path, period=10, failures=3),
        "livenessProbe": _http_probe(engine.health_path, period=20, failures=3),
        "resources": _resources(serving.resources, serving.gpus),
        "volumeMounts": [
            {"name": "model-cache", "mountPath": engine.cache_dir},
            {"name": "dshm", "mountPath": "/dev/shm"},  # noqa: S108 (shared memory for NCCL)
        ],
    }
    tolerations = list(serving.tolerations)
    if serving.gpus > 0:
        tolerations.append({"key": GPU_RESOURCE, "operator": "Exists", "effect": "NoSchedule"})
    pod_spec: Manifest = {
        "automountServiceAccountToken": False,
        "terminationGracePeriodSeconds": 60,
        "affinity": _spread(selector),
        "containers": [container],
        "volumes": [cache_volume, {"name": "dshm", "emptyDir": {"medium": "Memory"}}],
    }
    if serving.node_selector:
        pod_spec["nodeSelector"] = dict(serving.node_selector)
    if tolerations:
        pod_spec["tolerations"] = tolerations
    return {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": _meta(backend.metadata.name, backend.metadata.namespace, labels),
        "spec": {
            "replicas": serving.replicas,
            "selector": {"matchLabels": selector},
            # A surge pod waits for a free GPU while the old one keeps serving; a rollout never drops capacity.
            "strategy": {"type": "RollingUpdate", "rollingUpdate": {"maxSurge": 1, "maxUnavailable": 0}},
            "progressDeadlineSeconds": STARTUP_BUDGET_S * 2,
            "revisionHistoryLimit": 3,
            "template": {"metadata": {"labels": labels}, "spec": pod_spec},
        },
    }


def inference_service(backend: LLMBackend) -> Manifest:
    """ClusterIP Service named after the backend, port 8000 to the engine's port: ``compile_config``'s URL."""
    return {
        "apiVersion": "v1",
        "kind": "Service",
        "metadata": _meta(backend.metadata.name, backend.metadata.namespace, _inference_labels(backend)),
        "spec": {
            "type": "ClusterIP",
            "selector": inference_selector(backend),
            "ports": [{"name": "http", "port": SELF_HOSTED_PORT, "targetPort": "http", "protocol": "TCP"}],
        },
    }


def model_cache_claim(backend: LLMBackend, *, access_modes: list[str] | None = None) -> Manifest | None:
    """The weights' PVC, or None without ``serving.modelCache``.

    One claim is shared by the backend's pods: ReadWriteMany when it is created for more than one replica (pods
    spread across nodes), ReadWriteOnce for one. Access modes are immutable: ``access_modes`` keeps an existing
    claim's.
    """
    serving = backend.spec.serving
    if serving is None or serving.model_cache is None:
        return None
    cache = serving.model_cache
    modes = access_modes or (["ReadWriteMany"] if serving.replicas > 1 else ["ReadWriteOnce"])
    spec: Manifest = {"accessModes": list(modes), "resources": {"requests": {"storage": cache.size}}}
    if cache.storage_class_name:
        spec["storageClassName"] = cache.storage_class_name
    name = model_cache_name(backend.metadata.name)
    return {
        "apiVersion": "v1",
        "kind": "PersistentVolumeClaim",
        "metadata": _meta(name, backend.metadata.namespace, _inference_labels(backend)),
        "spec": spec,
    }


# --- gateways ------------------------------------------------------------------------------------------------


def gateway_selector(gateway: str) -> dict[str, str]:
    return {LABEL_GATEWAY: gateway, LABEL_COMPONENT: COMPONENT_GATEWAY}


def _gateway_labels(gateway: str) -> dict[str, str]:
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
        "metadata": _meta(
            gateway_object_name(gateway),
            namespace,
            _gateway_labels(gateway),
            {ANNOTATION_CONFIG_VERSION: config.version},
        ),
        "data": {CONFIG_KEY: config.to_json().decode()},
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
                },
            }
        )
        mounts.append({"name": volume, "mountPath": f"{secrets_dir}/{secret}", "readOnly": True})
    return volumes, mounts


def gateway_deployment(namespace: str, gateway: str, config: GatewayConfig, settings: OperatorSettings) -> Manifest:
    name = gateway_object_name(gateway)
    labels = _gateway_labels(gateway)
    config_dir = str(settings.gateway_config_dir)
    secret_volumes, secret_mounts = _secret_mounts(config, str(settings.gateway_secrets_dir))
    env = [
        {"name": "INTERLOCK_GATEWAY_HOST", "value": "0.0.0.0"},  # noqa: S104
        {"name": "INTERLOCK_GATEWAY_PORT", "value": str(settings.gateway_port)},
        {"name": "INTERLOCK_GATEWAY_CONFIG_FILE", "value": f"{config_dir}/{CONFIG_KEY}"},
        {"name": "INTERLOCK_GATEWAY_SECRETS_DIR", "value": str(settings.gateway_secrets_dir)},
        *settings.gateway_env,
    ]
    container: Manifest = {
        "name": "gateway",
        "image": settings.gateway_image,
        "imagePullPolicy": "IfNotPresent",
        "command": ["interlock", "gateway"],
        "env": env,
        "ports": [{"name": "http", "containerPort": settings.gateway_port, "protocol": "TCP"}],
        "readinessProbe": _http_probe("/readyz", period=5, failures=3, timeout=2),
        "livenessProbe": _http_probe("/healthz", period=10, failures=3, timeout=2),
        "resources": dict(settings.gateway_resources),
        "securityContext": {
            "runAsNonRoot": True,
            "runAsUser": 10001,
            "allowPrivilegeEscalation": False,
            "readOnlyRootFilesystem": True,
            "capabilities": {"drop": ["ALL"]},
            "seccompProfile": {"type": "RuntimeDefault"},
        },
        "volumeMounts": [
            # The whole directory, never subPath: only a directory mount sees the kubelet's updates.
            {"name": "config", "mountPath": config_dir, "readOnly": True},
            {"name": "tmp", "mountPath": "/tmp"},  # noqa: S108
            *secret_mounts,
        ],
    }
    return {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": _meta(name, namespace, labels),
        "spec": {
            "replicas": settings.gateway_replicas,
            "selector": {"matchLabels": gateway_selector(gateway)},
            "strategy": {"type": "RollingUpdate", "rollingUpdate": {"maxSurge": 1, "maxUnavailable": 0}},
            "revisionHistoryLimit": 3,
            "template": {
                "metadata": {
                    "labels": labels,
                    "annotations": {
                        "prometheus.io/scrape": "true",
                        "prometheus.io/port": str(settings.gateway_port),
                        "prometheus.io/path": "/metrics",
                    },
                },
                "spec": {
                    "automountServiceAccountToken": False,
                    "terminationGracePeriodSeconds": 30,
                    "affinity": _spread(gateway_selector(gateway)),
                    "containers": [container],
                    "volumes": [
                        {"name": "config", "configMap": {"name": name}},
                        {"name": "tmp", "emptyDir": {}},
                        *secret_volumes,
                    ],
                },
            },
        },
    }


def gateway_service(namespace: str, gateway: str, settings: OperatorSettings) -> Manifest:
    return {
        "apiVersion": "v1",
        "kind": "Service",
        "metadata": _meta(gateway_object_name(gateway), namespace, _gateway_labels(gateway)),
        "spec": {
            "type": "ClusterIP",
            "selector": gateway_selector(gateway),
            "ports": [{"name": "http", "port": settings.gateway_service_port, "targetPort": "http", "protocol": "TCP"}],
        },
    }


def gateway_pdb(namespace: str, gateway: str) -> Manifest:
    """At most one gateway pod down at a time for voluntary disruptions (drains), whatever the replica count."""
    return {
        "apiVersion": "policy/v1",
        "kind": "PodDisruptionBudget",
        "metadata": _meta(gateway_object_name(gateway), namespace, _gateway_labels(gateway)),
        "spec": {"maxUnavailable": 1, "selector": {"matchLabels": gateway_selector(gateway)}},
    }
