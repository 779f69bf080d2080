"""API keys of tenants: created with the plaintext returned once, listed by prefix, revoked by time stamp."""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence
from dataclasses import dataclass
from typing import NamedTuple

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from interlock.api.crud.commit import commit_unique
from interlock.api.crud.tenants import get_tenant
from interlock.api.errors import InvalidError, NotFoundError
from interlock.contract.keys import generate_key, hash_key, is_well_formed_key, lookup_prefix
from interlock.db.models import ApiKey, Tenant

__all__ = ["CreatedKey", "ListedKey", "create_key", "find_active_key", "list_keys", "list_recent_keys", "revoke_key"]


@dataclass(frozen=True)
class CreatedKey:
    record: ApiKey
    key: str
    """The plaintext: this is the only place it exists."""


async def create_key(
    *,
    session: AsyncSession,
    tenant_id: str,
    name: str,
    expires_at: dt.datetime | None = None,
    plaintext: str | None = None,
) -> CreatedKey:
    """A new key for the tenant; ``plaintext`` registers a given key (``interlock up --bootstrap-key``)."""
    await get_tenant(session=session, tenant_id=tenant_id)
    key = plaintext if plaintext is not None else generate_key()
    if not is_well_formed_key(key):
        raise InvalidError("a key must be 'sk-il-' followed by more than 8 printable characters without spaces")
    record = ApiKey(tenant_id=tenant_id, name=name, prefix=lookup_prefix(key), sha256=hash_key(key))
    record.expires_at = expires_at
    session.add(record)
    await commit_unique(session, "this key is already registered")
    return CreatedKey(record=record, key=key)


async def list_keys(*, session: AsyncSession, tenant_id: str) -> Sequence[ApiKey]:
    await get_tenant(session=session, tenant_id=tenant_id)
    query = select(ApiKey).where(ApiKey.tenant_id == tenant_id).order_by(ApiKey.created_at, ApiKey.id)
    return (await session.scalars(query)).all()


async def revoke_key(*, session: AsyncSession, key_id: str) -> ApiKey:
    """Revoke now; revoking a revoked key keeps the first revocation time."""
    record = await session.get(ApiKey, key_id)
    if record is None:
        raise NotFoundError(f"key {key_id!r} not found")
    if record.revoked_at is None:
        record.revoked_at = dt.datetime.now(dt.UTC)
        await session.commit()
    return record


async def find_active_key(*, session: AsyncSession, key: str, now: dt.datetime) -> ApiKey | None:
    """The stored key for a plaintext, when it is neither revoked nor expired."""
    if not is_well_formed_key(key):
        return None
    query = select(ApiKey).where(ApiKey.prefix == lookup_prefix(key), ApiKey.sha256 == hash_key(key))
    record = (await session.scalars(query)).first()
    if record is None or record.revoked_at is not None:
        return None
    if record.expires_at is not None and record.expires_at <= now:
        return None
    return record


class ListedKey(NamedTuple):
    """A key as the console's Keys page lists it, with its tenant's name."""

    id: str
    name: str
    prefix: str
    tenant_id: str
    created_at: dt.datetime
    expires_at: dt.datetime | None
    revoked_at: dt.datetime | None
    tenant_name: str


async def list_recent_keys(*, session: AsyncSession, tenant_id: str | None, limit: int) -> list[ListedKey]:
    """Keys newest first (ties by id, descending), of one tenant or all (the console's Keys page), as plain rows:
    500 ORM objects and their tenants' were most of the page's time."""
    k = ApiKey
    query = (
        select(k.id, k.name, k.prefix, k.tenant_id, k.created_at, k.expires_at, k.revoked_at, Tenant.name)
        .join(Tenant, Tenant.id == k.tenant_id)
        .order_by(k.created_at.desc(), k.id.desc())  # backwards along ix_api_keys_newest
    )
    if tenant_id is not None:
        query = query.where(k.tenant_id == tenant_id)
    rows = await session.execute(query.limit(limit))
    return [ListedKey(*row) for row in rows]
