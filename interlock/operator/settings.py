"""Operator settings, from ``INTERLOCK_OPERATOR_*`` environment variables (lists and dicts as JSON)."""

from __future__ import annotations

from pathlib import PurePosixPath
from typing import Any

from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict

__all__ = ["OperatorSettings"]


class OperatorSettings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="INTERLOCK_OPERATOR_", extra="ignore", frozen=True)

    gateway_image: str = Field(
        default="ghcr.io/interlock-dev/interlock:0.1.0", min_length=1, description="Image of the gateway pods."
    )
    gateway_replicas: int = Field(default=2, ge=0, le=1000, description="Gateway pods per gateway.")
    gateway_resources: dict[str, Any] = Field(
        default_factory=lambda: {"requests": {"cpu": "250m", "memory": "256Mi"}, "limits": {"memory": "1Gi"}},
        description="ResourceRequirements of the gateway container.",
    )
    gateway_env: list[dict[str, Any]] = Field(
        default_factory=list,
        description="Extra EnvVar entries for the gateway container (control-plane URL, key sources, telemetry).",
    )
    gateway_port: int = Field(default=8080, ge=1, le=65535, description="Port the gateway container listens on.")
    gateway_service_port: int = Field(default=80, ge=1, le=65535, description="Port of the gateway Service.")
    gateway_secrets_dir: PurePosixPath = Field(
        default=PurePosixPath("/var/run/interlock/secrets"), description="Where Secrets are mounted in gateway pods."
    )
    gateway_config_dir: PurePosixPath = Field(
        default=PurePosixPath("/etc/interlock/config"), description="Where the ConfigMap is mounted in gateway pods."
    )
    resync_interval_s: float = Field(
        default=60.0, gt=0, description="How often every object is reconciled again, to repair drift."
    )
    liveness_endpoint: str | None = Field(
        default=None,
        description="kopf's liveness endpoint, e.g. http://0.0.0.0:8082/healthz in a pod; unset or empty: none.",
    )
    request_timeout_s: float = Field(default=30.0, gt=0, description="Timeout of one API request.")
