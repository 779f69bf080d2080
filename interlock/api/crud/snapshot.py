"""The gateway snapshot, split by how often things change.

- Config (tenants with quotas, active keys, prices): versioned by ``config_changes`` (database triggers append a
  row on every change), so ``config_version`` is one indexed read and a poll that finds it unchanged is answered
  304 before anything is built. ``build_snapshot`` builds the full document; ``build_delta`` only the tenants
  and keys changed since a version (and the ids of those gone), or None when the log no longer reaches back
  that far (the caller then sends the full one).
- Spend (``build_spend``): this month's spend of the tenants with a budget, and the gateway's ``ingested_seq``,
  read in one database snapshot so they agree; its version (``spend_version``) comes from what moves it, so a 304
  is answered without building it either.
"""

from __future__ import annotations

import datetime as dt
import hashlib
from collections.abc import Sequence
from typing import Any

from sqlalchemy import case, delete, func, or_, select
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import selectinload

from interlock.api.configwatch import Cursors
from interlock.api.crud.dialect import begin_consistent_read, dialect_name, driver_connection
from interlock.api.crud.quotas import month_bucket, month_of, quota_priority
from interlock.contract.controlplane import (
    KeyRecord,
    PriceRecord,
    QuotaRecord,
    Snapshot,
    SpendSnapshot,
    TenantRecord,
)
from interlock.db.models import ApiKey, ConfigChange, GatewayCursor, Price, Quota, Tenant
from interlock.db.rollups import TENANT_MONTHLY

__all__ = [
    "SPEND_REFRESH_S",
    "build_delta",
    "build_snapshot",
    "build_spend",
    "config_version",
    "polled_config_version",
    "prune_config_changes",
    "spend_version",
    "spend_version_of",
]


def _as_utc(value: object) -> dt.datetime:
    if isinstance(value, str):  # SQLite's MAX() of a timestamp comes back as text
        value = dt.datetime.fromisoformat(value)
    assert isinstance(value, dt.datetime)
    return value.replace(tzinfo=dt.UTC) if value.tzinfo is None else value


_MAX_DELTA_CHANGES = 50_000
"""A delta over more changes than this is sent as a full snapshot instead."""


async def config_version(session: AsyncSession) -> int:
    """The current config version (the highest ``config_changes.version``), in the session's transaction."""
    version = await session.scalar(select(func.max(ConfigChange.version)))
    return int(version or 0)


async def polled_config_version(session: AsyncSession) -> int:
    """``config_version`` as a poll asks it, first thing in a fresh session: one index probe, on Postgres straight
    through asyncpg, since this is what every snapshot poll costs."""
    if dialect_name(session) != "postgresql":
        return await config_version(session)
    driver = await driver_connection(session)
    return int(await driver.fetchval("SELECT max(version) FROM config_changes") or 0)


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
        priority=quota_priority(quota.priority),
    )


def _active(now: dt.datetime) -> list[object]:
    return [ApiKey.revoked_at.is_(None), or_(ApiKey.expires_at.is_(None), ApiKey.expires_at > now)]


def _key(k: ApiKey) -> KeyRecord:
    return KeyRecord(id=k.id, tenant_id=k.tenant_id, prefix=k.prefix, sha256=k.sha256, expires_at=k.expires_at)


async def _prices(session: AsyncSession) -> list[PriceRecord]:
    prices = (await session.scalars(select(Price).order_by(Price.backend, Price.model))).all()
    return [
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


async def _spend_and_seq(
    session: AsyncSession, gateway_id: str, now: dt.datetime, tenant_ids: Sequence[str] | None = None
) -> tuple[dict[str, float], int]:
    """This month's spend (of ``tenant_ids`` only, when given) and the gateway's ``ingested_seq``."""
    monthly = TENANT_MONTHLY.c
    query = select(monthly.tenant_id, monthly.cost_usd).where(monthly.bucket == month_bucket(month_of(now)))
    if tenant_ids is not None:
        query = query.where(monthly.tenant_id.in_(tenant_ids))
    rows = await session.execute(query)
    spend = {str(row.tenant_id): float(row.cost_usd) for row in rows}
    cursor = await session.get(GatewayCursor, gateway_id)
    return spend, cursor.seq if cursor is not None else 0


def _tenants(tenants: Sequence[Tenant], spend: dict[str, float]) -> list[TenantRecord]:
    return [TenantRecord(id=t.id, name=t.name, quota=_quota(t), spent_usd=spend.get(t.id, 0.0)) for t in tenants]


async def build_snapshot(*, session: AsyncSession, gateway_id: str, now: dt.datetime) -> Snapshot:
    """Everything, at one config version (with spend and ``ingested_seq`` as of now)."""
    await begin_consistent_read(session)
    version = await config_version(session)
    tenants = (await session.scalars(select(Tenant).options(selectinload(Tenant.quota)).order_by(Tenant.id))).all()
    keys = (await session.scalars(select(ApiKey).where(*_active(now)).order_by(ApiKey.id))).all()  # type: ignore[arg-type]
    prices = await _prices(session)
    spend, ingested_seq = await _spend_and_seq(session, gateway_id, now)
    await session.commit()
    return Snapshot(
        version=str(version),
        generated_at=now,
        tenants=_tenants(tenants, spend),
        keys=[_key(k) for k in keys],
        prices=prices,
        ingested_seq=ingested_seq,
    )


async def build_delta(*, session: AsyncSession, gateway_id: str, since: int, now: dt.datetime) -> Snapshot | None:
    """What changed after version ``since``; None when the change log does not reach back to it (or the delta
    would be larger than a full snapshot is worth)."""
    await begin_consistent_read(session)
    oldest = await session.scalar(select(func.min(ConfigChange.version)))
    version = await config_version(session)
    if oldest is None or since < oldest - 1 or since > version:
        await session.commit()
        return None
    changes = (
        await session.execute(
            select(ConfigChange.kind, ConfigChange.object_id)
            .where(ConfigChange.version > since)
            .limit(_MAX_DELTA_CHANGES + 1)
        )
    ).all()
    if len(changes) > _MAX_DELTA_CHANGES:
        await session.commit()
        return None
    tenant_ids = sorted({str(c.object_id) for c in changes if c.kind == "tenant"})
    key_ids = sorted({str(c.object_id) for c in changes if c.kind == "key"})
    tenants = (
        await session.scalars(
            select(Tenant).options(selectinload(Tenant.quota)).where(Tenant.id.in_(tenant_ids)).order_by(Tenant.id)
        )
    ).all()
    keys = (
        await session.scalars(select(ApiKey).where(ApiKey.id.in_(key_ids), *_active(now)).order_by(ApiKey.id))  # type: ignore[arg-type]
    ).all()
    prices = await _prices(session)
    spend, ingested_seq = await _spend_and_seq(session, gateway_id, now, tenant_ids)
    await session.commit()
    present_tenants = {t.id for t in tenants}
    present_keys = {k.id for k in keys}
    return Snapshot(
        version=str(version),
        generated_at=now,
        tenants=_tenants(tenants, spend),
        keys=[_key(k) for k in keys],
        prices=prices,
        ingested_seq=ingested_seq,
        base_version=str(since),
        removed_tenants=[t for t in tenant_ids if t not in present_tenants],
        removed_keys=[k for k in key_ids if k not in present_keys],
    )


SPEND_REFRESH_S = 30
"""A spend document's version also changes this often, whatever else does (see ``spend_version``)."""


async def spend_version(
    session: AsyncSession, gateway_id: str, now: dt.datetime, cursors: Cursors | None = None
) -> str:
    """The version of the spend document, from what moves it, without building it: every ingest that counts an
    event moves some gateway's cursor (in the same transaction), and the month turns. What moves no cursor (a batch
    whose new events all lie below their gateway's cursor; a tenant gaining a budget, whose spend then joins the
    document) shows within ``SPEND_REFRESH_S``, a time step that is part of the version. ``cursors``: as the
    ``ConfigWatch`` holds them (then no database read); None: read them (one indexed aggregate)."""
    if cursors is not None:
        return spend_version_of(cursors, gateway_id, now)
    if dialect_name(session) == "postgresql":
        driver = await driver_connection(session)
        moved = await driver.fetchrow(
            "SELECT count(*), coalesce(sum(seq), 0), max(updated_at), "
            "max(CASE WHEN gateway_id = $1 THEN seq ELSE 0 END) FROM gateway_cursors",
            gateway_id,
        )
        await session.commit()
    else:
        table = GatewayCursor.__table__.c
        moved = (
            await session.execute(
                select(
                    func.count(),
                    func.coalesce(func.sum(table.seq), 0),
                    func.max(table.updated_at),
                    func.max(case((table.gateway_id == gateway_id, table.seq), else_=0)),
                )
            )
        ).one()
        await session.commit()
    return _spend_version(moved, now)


def spend_version_of(cursors: Cursors, gateway_id: str, now: dt.datetime) -> str:
    """``spend_version`` from the cursors a ``ConfigWatch`` holds (no database read)."""
    return _spend_version((cursors.count, cursors.total, cursors.last_update, cursors.seqs.get(gateway_id, 0)), now)


def _spend_version(moved: Any, now: dt.datetime) -> str:
    step = int(now.timestamp()) // SPEND_REFRESH_S
    last = _as_utc(moved[2]).timestamp() if moved[2] is not None else 0
    source = f"{month_of(now)}|{moved[0]}|{moved[1]}|{last}|{moved[3] or 0}|{step}"
    return hashlib.sha256(source.encode()).hexdigest()[:32]


async def build_spend(*, session: AsyncSession, gateway_id: str, now: dt.datetime, version: str) -> SpendSnapshot:
    """This month's spend of the tenants with a monthly budget, and this gateway's ``ingested_seq``."""
    await begin_consistent_read(session)
    month = month_of(now)
    monthly = TENANT_MONTHLY.c
    rows = await session.execute(
        select(monthly.tenant_id, monthly.cost_usd)
        .join(Quota, Quota.tenant_id == monthly.tenant_id)
        .where(monthly.bucket == month_bucket(month), Quota.monthly_budget_usd.is_not(None))
        .order_by(monthly.tenant_id)
    )
    spent = {str(row.tenant_id): float(row.cost_usd) for row in rows}
    cursor = await session.get(GatewayCursor, gateway_id)
    await session.commit()
    ingested_seq = cursor.seq if cursor is not None else 0
    return SpendSnapshot(version=version, month=month, ingested_seq=ingested_seq, spent_usd=spent)


async def prune_config_changes(*, session: AsyncSession, older_than: dt.datetime) -> None:
    """Forget changes older than this, always keeping the newest (which is the current version)."""
    newest = await config_version(session)
    await session.execute(
        delete(ConfigChange).where(ConfigChange.changed_at < older_than, ConfigChange.version < newest)
    )
    await session.commit()
