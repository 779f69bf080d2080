"""Control-plane settings, from ``INTERLOCK_API_*`` environment variables (and plain ``DATABASE_URL``).

Outside ``development`` the settings refuse to exist without a real admin token (and database URL): a production
control plane must never answer to the well-known development token. Its secrets must also be strong (at least
``MIN_TOKEN_CHARS`` characters, ``MIN_DISTINCT_CHARS`` distinct ones and ``MIN_TOKEN_BITS`` estimated bits:
``openssl rand -base64 32``, ``openssl rand -hex 16`` or ``secrets.token_urlsafe(32)`` pass, ``aaaa…`` or a repeated
word do not; the signing key at least ``MIN_SIGNING_KEY_BYTES`` bytes) and distinct: the admin token is not the
gateway signing key.

Gateways authenticate with per-gateway credentials (``interlock.contract.gatewaycred``) that this control plane
verifies with ``gateway_signing_key``; there is no shared gateway token any more (the old
``INTERLOCK_API_GATEWAY_TOKEN`` is ignored, with a warning at start), and the admin token is not a gateway: a
credential that may write usage for any gateway id is exactly what the scoped credentials replace.
"""

from __future__ import annotations

import logging
import math
import os
import zlib
from collections import Counter
from typing import Literal

from pydantic import AliasChoices, Field, SecretStr, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from interlock.contract.gatewaycred import MIN_SIGNING_KEY_BYTES

__all__ = [
    "DEV_ADMIN_TOKEN",
    "DEV_DATABASE_URL",
    "MIN_DISTINCT_CHARS",
    "MIN_TOKEN_BITS",
    "MIN_TOKEN_CHARS",
    "ApiSettings",
    "estimated_bits",
]

DEV_ADMIN_TOKEN = "interlock-dev-admin-token"  # noqa: S105 (the well-known dev token production refuses)
DEV_DATABASE_URL = "sqlite+aiosqlite:///./interlock.db"
MIN_TOKEN_CHARS = 32
MIN_TOKEN_BITS = 80
MIN_DISTINCT_CHARS = 8
log = logging.getLogger("interlock.api")
_ZLIB_OVERHEAD = len(zlib.compress(b"", 9))


def estimated_bits(secret: str) -> float:
    """A rough upper bound of a secret's strength, enough to refuse the obviously guessable: the smaller of its
    length times the Shannon entropy of its own characters (few distinct characters) and the bits it takes
    compressed (repeated words)."""
    if not secret:
        return 0.0
    counts = Counter(secret)
    spread = -sum(n * math.log2(n / len(secret)) for n in counts.values())
    compressed = (len(zlib.compress(secret.encode(), 9)) - _ZLIB_OVERHEAD) * 8
    return min(spread, float(compressed))


def _weakness(name: str, secret: str) -> str | None:
    if len(secret) < MIN_TOKEN_CHARS:
        return f"{name} must be at least {MIN_TOKEN_CHARS} characters in production"
    if estimated_bits(secret) < MIN_TOKEN_BITS or len(set(secret)) < MIN_DISTINCT_CHARS:
        return f"{name} looks guessable (too few distinct characters); use e.g. `openssl rand -base64 32`"
    return None


class ApiSettings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="INTERLOCK_API_", extra="ignore", populate_by_name=True)

    environment: Literal["development", "production"] = "development"
    host: str = "127.0.0.1"
    port: int = Field(default=8081, ge=0, le=65535)
    database_url: str | None = Field(
        default=None,
        validation_alias=AliasChoices("database_url", "INTERLOCK_API_DATABASE_URL", "DATABASE_URL"),
        description=f"SQLAlchemy URL (postgresql://… or sqlite://…; async drivers are chosen automatically). "
        f"Default in development: {DEV_DATABASE_URL}.",
    )
    admin_token: SecretStr | None = Field(
        default=None, description=f"Bearer token of the admin API. Default in development only: {DEV_ADMIN_TOKEN}."
    )
    gateway_signing_key: SecretStr | None = Field(
        default=None,
        description=f"Key (at least {MIN_SIGNING_KEY_BYTES} bytes) that gateway credentials are signed with; the "
        "/v1/gateway endpoints accept only credentials it verifies (unset: they answer 503). The operator mints "
        "each gateway's credential with the same key. Never the admin token.",
    )
    usage_seq_window: int = Field(
        default=50_000_000,
        ge=1,
        description="A usage event whose seq is more than this above its gateway's highest ingested seq is "
        "rejected (dead-lettered): one forged huge seq cannot stop a gateway's metering.",
    )
    max_body_bytes: int = Field(
        default=16 * 1024 * 1024, gt=0, description="Largest request body accepted (then 413, before reading it)."
    )
    default_page_size: int = Field(default=100, ge=1, le=10_000)
    max_page_size: int = Field(default=1000, ge=1, le=10_000)
    usage_retention_months: int = Field(
        default=0,
        ge=0,
        le=1200,
        description="Raw usage rows and spans are kept for this many calendar months (UTC), the current one "
        "included; older months are dropped whole (Postgres: their partitions) once an hour. Rollups are kept. "
        "0: keep everything.",
    )
    maintenance_interval_s: float = Field(
        default=3600.0, gt=0, description="How often partitions ahead are made and retention applied."
    )
    rollup_fold_interval_s: float = Field(
        default=300.0,
        gt=0,
        description="How often the raw usage rows up to two minutes ago are folded into the per-tenant latency "
        "rollup (Postgres); until then queries read them raw. Longer: fewer, larger folds (a busy key's bins are "
        "written once per fold); ingest never waits for one.",
    )
    snapshot_cache_size: int = Field(default=1024, ge=1, description="Gateways whose last snapshot body is kept.")
    console_enabled: bool = Field(default=True, description="Serve the web console under /console.")
    console_session_ttl_s: int = Field(
        default=8 * 3600, ge=60, le=30 * 86400, description="How long a console login lasts (then log in again)."
    )
    console_cookie_secure: bool | None = Field(
        default=None,
        description="Mark the console's session cookie Secure (sent over HTTPS only). Default: on in production, "
        "off in development (http://127.0.0.1).",
    )
    console_login_window_s: float = Field(
        default=300.0, gt=0, description="The window in which failed console logins are counted."
    )
    console_login_max_failures: int = Field(
        default=5, ge=1, description="Failed console logins per account (the admin, or one key) in the window."
    )
    console_login_max_failures_per_address: int = Field(
        default=20, ge=1, description="Failed console logins per client address in the window."
    )

    @model_validator(mode="after")
    def _safe_outside_development(self) -> ApiSettings:
        key = self.gateway_signing_key.get_secret_value().encode() if self.gateway_signing_key else None
        if key is not None and len(key) < MIN_SIGNING_KEY_BYTES:
            raise ValueError(
                f"INTERLOCK_API_GATEWAY_SIGNING_KEY has {len(key)} bytes; at least {MIN_SIGNING_KEY_BYTES} are needed"
            )
        if os.environ.get("INTERLOCK_API_GATEWAY_TOKEN"):
            log.warning(
                "INTERLOCK_API_GATEWAY_TOKEN is no longer used: gateways present per-gateway credentials signed "
                "with INTERLOCK_API_GATEWAY_SIGNING_KEY"
            )
        if self.environment == "development":
            if self.database_url is None:
                self.database_url = DEV_DATABASE_URL
            if self.admin_token is None:
                self.admin_token = SecretStr(DEV_ADMIN_TOKEN)
            return self
        token = self.admin_token.get_secret_value() if self.admin_token else ""
        if not token or token == DEV_ADMIN_TOKEN:
            raise ValueError(
                "INTERLOCK_API_ADMIN_TOKEN must be set to a secret of your own outside development "
                "(it is unset or the development default)"
            )
        problem = _weakness("INTERLOCK_API_ADMIN_TOKEN", token)
        if problem is not None:
            raise ValueError(problem)
        if self.gateway_signing_key is not None:
            signing_key = self.gateway_signing_key.get_secret_value()
            problem = _weakness("INTERLOCK_API_GATEWAY_SIGNING_KEY", signing_key)
            if problem is not None:
                raise ValueError(problem)
            if signing_key == token:
                raise ValueError("INTERLOCK_API_GATEWAY_SIGNING_KEY must not be the admin token")
        if self.database_url is None:
            raise ValueError("DATABASE_URL (or INTERLOCK_API_DATABASE_URL) must be set outside development")
        return self

    @property
    def url(self) -> str:
        assert self.database_url is not None  # filled in by the validator
        return self.database_url

    def admin_secret(self) -> str:
        assert self.admin_token is not None
        return self.admin_token.get_secret_value()

    def console_cookie_is_secure(self) -> bool:
        if self.console_cookie_secure is not None:
            return self.console_cookie_secure
        return self.environment == "production"

    def signing_key(self) -> bytes | None:
        """The gateway credentials' signing key, or None when gateways cannot be authenticated."""
        return self.gateway_signing_key.get_secret_value().encode() if self.gateway_signing_key else None
