"""Display names for the ids the ledger keeps (tenant ids to tenant names)."""

from __future__ import annotations

from collections.abc import Iterable

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from interlock.db.models import Tenant

__all__ = ["tenant_names"]


async def tenant_names(session: AsyncSession, ids: Iterable[str | None]) -> dict[str, str]:
    """``{tenant id: name}`` for the ids that still name a tenant (at most 1,000 looked up)."""
    wanted = sorted({i for i in ids if i})[:1000]
    if not wanted:
        return {}
    rows = await session.execute(select(Tenant.id, Tenant.name).where(Tenant.id.in_(wanted)))
    return {row.id: row.name for row in rows}
