"""Control-plane settings, from ``INTERLOCK_API_*`` environment variables (and plain ``DATABASE_URL``).

Outside ``development`` the settings refuse to exist without a real admin token (and database URL): a production
control plane must never answer to the well-known development token.
"""

from __future__ import annotations

from typing import Literal

from pydantic import AliasChoices, Field, SecretStr, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

__all__ = ["DEV_ADMIN_TOKEN", "DEV_DATABASE_URL", "ApiSettings"]

DEV_ADMIN_TOKEN = "interlock-dev-admin-token"  # noqa: S105 (the well-known dev token production refuses)
DEV_DATABASE_URL = "sqlite+aiosqlite:///./interlock.db"
_MIN_TOKEN_CHARS = 16


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
    gateway_token: SecretStr | None = Field(
        default=None, description="Bearer token of the /v1/gateway endpoints; unset: the admin token."
    )
    default_page_size: int = Field(default=100, ge=1, le=10_000)
    max_page_size: int = Field(default=1000, ge=1, le=10_000)
    snapshot_cache_size: int = Field(default=1024, ge=1, description="Gateways whose last snapshot body is kept.")

    @model_validator(mode="after")
    def _safe_outside_development(self) -> ApiSettings:
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
        if len(token) < _MIN_TOKEN_CHARS:
            raise ValueError(f"INTERLOCK_API_ADMIN_TOKEN must be at least {_MIN_TOKEN_CHARS} characters in production")
        if self.gateway_token is not None and self.gateway_token.get_secret_value() in ("", DEV_ADMIN_TOKEN):
            raise ValueError("INTERLOCK_API_GATEWAY_TOKEN must not be empty or the development default")
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

    def gateway_secret(self) -> str:
        return self.gateway_token.get_secret_value() if self.gateway_token else self.admin_secret()
