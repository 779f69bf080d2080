"""The autoscaler of a self-hosted backend with ``serving.autoscaling``: a KEDA ScaledObject where KEDA is
installed and a Prometheus URL is configured, otherwise an ``autoscaling/v2`` HorizontalPodAutoscaler on a custom
per-pod metric (served by prometheus-adapter; ``docs/operator.md`` lists the adapter rules).

Metrics: ``queue`` scales on the engine's own gauge of waiting requests (``vllm:num_requests_waiting``,
``tgi_queue_size``, ``llamacpp:requests_deferred``), ``gpu`` on DCGM's ``DCGM_FI_DEV_GPU_UTIL`` (percent per GPU).
The scale-down window is long: an inference pod takes minutes to load its weights, so flapping is expensive.
"""

from __future__ import annotations

from interlock.operator.builders.common import Manifest, meta
from interlock.operator.builders.inference import inference_labels
from interlock.operator.engines import ENGINES
from interlock.resources.llmbackend import Autoscaling, AutoscalingMetric, LLMBackend

__all__ = ["GPU_METRIC", "autoscaling_target", "inference_hpa", "inference_scaled_object", "metric_name"]

GPU_METRIC = "DCGM_FI_DEV_GPU_UTIL"
_DEFAULT_TARGET = {AutoscalingMetric.QUEUE: 5.0, AutoscalingMetric.GPU: 80.0}
_SCALE_DOWN_WINDOW_S = 600


def _autoscaling(backend: LLMBackend) -> Autoscaling:
    serving = backend.spec.serving
    if serving is None or serving.autoscaling is None:
        raise ValueError(f"backend {backend.metadata.name!r} has no serving.autoscaling")
    return serving.autoscaling


def metric_name(backend: LLMBackend) -> str:
    """The Prometheus metric the autoscaler reads for this backend."""
    serving = backend.spec.serving
    assert serving is not None
    if _autoscaling(backend).metric is AutoscalingMetric.GPU:
        return GPU_METRIC
    return ENGINES[serving.engine].queue_metric


def autoscaling_target(backend: LLMBackend) -> float:
    spec = _autoscaling(backend)
    return spec.target if spec.target is not None else _DEFAULT_TARGET[spec.metric]


def _number(value: float) -> str:
    return str(int(value)) if float(value).is_integer() else f"{value:g}"


def _target_ref(backend: LLMBackend) -> Manifest:
    return {"apiVersion": "apps/v1", "kind": "Deployment", "name": backend.metadata.name}


def inference_hpa(backend: LLMBackend) -> Manifest:
    """An HPA on the per-pod custom metric (its name as prometheus-adapter exposes it: ``:`` becomes ``_``)."""
    spec = _autoscaling(backend)
    return {
        "apiVersion": "autoscaling/v2",
        "kind": "HorizontalPodAutoscaler",
        "metadata": meta(backend.metadata.name, backend.metadata.namespace, inference_labels(backend)),
        "spec": {
            "scaleTargetRef": _target_ref(backend),
            "minReplicas": max(1, spec.min_replicas),  # 0 needs the HPAScaleToZero feature gate: use KEDA
            "maxReplicas": spec.max_replicas,
            "metrics": [
                {
                    "type": "Pods",
                    "pods": {
                        "metric": {"name": metric_name(backend).replace(":", "_")},
                        "target": {"type": "AverageValue", "averageValue": _number(autoscaling_target(backend))},
                    },
                }
            ],
            "behavior": {"scaleDown": {"stabilizationWindowSeconds": _SCALE_DOWN_WINDOW_S}},
        },
    }


def inference_scaled_object(backend: LLMBackend, prometheus_url: str) -> Manifest:
    """A KEDA ScaledObject with a Prometheus trigger: the metric summed over the backend's pods, per pod."""
    spec = _autoscaling(backend)
    serving = backend.spec.serving
    assert serving is not None
    ns, name = backend.metadata.namespace, backend.metadata.name
    pods = f'namespace="{ns}",pod=~"{name}-[a-z0-9]+-[a-z0-9]+"'
    query = f"sum({metric_name(backend)}{{{pods}}})"
    if spec.metric is AutoscalingMetric.GPU and serving.gpus > 1:
        query += f" / {serving.gpus}"  # a pod's utilisation is the mean over its GPUs
    return {
        "apiVersion": "keda.sh/v1alpha1",
        "kind": "ScaledObject",
        "metadata": meta(name, ns, inference_labels(backend)),
        "spec": {
            "scaleTargetRef": _target_ref(backend),
            "minReplicaCount": spec.min_replicas,
            "maxReplicaCount": spec.max_replicas,
            "cooldownPeriod": _SCALE_DOWN_WINDOW_S,
            "triggers": [
                {
                    "type": "prometheus",
                    "metadata": {
                        "serverAddress": prometheus_url,
                        "query": query,
                        "threshold": _number(autoscaling_target(backend)),
                    },
                }
            ],
        },
    }
