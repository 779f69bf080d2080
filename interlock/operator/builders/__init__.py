"""Pure builders: a spec in, a manifest dict out. No I/O, no owner references (the reconcilers add those).

``inference``: a self-hosted backend's engine Deployment, Service, model cache claim, NetworkPolicy and engine key
Secret. ``autoscaling``: its HPA or KEDA ScaledObject. ``gateway``: a gateway's ConfigMap, Deployment, Service,
PodDisruptionBudget and control-plane credential Secret. Quantities are written canonical and defaulted fields
explicit, so what is applied is what the API server gives back.
"""

from interlock.operator.builders.autoscaling import inference_hpa, inference_scaled_object
from interlock.operator.builders.common import Manifest
from interlock.operator.builders.gateway import (
    control_plane_secret,
    gateway_config_map,
    gateway_deployment,
    gateway_hpa,
    gateway_labels,
    gateway_pdb,
    gateway_selector,
    gateway_service,
    snapshot_secret,
)
from interlock.operator.builders.inference import (
    GPU_RESOURCE,
    STARTUP_BUDGET_S,
    engine_key_secret,
    inference_deployment,
    inference_network_policy,
    inference_pods_service,
    inference_selector,
    inference_service,
    model_cache_claim,
    selector_text,
)

__all__ = [
    "GPU_RESOURCE",
    "STARTUP_BUDGET_S",
    "Manifest",
    "control_plane_secret",
    "engine_key_secret",
    "gateway_config_map",
    "gateway_deployment",
    "gateway_hpa",
    "gateway_labels",
    "gateway_pdb",
    "gateway_selector",
    "gateway_service",
    "inference_deployment",
    "inference_hpa",
    "inference_network_policy",
    "inference_pods_service",
    "inference_scaled_object",
    "inference_selector",
    "inference_service",
    "model_cache_claim",
    "selector_text",
    "snapshot_secret",
]
