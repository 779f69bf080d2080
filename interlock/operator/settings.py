"""Operator settings, from ``INTERLOCK_OPERATOR_*`` environment variables (lists and dicts as JSON)."""

from __future__ import annotations

from importlib.metadata import PackageNotFoundError, version
from pathlib import PurePosixPath
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, SecretStr, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

__all__ = ["IMAGE_REPOSITORY", "GatewayAutoscaling", "OperatorSettings", "default_image"]

IMAGE_REPOSITORY = "ghcr.io/interlock-dev/interlock"


def default_image() -> str:
    """The project's image for this package version: what ``scripts/image`` builds and the chart installs."""
    try:
        tag = version("interlock")
    except PackageNotFoundError:  # pragma: no cover - running from a tree that was never installed
        tag = "0.0.0"
    return f"{IMAGE_REPOSITORY}:{tag}"


class GatewayAutoscaling(BaseModel):
    """An HPA per gateway Deployment on CPU (the gateway's work is CPU-bound); the operator then leaves replicas."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    min_replicas: int = Field(default=2, ge=1, le=1000)
    max_replicas: int = Field(default=10, ge=1, le=1000)
    cpu_utilization: int = Field(default=70, ge=1, le=100, description="Target CPU, percent of the request.")

    @model_validator(mode="after")
    def _check_range(self) -> GatewayAutoscaling:
        if self.min_replicas > self.max_replicas:
            raise ValueError(f"min_replicas {self.min_replicas} is above max_replicas {self.max_replicas}")
        return self


class OperatorSettings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="INTERLOCK_OPERATOR_", extra="ignore", frozen=True)

    # --- gateways -------------------------------------------------------------------------------------------
    gateway_image: str = Field(
        default_factory=default_image, min_length=1, description="Image of the gateway pods (default: this version's)."
    )
    image_pull_secrets: list[str] = Field(
        default_factory=list,
        description="Names of image pull Secrets for the gateway and engine pods (JSON list; each must exist in "
        "the pods' namespace). A backend's serving.imagePullSecrets adds to these for its engine.",
    )
    gateway_replicas: int = Field(default=2, ge=0, le=1000, description="Gateway pods per gateway.")
    gateway_autoscaling: GatewayAutoscaling | None = Field(
        default=None,
        description="JSON {min_replicas, max_replicas, cpu_utilization}: an HPA per gateway instead of fixed replicas.",
    )
    gateway_resources: dict[str, Any] = Field(
        default_factory=lambda: {"requests": {"cpu": "250m", "memory": "256Mi"}, "limits": {"memory": "1Gi"}},
        description="ResourceRequirements of the gateway container.",
    )
    gateway_env: list[dict[str, Any]] = Field(
        default_factory=list,
        description="Extra EnvVar entries for the gateway container (control-plane URL, key sources, telemetry).",
    )
    gateway_port: int = Field(default=8080, ge=1, le=65535, description="Port the gateway container listens on.")
    gateway_ops_port: int = Field(
        default=8090, ge=1, le=65535, description="The gateway's ops port (/readyz, /metrics); not in its Service."
    )
    gateway_service_port: int = Field(default=80, ge=1, le=65535, description="Port of the gateway Service.")
    gateway_drain_seconds: int = Field(
        default=300,
        ge=0,
        le=3600,
        description="How long a stopping gateway pod may finish in-flight requests and streams (its grace period "
        "is this plus the preStop delay).",
    )
    gateway_prestop_seconds: int = Field(
        default=5,
        ge=0,
        le=60,
        description="preStop delay: the pod keeps serving while its endpoint is removed from Services and proxies.",
    )
    gateway_signing_key: SecretStr | None = Field(
        default=None,
        description="The control plane's gateway signing key (>= 32 bytes); set, each gateway gets its own "
        "control-plane credential in a Secret <gateway>-controlplane.",
    )
    gateway_secrets_dir: PurePosixPath = Field(
        default=PurePosixPath("/var/run/interlock/secrets"), description="Where Secrets are mounted in gateway pods."
    )
    gateway_config_dir: PurePosixPath = Field(
        default=PurePosixPath("/etc/interlock/config"), description="Where the ConfigMap is mounted in gateway pods."
    )
    control_plane_url: str | None = Field(
        default=None,
        description="The control plane's URL; with a signing key, each gateway's key snapshot is mirrored into a "
        "Secret its new pods start from while the control plane is down.",
    )
    snapshot_refresh_s: float = Field(
        default=60.0, gt=0, description="How often a gateway's snapshot is fetched for its Secret (at most)."
    )
    probe_timeout_s: float = Field(
        default=2.0, gt=0, le=30, description="Timeout of one read of a gateway pod's /readyz (its loaded config)."
    )
    # --- engines --------------------------------------------------------------------------------------------
    engine_ingress_from: list[dict[str, Any]] = Field(
        default_factory=list,
        description="NetworkPolicyPeer entries admitted to inference pods besides the namespace's gateways "
        "(for example the namespace of Prometheus, to scrape the engines).",
    )
    keda_prometheus_url: str | None = Field(
        default=None,
        description="Prometheus URL for KEDA ScaledObjects (autoscaling when KEDA is installed). Unset: an HPA "
        "on custom metrics (prometheus-adapter) is used even where KEDA is installed.",
    )
    # --- the operator itself --------------------------------------------------------------------------------
    resync_interval_s: float = Field(
        default=60.0, gt=0, description="How often every object is reconciled again, to repair drift."
    )
    liveness_endpoint: str | None = Field(
        default=None,
        description="kopf's liveness endpoint, e.g. http://0.0.0.0:8082/healthz in a pod; unset or empty: none.",
    )
    request_timeout_s: float = Field(default=30.0, gt=0, description="Timeout of one API request.")
    leader_election: bool = Field(
        default=False,
        description="Run only while holding a Lease (several replicas, one active). The chart turns it on.",
    )
    lease_name: str = Field(default="interlock-operator", min_length=1, description="Name of the leader Lease.")
    lease_namespace: str | None = Field(
        default=None, description="Namespace of the Lease (default: the pod's namespace, else 'default')."
    )
    lease_duration_s: int = Field(default=15, ge=2, description="A leader that stops renewing loses the Lease "
                                    "after this long (the takeover time after a crash).")  # fmt: skip
    lease_renew_deadline_s: float = Field(default=10.0, ge=1.5, description="A leader that cannot renew for this "
                                          "long stops working.")  # fmt: skip
    lease_retry_period_s: float = Field(default=2.0, ge=1, description="How often the Lease is renewed or tried.")
