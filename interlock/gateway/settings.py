"""Gateway settings, from ``INTERLOCK_GATEWAY_*`` environment variables or the CLI."""

from __future__ import annotations

from pathlib import Path

from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict

__all__ = ["GatewaySettings"]


class GatewaySettings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="INTERLOCK_GATEWAY_", extra="ignore")

    host: str = "127.0.0.1"
    port: int = Field(default=8080, ge=0, le=65535)
    config_file: Path | None = Field(default=None, description="Compiled GatewayConfig JSON (the ConfigMap file).")
    secrets_dir: Path = Field(
        default=Path("/var/run/interlock/secrets"),
        description="Where Secrets are mounted: <dir>/<secret>/<key>.",
    )
    config_poll_interval_s: float = Field(default=1.0, gt=0)
    max_body_bytes: int = Field(default=20 * 1024 * 1024, gt=0, description="Largest request body accepted.")
    keepalive_interval_s: float = Field(default=15.0, gt=0, description="SSE comment sent while upstream is silent.")
    connect_timeout_s: float = Field(default=10.0, gt=0)
    api_keys: list[str] = Field(
        default_factory=list,
        description="Client keys accepted (stand-in until the control plane issues keys).",
    )
