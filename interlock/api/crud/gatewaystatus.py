"""The latest status report of each gateway (``POST /v1/gateway/status``), for the console's Gateways page."""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from interlock.api.crud.dialect import insert_for
from interlock.contract.controlplane import GatewayStatusReport
from interlock.db.models import GatewayStatus

__all__ = ["list_gateway_status", "record_gateway_status"]


async def record_gateway_status(*, session: AsyncSession, report: GatewayStatusReport, now: dt.datetime) -> None:
    """Keep ``report`` as the gateway's latest (one row per gateway id, replaced)."""
    values = {
        "gateway_id": report.gateway_id,
        "reported_at": now,
        "config_version": report.config_version,
        "ready": report.ready,
        "report": report.model_dump(mode="json"),
    }
    statement = insert_for(session)(GatewayStatus).values(**values)
    statement = statement.on_conflict_do_update(
        index_elements=[GatewayStatus.gateway_id],
        set_={k: statement.excluded[k] for k in ("reported_at", "config_version", "ready", "report")},
    )
    await session.execute(statement)
    await session.commit()


async def list_gateway_status(*, session: AsyncSession, limit: int) -> Sequence[GatewayStatus]:
    """The gateways that reported, most recent first."""
    query = select(GatewayStatus).order_by(GatewayStatus.reported_at.desc(), GatewayStatus.gateway_id).limit(limit)
    return (await session.scalars(query)).all()
