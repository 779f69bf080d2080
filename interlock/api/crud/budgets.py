"""Tenants with their quota and this month's spend, for the console's Tenants page (one query)."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from decimal import Decimal

from sqlalchemy import and_, func, select
from sqlalchemy.ext.asyncio import AsyncSession

from interlock.api.crud.quotas import month_bucket
from interlock.db.models import ApiKey, Quota, Tenant
from interlock.db.rollups import TENANT_MONTHLY

__all__ = ["TenantBudget", "tenant_budgets"]


@dataclass(frozen=True, slots=True)
class TenantBudget:
    id: str
    name: str
    created_at: dt.datetime
    requests_per_minute: int
    tokens_per_minute: int
    max_concurrency: int
    monthly_budget_usd: Decimal | None
    spent_usd: Decimal
    active_keys: int

    @property
    def budget_fraction(self) -> float | None:
        if not self.monthly_budget_usd:
            return None
        return float(self.spent_usd / self.monthly_budget_usd)


async def tenant_budgets(
    *, session: AsyncSession, month: str, now: dt.datetime, name_contains: str | None, limit: int
) -> list[TenantBudget]:
    """Tenants by name (those whose name contains ``name_contains``, case-insensitive), at most ``limit``."""
    keys = (
        select(ApiKey.tenant_id, func.count().label("n"))
        .where(ApiKey.revoked_at.is_(None), (ApiKey.expires_at.is_(None)) | (ApiKey.expires_at > now))
        .group_by(ApiKey.tenant_id)
        .subquery()
    )
    monthly = TENANT_MONTHLY.c
    query = (
        select(Tenant, Quota, monthly.cost_usd, keys.c.n)
        .outerjoin(Quota, Quota.tenant_id == Tenant.id)
        .outerjoin(TENANT_MONTHLY, and_(monthly.tenant_id == Tenant.id, monthly.bucket == month_bucket(month)))
        .outerjoin(keys, keys.c.tenant_id == Tenant.id)
        .order_by(Tenant.name)
        .limit(limit)
    )
    if name_contains:
        escaped = name_contains.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
        query = query.where(Tenant.name.ilike(f"%{escaped}%", escape="\\"))
    result = []
    for tenant, quota, spent, active in (await session.execute(query)).all():
        result.append(
            TenantBudget(
                id=tenant.id,
                name=tenant.name,
                created_at=tenant.created_at,
                requests_per_minute=quota.requests_per_minute if quota else 0,
                tokens_per_minute=quota.tokens_per_minute if quota else 0,
                max_concurrency=quota.max_concurrency if quota else 0,
                monthly_budget_usd=quota.monthly_budget_usd if quota else None,
                spent_usd=spent if spent is not None else Decimal(0),
                active_keys=int(active or 0),
            )
        )
    return result
