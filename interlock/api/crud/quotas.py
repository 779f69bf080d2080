"""Quotas and the monthly spend rollup they are checked against."""

from __future__ import annotations

import datetime as dt
from decimal import Decimal

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from interlock.api.crud.tenants import get_tenant
from interlock.api.schemas import QuotaPriority, QuotaPublic, QuotaUpdate
from interlock.db.models import Quota
from interlock.db.rollups import TENANT_MONTHLY

__all__ = ["get_quota", "month_bucket", "month_of", "put_quota", "quota_priority", "spent_in_month"]


def month_of(when: dt.datetime) -> str:
    """The calendar month (UTC) a moment belongs to, as the rollup keys it: ``YYYY-MM``."""
    when = when.replace(tzinfo=dt.UTC) if when.tzinfo is None else when.astimezone(dt.UTC)
    return f"{when.year:04d}-{when.month:02d}"


def month_bucket(month: str) -> dt.datetime:
    """The ``tenant_monthly`` bucket (the month's first moment, UTC) of a ``YYYY-MM`` month."""
    year, number = month.split("-")
    return dt.datetime(int(year), int(number), 1, tzinfo=dt.UTC)


async def spent_in_month(*, session: AsyncSession, tenant_id: str, month: str) -> Decimal:
    monthly = TENANT_MONTHLY.c
    spent = await session.scalar(
        select(monthly.cost_usd).where(monthly.bucket == month_bucket(month), monthly.tenant_id == tenant_id)
    )
    return spent if spent is not None else Decimal(0)


def quota_priority(stored: str) -> QuotaPriority:
    """The stored class; anything else (a hand-edited row) reads as standard."""
    if stored == "critical":
        return "critical"
    if stored == "sheddable":
        return "sheddable"
    return "standard"


def _public(tenant_id: str, quota: Quota | None, spent: Decimal) -> QuotaPublic:
    if quota is None:
        return QuotaPublic(tenant_id=tenant_id, spent_this_month_usd=spent)
    return QuotaPublic(
        tenant_id=tenant_id,
        requests_per_minute=quota.requests_per_minute,
        tokens_per_minute=quota.tokens_per_minute,
        max_concurrency=quota.max_concurrency,
        monthly_budget_usd=quota.monthly_budget_usd,
        priority=quota_priority(quota.priority),
        spent_this_month_usd=spent,
    )


async def get_quota(*, session: AsyncSession, tenant_id: str) -> QuotaPublic:
    await get_tenant(session=session, tenant_id=tenant_id)
    quota = (await session.scalars(select(Quota).where(Quota.tenant_id == tenant_id))).first()
    spent = await spent_in_month(session=session, tenant_id=tenant_id, month=month_of(dt.datetime.now(dt.UTC)))
    return _public(tenant_id, quota, spent)


async def put_quota(*, session: AsyncSession, tenant_id: str, quota_in: QuotaUpdate) -> QuotaPublic:
    await get_tenant(session=session, tenant_id=tenant_id)
    quota = (await session.scalars(select(Quota).where(Quota.tenant_id == tenant_id))).first()
    if quota is None:
        quota = Quota(tenant_id=tenant_id)
        session.add(quota)
    quota.requests_per_minute = quota_in.requests_per_minute
    quota.tokens_per_minute = quota_in.tokens_per_minute
    quota.max_concurrency = quota_in.max_concurrency
    quota.monthly_budget_usd = quota_in.monthly_budget_usd
    quota.priority = quota_in.priority
    await session.commit()
    return await get_quota(session=session, tenant_id=tenant_id)
