"""Console sessions in the database (``console_sessions``): created at login, read on every console request,
deleted at logout. A tenant session lasts only as long as the key it logged in with is active."""

from __future__ import annotations

import datetime as dt
import secrets
from dataclasses import dataclass
from typing import Literal

from sqlalchemy import delete
from sqlalchemy.ext.asyncio import AsyncSession

from interlock.api.console.cookie import token_sha256
from interlock.db.models import ApiKey, ConsoleSession

__all__ = ["ConsoleUser", "create_session", "delete_session", "load_session"]


@dataclass(frozen=True, slots=True)
class ConsoleUser:
    role: Literal["admin", "tenant"]
    csrf_token: str
    token_sha256: str
    tenant_id: str | None = None

    @property
    def is_admin(self) -> bool:
        return self.role == "admin"

    def scope(self, requested: str | None = None) -> str | None:
        """The tenant a query must be confined to: a tenant login's own always; for the admin, what it asked."""
        return self.tenant_id if self.role == "tenant" else (requested or None)


async def create_session(
    *,
    session: AsyncSession,
    token: str,
    role: Literal["admin", "tenant"],
    ttl_s: int,
    now: dt.datetime,
    tenant_id: str | None = None,
    key_id: str | None = None,
) -> None:
    """Store the session (and drop expired ones on the way: logins are rare, the index makes it cheap)."""
    await session.execute(delete(ConsoleSession).where(ConsoleSession.expires_at <= now))
    session.add(
        ConsoleSession(
            token_sha256=token_sha256(token),
            role=role,
            tenant_id=tenant_id,
            key_id=key_id,
            csrf_token=secrets.token_urlsafe(32),
            created_at=now,
            expires_at=now + dt.timedelta(seconds=ttl_s),
        )
    )
    await session.commit()


async def load_session(*, session: AsyncSession, token: str, now: dt.datetime) -> ConsoleUser | None:
    row = await session.get(ConsoleSession, token_sha256(token))
    if row is None or row.expires_at <= now:
        return None
    if row.role == "tenant":
        key = await session.get(ApiKey, row.key_id) if row.key_id else None
        revoked = key is None or key.revoked_at is not None
        if revoked or (key is not None and key.expires_at is not None and key.expires_at <= now):
            return None
        return ConsoleUser("tenant", row.csrf_token, row.token_sha256, tenant_id=row.tenant_id)
    return ConsoleUser("admin", row.csrf_token, row.token_sha256)


async def delete_session(*, session: AsyncSession, token_hash: str) -> None:
    await session.execute(delete(ConsoleSession).where(ConsoleSession.token_sha256 == token_hash))
    await session.commit()
