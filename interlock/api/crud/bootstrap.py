"""The first tenant and key of ``interlock up``: created once, found again on the next start."""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from interlock.api.crud.keys import create_key
from interlock.api.crud.tenants import create_tenant, get_tenant_by_name
from interlock.api.errors import ConflictError, InvalidError
from interlock.contract.keys import hash_key, is_well_formed_key
from interlock.db.models import ApiKey

__all__ = ["Bootstrap", "ensure_bootstrap"]


@dataclass(frozen=True)
class Bootstrap:
    tenant_id: str
    tenant_name: str
    key_id: str
    key: str | None
    """The plaintext: the given key, or a new one; None when an earlier run created the key (never stored)."""
    created: bool
    """Whether this call created the key."""


async def ensure_bootstrap(
    *, session: AsyncSession, tenant_name: str = "default", key: str | None = None, key_name: str = "bootstrap"
) -> Bootstrap:
    """Idempotent: the tenant ``tenant_name`` and an active key in it.

    With ``key``, that key (registered if new; an error if it belongs to another tenant or was revoked). Without,
    the tenant's first active ``key_name`` key when there is one (its plaintext is unknown: ``key`` is None), else
    a new key, returned in plaintext.
    """
    if key is not None and not is_well_formed_key(key):
        raise InvalidError("a bootstrap key must be 'sk-il-' followed by more than 8 printable characters")
    tenant = await get_tenant_by_name(session=session, name=tenant_name)
    if tenant is None:
        try:
            tenant = await create_tenant(session=session, name=tenant_name)
        except ConflictError:  # created concurrently
            tenant = await get_tenant_by_name(session=session, name=tenant_name)
            assert tenant is not None
    if key is not None:
        found = (await session.scalars(select(ApiKey).where(ApiKey.sha256 == hash_key(key)))).first()
        if found is not None:
            if found.tenant_id != tenant.id or found.revoked_at is not None:
                raise ConflictError("the bootstrap key is registered to another tenant or revoked")
            return Bootstrap(tenant.id, tenant.name, found.id, key, created=False)
    else:
        query = (
            select(ApiKey)
            .where(ApiKey.tenant_id == tenant.id, ApiKey.name == key_name, ApiKey.revoked_at.is_(None))
            .order_by(ApiKey.created_at)
        )
        existing = (await session.scalars(query)).first()
        if existing is not None and existing.expires_at is None:
            return Bootstrap(tenant.id, tenant.name, existing.id, None, created=False)
    created = await create_key(session=session, tenant_id=tenant.id, name=key_name, plaintext=key)
    return Bootstrap(tenant.id, tenant.name, created.record.id, created.key, created=True)
