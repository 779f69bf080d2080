"""Traces: a traced request is a usage row (its ``trace_id``) with the spans the gateway recorded for it: the row's
``spans`` column, or for a row counted before that column existed (migration ``c5e8a1f3b7d2``), its rows in the
``spans`` table."""

from __future__ import annotations

from collections.abc import Sequence

from sqlalchemy import and_, or_, select
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import undefer

from interlock.api.crud.usage import UsageFilter
from interlock.api.errors import NotFoundError
from interlock.api.pagination import decode_cursor, encode_cursor
from interlock.api.schemas import SpanPublic, TracePublic, TraceSummary
from interlock.db.models import Span, Usage

__all__ = ["get_trace", "list_traces"]


def _summary(row: Usage) -> dict[str, object]:
    return {
        "trace_id": row.trace_id,
        "usage_id": row.id,
        "tenant_id": row.tenant_id,
        "key_id": row.key_id,
        "route": row.route,
        "backend": row.backend,
        "model": row.model,
        "status": row.status,
        "started_at": row.started_at,
        "latency_ms": row.latency_ms,
        "ttft_ms": row.ttft_ms,
        "cost_usd": row.cost_usd,
    }


async def list_traces(
    *, session: AsyncSession, filters: UsageFilter, limit: int, cursor: str | None = None
) -> tuple[Sequence[TraceSummary], str | None]:
    query = select(Usage).where(*filters.where(), Usage.trace_id != "")
    if cursor is not None:
        started_at, row_id = decode_cursor(cursor)
        query = query.where(or_(Usage.started_at < started_at, and_(Usage.started_at == started_at, Usage.id < row_id)))
    query = query.order_by(Usage.started_at.desc(), Usage.id.desc()).limit(limit + 1)
    rows = (await session.scalars(query)).all()
    page = [TraceSummary.model_validate(_summary(row)) for row in rows[:limit]]
    if len(rows) <= limit:
        return page, None
    last = rows[limit - 1]
    return page, encode_cursor(last.started_at, last.id)


async def get_trace(*, session: AsyncSession, trace_id: str, scope_tenant_id: str | None) -> TracePublic:
    """The request with this trace id (the first one, should a gateway ever reuse an id) and its spans."""
    filters = UsageFilter(trace_id=trace_id, scope_tenant_id=scope_tenant_id)
    query = select(Usage).options(undefer(Usage.spans)).where(*filters.where())
    row = (await session.scalars(query.order_by(Usage.started_at, Usage.id).limit(1))).first()
    if row is None:
        raise NotFoundError(f"trace {trace_id!r} not found")
    if row.spans is not None:
        spans = [SpanPublic.model_validate({"attributes": {}, **span}) for span in row.spans]
    else:
        legacy = select(Span).where(Span.usage_id == row.id).order_by(Span.position)
        spans = [SpanPublic.model_validate(span, from_attributes=True) for span in await session.scalars(legacy)]
    return TracePublic.model_validate({**_summary(row), "spans": spans})
