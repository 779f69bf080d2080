"""A self-hosted ``LLMBackend``'s children: the engine's Deployment, its Service, the model cache PVC, the
NetworkPolicy that admits only the namespace's gateways, and the Secret with the API key the engine demands.

The Service is named after the backend on port 8000 (the URL ``compile_config`` gives the gateway); the headless
Service ``<backend>-pods`` beside it gives the gateways each ready pod's address, to pick pods per request. The engine
starts with the key from ``<backend>-engine-key`` (generated once by the operator, never rotated by it), which
``compile_config`` names as the backend's credential, so only the gateways can call it. With ``autoscaling`` the
Deployment carries no ``replicas``: the autoscaler owns that field.
"""

from __future__ import annotations

import base64
from typing import Any

from interlock.gatewayconfig.compile import SELF_HOSTED_PORT, self_hosted_pods_service
from interlock.operator.builders.common import (
    CONTAINER_SECURITY,
    Manifest,
    canonical_resources,
    http_probe,
    meta,
    pull_secrets,
    spread,
)
from interlock.operator.engines import ENGINES
from interlock.operator.naming import (
    COMPONENT_GATEWAY,
    COMPONENT_INFERENCE,
    ENGINE_KEY_KEY,
    LABEL_BACKEND,
    LABEL_COMPONENT,
    LABEL_INSTANCE,
    LABEL_MANAGED_BY,
    LABEL_NAME,
    LABEL_PART_OF,
    MANAGED_BY,
    engine_key_name,
    model_cache_name,
)
from interlock.operator.quantity import canonical_quantity
from interlock.operator.settings import OperatorSettings
from interlock.resources.llmbackend import ENGINE_PORTS, LLMBackend, Serving

__all__ = [
    "GPU_RESOURCE",
    "STARTUP_BUDGET_S",
    "default_cache_modes",
    "engine_key_secret",
    "inference_deployment",
    "inference_labels",
    "inference_network_policy",
    "inference_selector",
    "inference_service",
    "model_cache_claim",
    "selector_text",
]

GPU_RESOURCE = "nvidia.com/gpu"
STARTUP_BUDGET_S = 30 * 60  # weights of a large model can take this long to download and load
_STARTUP_PERIOD_S = 10
_RWX = "ReadWriteMany"


def inference_selector(backend: LLMBackend) -> dict[str, str]:
    """Pod selector of a backend's Deployment and Service; immutable, so it never names the engine."""
    return {LABEL_BACKEND: backend.metadata.name, LABEL_COMPONENT: COMPONENT_INFERENCE}


def selector_text(backend: LLMBackend) -> str:
    """The selector as ``status.selector`` carries it for the scale subresource."""
    return ",".join(f"{k}={v}" for k, v in sorted(inference_selector(backend).items()))


def _serving(backend: LLMBackend) -> Serving:
    if backend.spec.serving is None:
        raise ValueError(f"backend {backend.metadata.name!r} has no serving section")
    return backend.spec.serving


def inference_labels(backend: LLMBackend) -> dict[str, str]:
    return {
        LABEL_NAME: ENGINES[_serving(backend).engine].name,
        LABEL_INSTANCE: backend.metadata.name,
        LABEL_PART_OF: "interlock",
        LABEL_MANAGED_BY: MANAGED_BY,
        **inference_selector(backend),
    }


def _resources(extra: dict[str, Any], gpus: int) -> Manifest:
    out = canonical_resources(extra)
    if gpus > 0:
        out.setdefault("limits", {})[GPU_RESOURCE] = str(gpus)
    return out


def _env(backend: LLMBackend) -> list[Manifest]:
    serving = _serving(backend)
    engine = ENGINES[serving.engine]
    key_ref = {"name": engine_key_name(backend.metadata.name), "key": ENGINE_KEY_KEY}
    env: list[Manifest] = [
        {"name": engine.cache_env, "value": engine.cache_dir},
        {"name": engine.key_env, "valueFrom": {"secretKeyRef": key_ref}},
    ]
    if serving.hugging_face_token_secret_ref is not None:
        ref = serving.hugging_face_token_secret_ref
        env.append({"name": "HF_TOKEN", "valueFrom": {"secretKeyRef": {"name": ref.name, "key": ref.key}}})
    names = {e["name"] for e in env}
    return [*env, *(e for e in serving.env if e.get("name") not in names)]


def _strategy(cache_modes: list[str] | None) -> Manifest:
    if cache_modes is not None and _RWX not in cache_modes:
        # A ReadWriteOnce cache attaches to one node: a surge pod elsewhere could never start, and the rollout would
        # hang with the old pod holding the volume. Replace pods instead.
        return {"type": "Recreate"}
    # A surge pod waits for a free GPU while the old one keeps serving; a rollout never drops capacity.
    return {"type": "RollingUpdate", "rollingUpdate": {"maxSurge": 1, "maxUnavailable": 0}}


def default_cache_modes(backend: LLMBackend) -> list[str]:
    serving = _serving(backend)
    replicas = serving.autoscaling.max_replicas if serving.autoscaling else serving.replicas
    return [_RWX] if replicas > 1 else ["ReadWriteOnce"]


def inference_deployment(
    backend: LLMBackend, settings: OperatorSettings | None = None, *, cache_modes: list[str] | None = None
) -> Manifest:
    """The engine's Deployment. The served model name is the backend's first ``models[].name``.

    ``cache_modes``: the access modes of the existing model cache claim (they are immutable); by default those
    ``model_cache_claim`` would create.
    """
    settings = settings or OperatorSettings()
    serving = _serving(backend)
    engine = ENGINES[serving.engine]
    served_name = backend.spec.models[0].name
    labels = inference_labels(backend)
    selector = inference_selector(backend)
    if serving.model_cache is not None:
        cache_modes = cache_modes or default_cache_modes(backend)
        cache_volume: Manifest = {
            "name": "model-cache",
            "persistentVolumeClaim": {"claimName": model_cache_name(backend.metadata.name)},
        }
    else:
        cache_modes = None
        cache_volume = {"name": "model-cache", "emptyDir": {}}
    shm: Manifest = {"medium": "Memory"}
    if serving.shm_size:
        shm["sizeLimit"] = canonical_quantity(serving.shm_size)
    container: Manifest = {
        "name": engine.name,
        "image": engine.image_for(serving),
        "imagePullPolicy": "IfNotPresent",
        "command": list(engine.command),
        "args": [*engine.args(serving, served_name, engine.port), *serving.args],
        "env": _env(backend),
        "ports": [{"name": "http", "containerPort": engine.port, "protocol": "TCP"}],
        "startupProbe": http_probe(
            engine.health_path, period=_STARTUP_PERIOD_S, failures=STARTUP_BUDGET_S // _STARTUP_PERIOD_S
        ),
        "readinessProbe": http_probe(engine.health_path, period=10, failures=3),
        "livenessProbe": http_probe(engine.health_path, period=20, failures=3),
        "resources": _resources(serving.resources, serving.gpus),
        "securityContext": dict(CONTAINER_SECURITY),
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
        "enableServiceLinks": False,
        "securityContext": {"seccompProfile": {"type": "RuntimeDefault"}},
        "terminationGracePeriodSeconds": 60,
        "affinity": spread(selector),
        "containers": [container],
        "volumes": [cache_volume, {"name": "dshm", "emptyDir": shm}],
    }
    secrets = pull_secrets(settings.image_pull_secrets, serving.image_pull_secrets)
    if secrets:
        pod_spec["imagePullSecrets"] = secrets
    if serving.runtime_class_name:
        pod_spec["runtimeClassName"] = serving.runtime_class_name
    if serving.node_selector:
        pod_spec["nodeSelector"] = dict(serving.node_selector)
    if tolerations:
        pod_spec["tolerations"] = tolerations
    spec: Manifest = {
        "selector": {"matchLabels": selector},
        "strategy": _strategy(cache_modes),
        "progressDeadlineSeconds": STARTUP_BUDGET_S * 2,
        "revisionHistoryLimit": 3,
        "template": {"metadata": {"labels": labels}, "spec": pod_spec},
    }
    if serving.autoscaling is None:
        spec = {"replicas": serving.replicas, **spec}
    return {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": meta(backend.metadata.name, backend.metadata.namespace, labels),
        "spec": spec,
    }


def inference_service(backend: LLMBackend) -> Manifest:
    """ClusterIP Service named after the backend, port 8000 to the engine's port: ``compile_config``'s URL."""
    return {
        "apiVersion": "v1",
        "kind": "Service",
        "metadata": meta(backend.metadata.name, backend.metadata.namespace, inference_labels(backend)),
        "spec": {
            "type": "ClusterIP",
            "selector": inference_selector(backend),
            "ports": [{"name": "http", "port": SELF_HOSTED_PORT, "targetPort": "http", "protocol": "TCP"}],
        },
    }


def inference_pods_service(backend: LLMBackend) -> Manifest:
    """Headless Service ``<backend>-pods``: one DNS address per ready pod, which the gateways resolve to pick a pod
    per request themselves (``DiscoveryConfig`` mode ``dns``) instead of leaving it to kube-proxy per connection.

    Its port is the engine's own, as a headless Service's addresses are the pods' (no port mapping).
    """
    port = ENGINE_PORTS[_serving(backend).engine]
    return {
        "apiVersion": "v1",
        "kind": "Service",
        "metadata": meta(
            self_hosted_pods_service(backend.metadata.name), backend.metadata.namespace, inference_labels(backend)
        ),
        "spec": {
            "clusterIP": "None",
            "selector": inference_selector(backend),
            "ports": [{"name": "http", "port": port, "targetPort": "http", "protocol": "TCP"}],
        },
    }


def inference_network_policy(backend: LLMBackend, settings: OperatorSettings | None = None) -> Manifest:
    """Only the namespace's gateways (and the peers ``engine_ingress_from`` names) may reach the engine's port."""
    settings = settings or OperatorSettings()
    gateways = {LABEL_COMPONENT: COMPONENT_GATEWAY, LABEL_MANAGED_BY: MANAGED_BY}
    port = [{"port": "http", "protocol": "TCP"}]
    ingress: list[Manifest] = [{"from": [{"podSelector": {"matchLabels": gateways}}], "ports": port}]
    if settings.engine_ingress_from:
        ingress.append({"from": [dict(p) for p in settings.engine_ingress_from], "ports": port})
    return {
        "apiVersion": "networking.k8s.io/v1",
        "kind": "NetworkPolicy",
        "metadata": meta(backend.metadata.name, backend.metadata.namespace, inference_labels(backend)),
        "spec": {
            "podSelector": {"matchLabels": inference_selector(backend)},
            "policyTypes": ["Ingress"],
            "ingress": ingress,
        },
    }


def engine_key_secret(backend: LLMBackend, key: str) -> Manifest:
    """The Secret with the engine's API key (``key`` is generated once by the caller and kept)."""
    return {
        "apiVersion": "v1",
        "kind": "Secret",
        "type": "Opaque",
        "metadata": meta(engine_key_name(backend.metadata.name), backend.metadata.namespace, inference_labels(backend)),
        "data": {ENGINE_KEY_KEY: base64.b64encode(key.encode()).decode()},
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
    modes = access_modes or default_cache_modes(backend)
    spec: Manifest = {
        "accessModes": list(modes),
        "resources": {"requests": {"storage": canonical_quantity(cache.size)}},
        "volumeMode": "Filesystem",
    }
    if cache.storage_class_name:
        spec["storageClassName"] = cache.storage_class_name
    name = model_cache_name(backend.metadata.name)
    return {
        "apiVersion": "v1",
        "kind": "PersistentVolumeClaim",
        "metadata": meta(name, backend.metadata.namespace, inference_labels(backend)),
        "spec": spec,
    }
