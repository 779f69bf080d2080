"""Usage ingestion: one transaction per batch, exactly-once by ``idempotency_id``, each event judged on its own.

An event is rejected for good, into ``usage_dead_letters`` with the reason, when it is not a valid ``UsageEvent``,
when its ``gateway_id`` is outside the sending credential's scope, or when its ``seq`` is more than ``seq_window``
above the highest its gateway has had ingested (a forged huge ``seq`` would otherwise make the gateway's snapshot
say every later event is already counted). The others are counted; the answer lists the rejected ones, so the
gateway drops them instead of resending them for ever.

``INSERT … ON CONFLICT (idempotency_id, started_at) DO NOTHING RETURNING`` tells which events are new (the partition
key must be in a partitioned table's unique keys; a resent event carries the same ``started_at``, since the gateway's
journal sends it again as it was; each row carries its spans, ``usage.spans``, one JSON array); only the new rows
add their sums to the hourly, daily and monthly rollups (``interlock.api.crud.rollup``; the per-tenant latency
histogram only for rows that started before the fold's claim, ``interlock.api.crud.fold``), and the gateway's cursor
moves to the batch's highest ``seq``, all in the same transaction. Concurrent resends of one batch are safe because
the UNIQUE constraint decides, not a read-then-write check: on Postgres the second insert waits for the first
transaction and then does nothing. Rows, rollup rows and cursors are written in sorted key order, so concurrent
batches cannot deadlock.

On Postgres the counting is one statement (``_ingest_sql``): the accepted events as one JSON document, the rows
inserted by Postgres with their spans, and from what that insert returned, every rollup (``rollup_ctes``); nothing
per event in Python but the judging. SQLite keeps the row-by-row path (``_count_rows``), which
``tests/api/test_ingest_sql.py`` holds the statement to.
"""

from __future__ import annotations

import datetime as dt
import math
import re
from collections.abc import Sequence
from functools import cache
from typing import Any, cast

import orjson
from pydantic import TypeAdapter, ValidationError
from sqlalchemy import Table, select, text
from sqlalchemy.dialects import postgresql
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession

from interlock.api.crud.dialect import begin_write, dialect_name, driver_connection, greatest, insert_for
from interlock.api.crud.fold import claimed
from interlock.api.crud.partitions import ensure_partitions, months_of
from interlock.api.crud.pgwrite import json_insert
from interlock.api.crud.rollup import Fact, add_to_rollups, rollup_ctes
from interlock.api.schemas import UsageEventIn, UsageEventWire, usage_window
from interlock.contract.controlplane import RejectedEvent, UsageBatchResult, UsageEvent
from interlock.contract.gatewaycred import gateway_id_in_scope
from interlock.db.models import GatewayCursor, Usage, UsageDeadLetter
from interlock.db.types import to_money

__all__ = ["ingest_batch", "ingest_events"]

_DEAD_LETTER_CHARS = 16 * 1024

_USAGE = cast(Table, Usage.__table__)
_CURSORS = cast(Table, GatewayCursor.__table__)


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
        "spilled_over": event.spilled_over,
        "cost_usd": to_money(event.cost_usd),
        "latency_ms": event.latency_ms,
        "ttft_ms": event.ttft_ms,
        "trace_id": _clean(event.trace_id),
        "spans": _spans(event),
    }


def _attribute(value: str | int | float | bool | None) -> str | int | float | bool | None:
    if isinstance(value, float) and not math.isfinite(value):
        return None  # JSON has no NaN or infinity
    return _clean(value) if isinstance(value, str) else value


def _fact(row: dict[str, Any]) -> Fact:
    return Fact(
        started_at=row["started_at"],
        tenant_id=row["tenant_id"],
        model=row["model"],
        route=row["route"],
        backend=row["backend"],
        status=row["status"],
        input_tokens=row["input_tokens"],
        output_tokens=row["output_tokens"],
        cached_tokens=row["cached_tokens"],
        cache_creation_tokens=row["cache_creation_tokens"],
        cost_usd=row["cost_usd"],
        latency_ms=row["latency_ms"],
        ttft_ms=row["ttft_ms"],
        key_id=row["key_id"],
        gateway_id=row["gateway_id"],
    )


def _spans(event: UsageEvent) -> list[dict[str, Any]] | None:
    """``Usage.spans`` of ``event``: its spans as the batch document has them (``attributes`` only where sent), or
    None when it has none."""
    spans = []
    for record in event.spans:
        # a SpanRecord, or a SpanWire dict (interlock.api.schemas.UsageEventWire)
        span = record if isinstance(record, dict) else record.model_dump()
        stored: dict[str, Any] = {
            "name": _clean(span["name"]),
            "start_ms": span["start_ms"],
            "duration_ms": span["duration_ms"],
        }
        if "attributes" in span:
            stored["attributes"] = _attributes(span["attributes"])
        spans.append(stored)
    return spans or None


def _attributes(attributes: dict[str, Any]) -> dict[str, Any]:
    return {_clean(k): _attribute(v) for k, v in attributes.items()}


def _reason(exc: ValidationError) -> str:
    first = exc.errors()[0]
    where = ".".join(str(part) for part in first["loc"]) or "event"
    more = f" (and {exc.error_count() - 1} more)" if exc.error_count() > 1 else ""
    return f"not a valid usage event: {where}: {first['msg']}{more}"[:2000]


def _dead_letter(scope: str, item: Any, reason: str) -> dict[str, Any]:
    if isinstance(item, UsageEvent):
        item = item.model_dump(mode="json")
    fields = item if isinstance(item, dict) else {}
    gateway_id, ident, seq = fields.get("gateway_id"), fields.get("idempotency_id"), fields.get("seq")
    try:
        text = orjson.dumps(item).decode()
    except TypeError:
        text = repr(item)
    return {
        "scope": _clean(scope)[:320],
        "gateway_id": _clean(gateway_id)[:256] if isinstance(gateway_id, str) else None,
        "idempotency_id": _clean(ident)[:128] if isinstance(ident, str) else None,
        "seq": seq if isinstance(seq, int) and not isinstance(seq, bool) and 0 <= seq < 2**63 else None,
        "reason": _clean(reason)[:2000],
        "event": _clean(text)[:_DEAD_LETTER_CHARS],
    }


async def ingest_batch(*, session: AsyncSession, scope: str, items: Sequence[Any], seq_window: int) -> UsageBatchResult:
    """Judge each event of a batch a gateway credential for ``scope`` sent (raw items, or ``UsageEventIn``s when
    the whole batch validated at once); count the good ones once, dead-letter the others; see the module
    docstring. Commits."""
    rejected: list[RejectedEvent] = []
    dead: list[dict[str, Any]] = []

    def reject(index: int, item: Any, reason: str) -> None:
        letter = _dead_letter(scope, item, reason)
        dead.append(letter)
        rejected.append(
            RejectedEvent(index=index, idempotency_id=letter["idempotency_id"], seq=letter["seq"], reason=reason)
        )

    lo, hi = usage_window(dt.datetime.now(dt.UTC))
    valid: list[tuple[int, Any, UsageEvent]] = []
    for index, item in enumerate(items):
        if isinstance(item, UsageEventWire):  # validated already, with the whole batch (the usual case)
            event: UsageEvent = item
        else:
            try:
                event = UsageEventWire.model_validate(item)
            except ValidationError as exc:
                reject(index, item, _reason(_all_errors(item, exc)))
                continue
        when = event.started_at
        if when.tzinfo is None:  # naive is UTC
            event = event.model_copy(update={"started_at": when.replace(tzinfo=dt.UTC)})
        outside = _outside_window(event, lo, hi)
        if outside is not None:
            reject(index, item, outside)
            continue
        if not gateway_id_in_scope(scope, event.gateway_id):
            reject(index, item, f"gateway_id {event.gateway_id!r} is outside this credential's scope {scope!r}")
            continue
        valid.append((index, item, event))
    await _prepare(session, [event for _, _, event in valid])
    await begin_write(session)
    cursors: dict[str, int] = {}
    gateway_ids = sorted({_clean(event.gateway_id) for _, _, event in valid})
    if gateway_ids:
        rows = await session.execute(
            select(GatewayCursor.gateway_id, GatewayCursor.seq).where(GatewayCursor.gateway_id.in_(gateway_ids))
        )
        cursors = {str(gateway_id): int(seq) for gateway_id, seq in rows.all()}
    kept: list[UsageEvent] = []
    for index, item, event in valid:
        ceiling = cursors.get(_clean(event.gateway_id), 0) + seq_window
        if event.seq > ceiling:
            reject(index, item, f"seq {event.seq} is more than {seq_window} above what gateway has sent so far")
            continue
        kept.append(event)
    if dead:
        await session.execute(insert_for(session)(UsageDeadLetter.__table__), dead)
    result = await _count(session, kept) if kept else UsageBatchResult(accepted=0, duplicates=0)
    await session.commit()
    return UsageBatchResult(accepted=result.accepted, duplicates=result.duplicates, rejected=rejected)


def _all_errors(item: Any, wire: ValidationError) -> ValidationError:
    """``UsageEventIn``'s errors for an item ``UsageEventWire`` refused: the same, and the ``started_at`` window's."""
    try:
        UsageEventIn.model_validate(item)
    except ValidationError as exc:
        return exc
    return wire


def _outside_window(event: UsageEvent, lo: dt.datetime, hi: dt.datetime) -> str | None:
    """Why ``event`` is refused for its ``started_at`` (the validator's own words), or None when it is accepted.
    The batch was validated without the window (``UsageEventWire``); this checks it with one clock read."""
    try:
        if lo <= event.started_at <= hi:
            return None
    except OverflowError:
        pass
    try:
        UsageEventIn.model_validate(event.model_dump())
    except ValidationError as exc:
        return _reason(exc)
    return None  # the clock moved on since ``lo``, ``hi``: the validator accepts it now


async def ingest_events(*, session: AsyncSession, events: Sequence[UsageEvent]) -> UsageBatchResult:
    """Count each (already judged) event once; see the module docstring. Commits."""
    if not events:
        return UsageBatchResult(accepted=0, duplicates=0)
    await _prepare(session, events)
    await begin_write(session)
    result = await _count(session, events)
    await session.commit()
    return result


async def _prepare(session: AsyncSession, events: Sequence[UsageEvent]) -> None:
    """The partitions of the events' months (Postgres), created before the ingest transaction starts."""
    if events:
        engine = session.bind
        assert isinstance(engine, AsyncEngine)
        await ensure_partitions(engine, months_of(event.started_at for event in events))


async def _count(session: AsyncSession, events: Sequence[UsageEvent]) -> UsageBatchResult:
    """Insert the events new by ``idempotency_id``, their spans, their spend and the cursors (in the caller's
    writing transaction)."""
    if dialect_name(session) == "postgresql":
        return await _count_postgres(session, events)
    return await _count_rows(session, events)


async def _count_rows(session: AsyncSession, events: Sequence[UsageEvent]) -> UsageBatchResult:
    """``_count`` with a row per event built here and the rollups summed here (SQLite; Postgres too when asked,
    which the tests use to check ``_count_postgres`` against it)."""
    unique: dict[str, UsageEvent] = {}
    for event in events:
        unique.setdefault(_clean(event.idempotency_id), event)
    ordered_keys = sorted(unique)
    insert = insert_for(session)

    postgres = dialect_name(session) == "postgresql"
    claim = await claimed(session)  # held to the commit (interlock.api.crud.fold)
    rows = {key: _usage_row(unique[key]) for key in ordered_keys}
    for row in rows.values():
        row["latency_rolled"] = claim is None or row["started_at"] < claim
    conflict = ["idempotency_id", "started_at"]
    if postgres:
        written = await json_insert(
            session, _USAGE, list(rows.values()), conflict=conflict, returning=("id", "idempotency_id")
        )
    else:
        statement = (
            insert(_USAGE)
            .on_conflict_do_nothing(index_elements=conflict)
            .returning(_USAGE.c.id, _USAGE.c.idempotency_id)
        )
        written = list((await session.execute(statement, list(rows.values()))).all())
    new_ids = {str(idempotency_id): int(usage_id) for usage_id, idempotency_id in written}

    facts = {key: _fact(rows[key]) for key in sorted(new_ids)}
    rolled = [fact for key, fact in facts.items() if rows[key]["latency_rolled"]]
    await add_to_rollups(session, facts.values(), latency_facts=rolled)

    highest: dict[str, int] = {}
    for event in events:
        gateway = _clean(event.gateway_id)
        highest[gateway] = max(highest.get(gateway, 0), event.seq)
    now = dt.datetime.now(dt.UTC)
    cursor_rows = [{"gateway_id": g, "seq": s, "updated_at": now} for g, s in sorted(highest.items())]
    if postgres:
        await json_insert(
            session,
            _CURSORS,
            cursor_rows,
            conflict=["gateway_id"],
            update="seq = GREATEST(gateway_cursors.seq, EXCLUDED.seq), updated_at = EXCLUDED.updated_at",
        )
        if new_ids:  # API processes listening keep the spend version in memory (interlock.api.configwatch)
            await session.execute(text("SELECT pg_notify('interlock_spend', '')"))
        return UsageBatchResult(accepted=len(new_ids), duplicates=len(events) - len(new_ids))
    cursor = insert(_CURSORS)
    cursors = _CURSORS.c
    cursor = cursor.on_conflict_do_update(
        index_elements=["gateway_id"],
        set_={"seq": greatest(session, cursors.seq, cursor.excluded.seq), "updated_at": cursor.excluded.updated_at},
    )
    await session.execute(cursor, cursor_rows)
    return UsageBatchResult(accepted=len(new_ids), duplicates=len(events) - len(new_ids))


# --- Postgres: one statement per batch -----------------------------------------------------------------------

_EVENTS = TypeAdapter(list[UsageEventWire])
_NUL = re.compile(rb"(?<!\\)((?:\\\\)*)\\u0000")
"""A JSON ``\\u0000`` escape (after an even number of backslashes, so not an escaped backslash and ``u0000``)."""
_PG = postgresql.dialect()  # type: ignore[no-untyped-call]
_USAGE_COLUMNS = (
    "idempotency_id", "gateway_id", "seq", "started_at", "tenant_id", "key_id", "route", "backend", "model", "status",
    "input_tokens", "output_tokens", "cached_tokens", "cache_creation_tokens", "usage_estimated", "spilled_over",
    "cost_usd", "latency_ms", "ttft_ms", "trace_id",
)  # fmt: skip
_ROLLUP_COLUMNS = tuple(c for c in _USAGE_COLUMNS if c not in ("idempotency_id", "seq", "usage_estimated",
                                                                  "spilled_over", "trace_id"))  # fmt: skip
"""What the rollups read of a new row (``rollup_ctes``; ``Fact``'s fields)."""
_NANO = "(cost_usd * 1000000000)"
_MONEY = (
    f"(CASE WHEN {_NANO} - trunc({_NANO}) = 0.5 AND mod(trunc({_NANO}), 2) = 0 THEN trunc({_NANO}) "
    f"ELSE round({_NANO}) END / 1000000000)"
)
"""``to_money`` in SQL: the JSON number (a float's shortest repr, as ``str(float)`` gives it) rounded to the
nano-dollar half to even, as ``Decimal.quantize`` does (Postgres's own rounding goes half away from zero)."""


_ROLLED = "coalesce(started_at < $2::timestamptz, true)"
"""``usage.latency_rolled``: the row started before the fold's claim ($2), or nothing is folded ($2 NULL): ingest
adds it to ``tenant_latency_daily`` itself (``interlock.api.crud.fold``)."""


def _type(table: Table, column: str) -> str:
    return str(table.c[column].type.compile(dialect=_PG))


@cache
def _ingest_sql() -> str:
    """The statement that counts a batch: the events (a JSON array, unique by ``idempotency_id``) taken apart by
    Postgres, inserted where new (each with its spans, the event's JSON array as it came, in ``usage.spans``), and
    only what was inserted (``RETURNING``) goes on to the rollups."""
    record = ", ".join(f"{c} {'numeric' if c == 'cost_usd' else _type(_USAGE, c)}" for c in _USAGE_COLUMNS)
    names = ", ".join((*_USAGE_COLUMNS, "latency_rolled"))
    values = ", ".join((*(_MONEY if c == "cost_usd" else c for c in _USAGE_COLUMNS), _ROLLED))
    source = f"src AS (SELECT * FROM json_to_recordset($1::json) AS r({record}, spans json))"  # noqa: S608
    rows = (
        f"new AS (INSERT INTO usage ({names}, spans) "  # noqa: S608
        f"SELECT {values}, CASE WHEN json_array_length(spans) > 0 THEN spans END FROM src "
        'ORDER BY idempotency_id COLLATE "C" '
        f"ON CONFLICT (idempotency_id, started_at) DO NOTHING RETURNING {', '.join(_ROLLUP_COLUMNS)}, latency_rolled)"
    )
    items = [source, rows, *rollup_ctes("new", latency_rolled_only=True)]
    return "WITH " + ",\n".join(items) + "\nSELECT count(*) FROM new"


def batch_document(events: Sequence[UsageEvent]) -> str:
    """The events as one JSON array for ``_ingest_sql``, serialised by pydantic (in Rust): non-finite attribute
    floats become null, and NUL characters U+FFFD (Postgres text cannot hold them)."""
    wire = [e if isinstance(e, UsageEventWire) else UsageEventWire.model_validate(e.model_dump()) for e in events]
    document = _EVENTS.dump_json(wire)
    if b"\\u0000" in document:
        document = _NUL.sub("\\1\ufffd".encode(), document)
    return document.decode()


async def _count_postgres(session: AsyncSession, events: Sequence[UsageEvent]) -> UsageBatchResult:
    """``_count`` on Postgres: one statement for the rows (with their spans) and rollups (``_ingest_sql``), one for the
    cursors; nothing per event in Python but picking the first of each ``idempotency_id`` and each gateway's
    highest ``seq``."""
    unique: dict[str, UsageEvent] = {}
    highest: dict[str, int] = {}
    for event in events:
        unique.setdefault(_clean(event.idempotency_id), event)
        gateway = _clean(event.gateway_id)
        if event.seq > highest.get(gateway, 0):
            highest[gateway] = event.seq
    document = batch_document(list(unique.values()))
    driver = await driver_connection(session)
    claim = await claimed(session)  # held to the commit; through the session, so the adapter begins its transaction
    accepted = int(await driver.fetchval(_ingest_sql(), document, claim))
    now = dt.datetime.now(dt.UTC)
    await json_insert(
        session,
        _CURSORS,
        [{"gateway_id": g, "seq": s, "updated_at": now} for g, s in sorted(highest.items())],
        conflict=["gateway_id"],
        update="seq = GREATEST(gateway_cursors.seq, EXCLUDED.seq), updated_at = EXCLUDED.updated_at",
    )
    if accepted:  # API processes listening keep the spend version in memory (interlock.api.configwatch)
        await driver.execute("SELECT pg_notify('interlock_spend', '')")
    return UsageBatchResult(accepted=accepted, duplicates=len(events) - accepted)
