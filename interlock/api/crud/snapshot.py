"""The gateway snapshot: tenants with quota and this month's spend, active keys, price overrides, and the
gateway's ``ingested_seq``, all read in one database snapshot so the spend and the cursor agree.

``version`` is a hash of that content (not of ``generated_at``): it is the strong ETag, so a gateway polling an
unchanged control plane gets 304s.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
from decimal import Decimal

from sqlalchemy import or_, select
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import selectinload

from interlock.api.crud.dialect import begin_consistent_read
from interlock.api.crud.quotas import month_of
from interlock.contract.controlplane import KeyRecord, PriceRecord, QuotaRecord, Snapshot, TenantRecord
from interlock.db.models import ApiKey, GatewayCursor, MonthlySpend, Price, Tenant

__all__ = ["build_snapshot"]


def _quota(tenant: Tenant) -> QuotaRecord:
    quota = tenant.quota
    if quota is None:
        return QuotaRecord()
    budget = quota.monthly_budget_usd
    return QuotaRecord(
        requests_per_minute=quota.requests_per_minute,
        tokens_per_minute=quota.tokens_per_minute,
        max_concurrency=quota.max_concurrency,
        monthly_budget_usd=float(budget) if budget is not None else None,
    )


async def build_snapshot(*, session: AsyncSession, gateway_id: str, now: dt.datetime) -> Snapshot:
    await begin_consistent_read(session)
    month = month_of(now)
    tenants = (await session.scalars(select(Tenant).options(selectinload(Tenant.quota)).order_by(Tenant.id))).all()
    spend_rows = await session.execute(
        select(MonthlySpend.tenant_id, MonthlySpend.cost_usd).where(MonthlySpend.month == month)
    )
    spend: dict[str, Decimal] = {row.tenant_id: row.cost_usd for row in spend_rows}
    keys = (
        await session.scalars(
            select(ApiKey)
            .where(ApiKey.revoked_at.is_(None), or_(ApiKey.expires_at.is_(None), ApiKey.expires_at > now))
            .order_by(ApiKey.id)
        )
    ).all()
    prices = (await session.scalars(select(Price).order_by(Price.backend, Price.model))).all()
    cursor = await session.get(GatewayCursor, gateway_id)
    await session.commit()

    tenant_records = [
        TenantRecord(id=t.id, name=t.name, quota=_quota(t), spent_usd=float(spend.get(t.id, 0))) for t in tenants
    ]
    key_records = [
        KeyRecord(id=k.id, tenant_id=k.tenant_id, prefix=k.prefix, sha256=k.sha256, expires_at=k.expires_at)
        for k in keys
    ]
    price_records = [
        PriceRecord(
            backend=p.backend,
            model=p.model,
            input_per_million=float(p.input_per_million),
            output_per_million=float(p.output_per_million),
            cached_input_per_million=(
                float(p.cached_input_per_million) if p.cached_input_per_million is not None else None
            ),
        )
        for p in prices
    ]
    ingested_seq = cursor.seq if cursor is not None else 0
    canonical = json.dumps(
        {
            "tenants": [r.model_dump(mode="json") for r in tenant_records],
            "keys": [r.model_dump(mode="json") for r in key_records],
            "prices": [r.model_dump(mode="json") for r in price_records],
            "ingested_seq": ingested_seq,
        },
        sort_keys=True,
        separators=(",", ":"),
    )
    return Snapshot(
        version=hashlib.sha256(canonical.encode()).hexdigest()[:32],
        generated_at=now,
        tenants=tenant_records,
        keys=key_records,
        prices=price_records,
        ingested_seq=ingested_seq,
    )
