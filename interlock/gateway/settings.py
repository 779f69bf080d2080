"""Gateway settings, from ``INTERLOCK_GATEWAY_*`` environment variables or the CLI."""

from __future__ import annotations

import socket
from pathlib import Path

from pydantic import AliasChoices, Field, SecretStr, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from interlock.contract.gatewaycred import credential_scope

__all__ = ["GatewaySettings"]


class GatewaySettings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="INTERLOCK_GATEWAY_", extra="ignore", populate_by_name=True)

    host: str = "127.0.0.1"
    port: int = Field(default=8080, ge=0, le=65535)
    ops_host: str | None = Field(
        default=None, description="Where the ops port listens (/healthz, /readyz, /metrics); default: `host`."
    )
    ops_port: int = Field(
        default=8090, ge=0, le=65535, description="The ops port: probes and Prometheus only, never for clients."
    )
    config_file: Path | None = Field(default=None, description="Compiled GatewayConfig JSON (the ConfigMap file).")
    secrets_dir: Path = Field(
        default=Path("/var/run/interlock/secrets"),
        description="Where Secrets are mounted: <dir>/<secret>/<key>.",
    )
    config_poll_interval_s: float = Field(default=1.0, gt=0)
    max_body_bytes: int = Field(default=20 * 1024 * 1024, gt=0, description="Largest request body accepted (413).")
    keepalive_interval_s: float = Field(default=15.0, gt=0, description="SSE comment sent while upstream is silent.")
    connect_timeout_s: float = Field(default=10.0, gt=0)

    # --- limits on what clients send (docs/limits.md) -----------------------------------------------------
    max_header_bytes: int = Field(
        default=64 * 1024, ge=1024, description="Largest request line plus headers of one request (then 431)."
    )
    header_timeout_s: float = Field(
        default=10.0,
        gt=0,
        description="Time from a connection's start (or a request's first byte) to its "
        "headers' end (then 408 and close).",
    )
    body_timeout_s: float = Field(
        default=60.0,
        gt=0,
        description="Time from the end of a request's headers to the end of its body (then 408 and close).",
    )
    idle_timeout_s: float = Field(
        default=60.0, gt=0, description="A keep-alive connection without a request is closed after this long."
    )

    # --- limits on what upstreams send (docs/limits.md) ---------------------------------------------------
    max_sse_event_bytes: int = Field(
        default=4 * 1024 * 1024,
        gt=0,
        description="Largest single SSE event accepted from an upstream; a larger one ends the client's stream "
        "with an error event.",
    )
    max_upstream_body_bytes: int = Field(
        default=64 * 1024 * 1024, gt=0, description="Largest non-streamed answer read from an upstream (then 502)."
    )
    metrics_enabled: bool = Field(
        default=True, description="Record the Prometheus metrics of /metrics (false: /metrics answers zeros)."
    )
    api_keys: list[str] = Field(
        default_factory=list,
        description="Client keys accepted without the control plane (tenant 'default', no quota): the only keys "
        "when no control plane is set, break-glass keys beside the snapshot's when one is.",
    )

    # --- strict json_schema (docs/limits.md) ---------------------------------------------------------------
    max_schema_bytes: int = Field(
        default=256 * 1024, gt=0, description="Largest strict json_schema accepted, as JSON (then 400)."
    )
    max_structured_output_bytes: int = Field(
        default=4 * 1024 * 1024, gt=0, description="Largest answer validated against a strict json_schema."
    )
    structured_budget_s: float = Field(
        default=2.0, gt=0, description="Time one schema check or validation may take in a schema worker."
    )
    structured_workers: int = Field(
        default=2, ge=1, le=64, description="Schema worker processes (started on the first strict json_schema)."
    )

    # --- control plane: key snapshot and usage events ------------------------------------------------------
    control_plane_url: str | None = Field(
        default=None,
        description="Base URL of the control-plane API. Set: keys, quotas and budgets come from its snapshot and "
        "usage events go to it through the spool. Unset: only `api_keys`, and no usage events leave the gateway.",
    )
    control_plane_token: SecretStr | None = Field(
        default=None, description="Bearer token for the control plane's /v1/gateway endpoints."
    )
    gateway_id: str = Field(
        default_factory=socket.gethostname,
        min_length=1,
        max_length=128,
        description="This gateway process's identity towards the control plane: `<namespace>/<gateway>/<pod>`, "
        "within its credential's scope (default: the credential's scope and the hostname, which is the pod name in a "
        "cluster). Must be unique per running process: usage `seq` numbers are per gateway id.",
    )
    snapshot_interval_s: float = Field(default=2.0, gt=0, description="How often the key snapshot is polled.")
    status_interval_s: float = Field(
        default=10.0,
        ge=0,
        description="How often the gateway reports its config version, readiness, routes and circuit breakers to "
        "the control plane (for the console); 0: never.",
    )
    spool_path: Path | None = Field(
        default=None,
        description="Directory holding usage events until the control plane has them (an append-only journal) and "
        "the last snapshot. Default: <tmpdir>/interlock-usage-<gateway_id>; mount a volume there to survive pod "
        "restarts.",
    )
    snapshot_seed_file: Path | None = Field(
        default=None,
        description="A key snapshot to start from when the spool has none and the control plane does not answer "
        "(the operator mirrors each gateway's last snapshot into a Secret mounted there).",
    )
    usage_sync_interval_s: float = Field(
        default=0.05,
        gt=0,
        description="How often the usage journal is fdatasync'ed: what a power loss may lose (kill -9 loses nothing).",
    )
    usage_spool_max_bytes: int = Field(
        default=1 << 30,
        ge=1 << 20,
        description="Unacknowledged usage events the spool may hold; at the cap new metered requests get 503 "
        "usage_spool_full until the control plane has taken some.",
    )
    usage_batch_size: int = Field(default=500, ge=1, le=5000, description="Events per POST to the control plane.")
    usage_retry_max_s: float = Field(default=30.0, gt=0, description="Cap of the backoff between failed sends.")

    # --- limits -------------------------------------------------------------------------------------------
    default_max_output_tokens: int = Field(
        default=4096,
        ge=1,
        description="Output tokens a request without max_tokens reserves against budgets and tokens/min, for models "
        "whose manifest has no maxOutputTokens.",
    )
    redis_url: str | None = Field(
        default=None,
        validation_alias=AliasChoices("INTERLOCK_GATEWAY_REDIS_URL", "REDIS_URL"),
        description="Token buckets in Redis, exact across replicas (also read from plain REDIS_URL). Unset: buckets "
        "in memory, per replica.",
    )
    redis_key_prefix: str = Field(default="interlock:rl:", description="Prefix of every rate-limit key in Redis.")
    redis_timeout_s: float = Field(
        default=0.25, gt=0, description="A limit check waits this long for Redis before answering from memory."
    )

    @model_validator(mode="after")
    def _gateway_id_in_the_credentials_scope(self) -> GatewaySettings:
        """Without an explicit gateway id, a gateway with a credential names itself ``<scope>/<hostname>``."""
        token = self.control_plane_token.get_secret_value() if self.control_plane_token else ""
        scope = credential_scope(token)
        if "gateway_id" not in self.model_fields_set and scope is not None:
            self.gateway_id = f"{scope}/{self.gateway_id}"[:128]
        return self

    @property
    def ops_bind_host(self) -> str:
        return self.ops_host or self.host
