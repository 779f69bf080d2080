"""Tenants: unique names; deleting one deletes its keys and quota (its usage stays in the ledger)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import NamedTuple

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from interlock.api.crud.commit import commit_unique
from interlock.api.errors import NotFoundError
from interlock.db.models import Tenant

__all__ = [
    "TenantName",
    "create_tenant",
    "delete_tenant",
    "get_tenant",
    "get_tenant_by_name",
    "list_tenants",
    "tenant_name",
    "tenant_names_by_name",
    "update_tenant",
]


class TenantName(NamedTuple):
    id: str
    name: str


async def create_tenant(*, session: AsyncSession, name: str) -> Tenant:
    tenant = Tenant(name=name)
    session.add(tenant)
    await commit_unique(session, f"a tenant named {name!r} already exists")
    return tenant


async def get_tenant(*, session: AsyncSession, tenant_id: str) -> Tenant:
    tenant = await session.get(Tenant, tenant_id)
    if tenant is None:
        raise NotFoundError(f"tenant {tenant_id!r} not found")
    return tenant


async def get_tenant_by_name(*, session: AsyncSession, name: str) -> Tenant | None:
    result = await session.scalars(select(Tenant).where(Tenant.name == name))
    return result.first()


async def list_tenants(*, session: AsyncSession, limit: int, after_name: str | None = None) -> Sequence[Tenant]:
    query = select(Tenant).order_by(Tenant.name).limit(limit)
    if after_name is not None:
        query = query.where(Tenant.name > after_name)
    return (await session.scalars(query)).all()


async def tenant_names_by_name(*, session: AsyncSession, limit: int) -> list[TenantName]:
    """The first ``limit`` tenants' ids and names, by name: a form's choices (no ORM objects, no quotas loaded)."""
    rows = await session.execute(select(Tenant.id, Tenant.name).order_by(Tenant.name).limit(limit))
    return [TenantName(*row) for row in rows]


async def tenant_name(*, session: AsyncSession, tenant_id: str) -> TenantName | None:
    name = await session.scalar(select(Tenant.name).where(Tenant.id == tenant_id))
    return None if name is None else TenantName(tenant_id, name)


async def update_tenant(*, session: AsyncSession, tenant_id: str, name: str | None) -> Tenant:
    tenant = await get_tenant(session=session, tenant_id=tenant_id)
    if name is not None and name != tenant.name:
        tenant.name = name
        await commit_unique(session, f"a tenant named {name!r} already exists")
    return tenant


async def delete_tenant(*, session: AsyncSession, tenant_id: str) -> None:
    tenant = await get_tenant(session=session, tenant_id=tenant_id)
    await session.delete(tenant)
    await session.commit()
