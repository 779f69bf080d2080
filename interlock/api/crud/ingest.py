"""Usage ingestion: one transaction per batch, exactly-once by ``idempotency_id``.

``INSERT … ON CONFLICT (idempotency_id) DO NOTHING RETURNING`` tells which events are new; only those add their
spans and their cost to the monthly rollup, and the gateway's cursor moves to the batch's highest ``seq``, all in
the same transaction. Concurrent resends of one batch are safe because the UNIQUE constraint decides, not a
read-then-write check: on Postgres the second insert waits for the first transaction and then does nothing. Rows,
rollup rows and cursors are written in sorted key order, so concurrent batches cannot deadlock.
"""

from __future__ import annotations

import datetime as dt
import math
from collections import defaultdict
from collections.abc import Sequence
from decimal import Decimal
from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession

from interlock.api.crud.dialect import begin_write, greatest, insert_for
from interlock.api.crud.quotas import month_of
from interlock.contract.controlplane import UsageBatchResult, UsageEvent
from interlock.db.models import GatewayCursor, MonthlySpend, Span, Usage
from interlock.db.types import to_money

__all__ = ["ingest_events"]

_USAGE = Usage.__table__
_SPANS = Span.__table__


def _clean(text: str) -> str:
    return text.replace("\x00", "\ufffd")  # Postgres text cannot hold NUL; keep the event rather than refuse it


def _utc(when: dt.datetime) -> dt.datetime:
    return when.replace(tzinfo=dt.UTC) if when.tzinfo is None else when.astimezone(dt.UTC)


def _usage_row(event: UsageEvent) -> dict[str, Any]:
    return {
        "idempotency_id": _clean(event.idempotency_id),
        "gateway_id": _clean(event.gateway_id),
        "seq": event.seq,
        "started_at": _utc(event.started_at),
        "tenant_id": _clean(event.tenant_id),
        "key_id": _clean(event.key_id),
        "route": _clean(event.route),
        "backend": _clean(event.backend),
        "model": _clean(event.model),
        "status": event.status,
        "input_tokens": event.input_tokens,
        "output_tokens": event.output_tokens,
        "cached_tokens": event.cached_tokens,
        "cache_creation_tokens": event.cache_creation_tokens,
        "usage_estimated": event.usage_estimated,
        "cost_usd": to_money(event.cost_usd),
        "latency_ms": event.latency_ms,
        "ttft_ms": event.ttft_ms,
        "trace_id": _clean(event.trace_id),
    }


def _attribute(value: str | int | float | bool | None) -> str | int | float | bool | None:
    if isinstance(value, float) and not math.isfinite(value):
        return None  # JSON has no NaN or infinity
    return _clean(value) if isinstance(value, str) else value


def _span_rows(usage_id: int, event: UsageEvent) -> list[dict[str, Any]]:
    return [
        {
            "usage_id": usage_id,
            "trace_id": _clean(event.trace_id),
            "position": position,
            "name": _clean(span.name),
            "start_ms": span.start_ms,
            "duration_ms": span.duration_ms,
            "attributes": {_clean(k): _attribute(v) for k, v in span.attributes.items()},
        }
        for position, span in enumerate(event.spans)
    ]


async def ingest_events(*, session: AsyncSession, events: Sequence[UsageEvent]) -> UsageBatchResult:
    """Count each event once; see the module docstring. Commits."""
    if not events:
        return UsageBatchResult(accepted=0, duplicates=0)
    unique: dict[str, UsageEvent] = {}
    for event in events:
        unique.setdefault(_clean(event.idempotency_id), event)
    ordered = [unique[key] for key in sorted(unique)]
    insert = insert_for(session)
    await begin_write(session)

    statement = (
        insert(_USAGE)
        .on_conflict_do_nothing(index_elements=["idempotency_id"])
        .returning(_USAGE.c.id, _USAGE.c.idempotency_id)
    )
    result = await session.execute(statement, [_usage_row(event) for event in ordered])
    new_ids = {idempotency_id: usage_id for usage_id, idempotency_id in result.all()}

    spans = [row for key, usage_id in new_ids.items() for row in _span_rows(usage_id, unique[key])]
    if spans:
        await session.execute(insert(_SPANS), spans)

    spend: dict[tuple[str, str], list[Any]] = defaultdict(lambda: [0, Decimal(0)])
    for key in new_ids:
        event = unique[key]
        total = spend[(_clean(event.tenant_id), month_of(event.started_at))]
        total[0] += 1
        total[1] += to_money(event.cost_usd)
    if spend:
        rollup = insert(MonthlySpend.__table__)
        rollup = rollup.on_conflict_do_update(
            index_elements=["tenant_id", "month"],
            set_={
                "requests": MonthlySpend.__table__.c.requests + rollup.excluded.requests,
                "cost_usd": MonthlySpend.__table__.c.cost_usd + rollup.excluded.cost_usd,
            },
        )
        rows = [
            {"tenant_id": tenant, "month": month, "requests": n, "cost_usd": cost}
            for (tenant, month), (n, cost) in sorted(spend.items())
        ]
        await session.execute(rollup, rows)

    highest: dict[str, int] = {}
    for event in events:
        gateway = _clean(event.gateway_id)
        highest[gateway] = max(highest.get(gateway, 0), event.seq)
    cursor = insert(GatewayCursor.__table__)
    cursors = GatewayCursor.__table__.c
    cursor = cursor.on_conflict_do_update(
        index_elements=["gateway_id"],
        set_={"seq": greatest(session, cursors.seq, cursor.excluded.seq), "updated_at": cursor.excluded.updated_at},
    )
    now = dt.datetime.now(dt.UTC)
    await session.execute(cursor, [{"gateway_id": g, "seq": s, "updated_at": now} for g, s in sorted(highest.items())])
    await session.commit()
    return UsageBatchResult(accepted=len(new_ids), duplicates=len(events) - len(new_ids))
