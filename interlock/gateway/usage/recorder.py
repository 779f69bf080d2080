"""``UsageRecorder``: turns each finished request into a usage event and writes it into the spool's journal.

``record`` runs on the event loop, before the last byte of the answer leaves (``Exchange`` calls it then): the
event is encoded and written into the kernel with one ``write`` (``spool.AsyncSpool.append``), so a ``kill -9`` of
the gateway at any later moment cannot lose it, and a power loss only what the last sync interval had not synced.
There is no buffer to lose and no thread hop per request.

Ordering guarantees: ``seq`` is strictly increasing per gateway id, across restarts (the journal remembers the
highest one, and a snapshot's ``ingested_seq`` raises the floor when the spool was lost). The idempotency id is
this process's random run id and the ``seq``, so a resent event is recognised and no two events share an id.

When the journal cannot be written (disk full, directory gone) the event is kept in memory and written again every
sync interval, ``failing`` is true, and the gateway refuses new metered requests (503) until a write succeeds:
an answered request's usage is never dropped silently.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import logging
import os
import time
from collections.abc import Callable
from typing import Any

import orjson

from interlock.gateway.context import RequestContext
from interlock.gateway.tasks import cancel_and_wait
from interlock.gateway.usage.ledger import SpendLedger
from interlock.gateway.usage.metering import Usage
from interlock.gateway.usage.spool import AsyncSpool

__all__ = ["UsageRecorder", "encode_event"]

log = logging.getLogger("interlock.gateway.usage")

_NO_USAGE = Usage()

# (seq, idempotency id, tenant id, key id, route, backend, model, status, usage, cost, started (Unix s),
#  latency s, time to first token s or None, spans: (name, start s, end s, attributes) relative to arrival,
#  trace id: the OpenTelemetry trace's when the request was traced, else the idempotency id)
Row = tuple[
    int, str, str, str, str, str, str, int, Usage, float, float, float, float | None, tuple[tuple[Any, ...], ...], str
]


def _ms(seconds: float) -> float:
    return int(seconds * 1_000_000) / 1000.0  # whole microseconds


def encode_event(gateway_id: str, row: Row, *, spilled: bool = False) -> tuple[int, str, float, bytes]:
    """A row as the spool stores it: ``(seq, tenant_id, cost, JSON of contract.UsageEvent)``; ``spilled``: served
    by the route's spill-over target."""
    (
        seq,
        ident,
        tenant_id,
        key_id,
        route,
        backend,
        model,
        status,
        usage,
        cost,
        started,
        latency,
        ttft,
        spans,
        trace,
    ) = row
    event = {
        "idempotency_id": ident,
        "gateway_id": gateway_id,
        "seq": seq,
        "started_at": dt.datetime.fromtimestamp(started, dt.UTC),
        "tenant_id": tenant_id,
        "key_id": key_id,
        "route": route,
        "backend": backend,
        "model": model,
        "status": status,
        "input_tokens": usage.input_tokens,
        "output_tokens": usage.output_tokens,
        "cached_tokens": usage.cached_tokens,
        "cache_creation_tokens": usage.cache_creation_tokens,
        "usage_estimated": usage.estimated,
        "spilled_over": spilled,
        "cost_usd": cost,
        "latency_ms": _ms(latency),
        "ttft_ms": None if ttft is None else _ms(ttft),
        "trace_id": trace,
        "spans": [
            {"name": name, "start_ms": _ms(start), "duration_ms": _ms(max(0.0, end - start)), "attributes": attrs}
            for name, start, end, attrs in spans
        ],
    }
    return seq, tenant_id, cost, orjson.dumps(event)


def spans_of(ctx: RequestContext, finished: float) -> tuple[tuple[Any, ...], ...]:
    """The request's steps from its timestamps (``time.perf_counter`` relative to arrival)."""
    auth = ctx.auth_s
    spans: list[tuple[Any, ...]] = [
        ("auth", 0.0, auth, {"tenant": ctx.tenant}),
        ("route", auth, ctx.admit_s or auth, {"route": ctx.route_model}),
    ]
    last = ctx.admit_s or auth
    for backend, start, end, refusal in ctx.queued:
        spans.append(("queue", start, end, {"backend": backend, "refused": refusal}))
    for backend, model, start, end, status, kind in ctx.attempts:
        end = end or finished  # an attempt cut short (deadline, client gone) ends with the request
        attributes = {"backend": backend, "model": model, "status": status, "failure": kind}
        spans.append(("upstream", start, end, attributes))
        last = end
    spans.append(("respond", last, finished, {"status": ctx.status}))
    return tuple(spans)


class UsageRecorder:
    """See the module docstring. ``on_write`` runs after each event reached the journal (wakes the sender)."""

    def __init__(
        self,
        spool: AsyncSpool,
        *,
        gateway_id: str,
        ledger: SpendLedger,
        on_write: Callable[[], None] | None = None,
    ) -> None:
        self.spool = spool
        self.gateway_id = gateway_id
        self.ledger = ledger
        self.on_write = on_write
        self.written = 0
        self.last_error: str | None = None
        self._run_id = os.urandom(8).hex()
        self._seq = 0
        self._unwritten: list[tuple[int, bytes]] = []
        self._retry: asyncio.Task[None] | None = None

    @property
    def seq(self) -> int:
        return self._seq

    @property
    def failing(self) -> bool:
        """Events wait in memory because the journal cannot be written."""
        return bool(self._unwritten)

    @property
    def refusing(self) -> str | None:
        """Why new metered requests must be refused now (the spool cannot take their usage), or None."""
        if self._unwritten:
            return self.last_error or "the usage journal cannot be written"
        spool = self.spool
        if spool.full:
            return f"{spool.pending_bytes} bytes of usage events wait for the control plane (cap {spool.max_bytes})"
        return None

    async def start(self, settled_seq: int, last_seq: int) -> None:
        """Continue ``seq`` after the journal's (``last_seq``, from ``AsyncSpool.open``) and the snapshot's, and
        restore the spend the snapshot does not count yet into the ledger."""
        spool = self.spool
        self._seq = max(self._seq, last_seq, settled_seq)
        self.settle(settled_seq)
        unsettled: list[tuple[int, str, float]] = []

        def visit(seq: int, payload: memoryview) -> None:
            try:
                event = orjson.loads(payload)
                unsettled.append((seq, str(event["tenant_id"]), float(event["cost_usd"])))
            except (orjson.JSONDecodeError, KeyError, TypeError, ValueError):
                log.warning("usage journal: event %d is not readable JSON", seq)

        await spool.call(spool.journal.unsettled, self.ledger.settled_seq, visit)
        for seq, tenant_id, cost in unsettled:
            self.ledger.add(seq, tenant_id, cost)

    def settle(self, ingested_seq: int) -> None:
        """A new snapshot counts this gateway's events up to ``ingested_seq``."""
        if ingested_seq <= self.ledger.settled_seq:
            return
        self.ledger.settle(ingested_seq)
        self.spool.settle(ingested_seq)
        if ingested_seq > self._seq:
            log.warning("the control plane has seq %d from this gateway id; continuing above it", ingested_seq)
            self._seq = ingested_seq

    def record(self, ctx: RequestContext, finished: float) -> None:
        """Write the event of a finished request (``finished``: ``time.perf_counter()`` at its end)."""
        principal = ctx.principal
        assert principal is not None
        self._seq = seq = self._seq + 1
        elapsed = finished - ctx.clock
        cost = ctx.cost_usd
        ident = f"{self._run_id}{seq:016x}"
        row: Row = (
            seq,
            ident,
            principal.tenant_id,
            principal.key_id,
            ctx.route_model,
            ctx.backend,
            ctx.upstream_model,
            ctx.status,
            ctx.usage or _NO_USAGE,
            cost,
            time.time() - elapsed,
            elapsed,
            ctx.first_token_s,
            spans_of(ctx, elapsed),
            ctx.trace.trace_id if ctx.trace is not None else ident,
        )
        payload = encode_event(self.gateway_id, row, spilled=ctx.spilled)[3]
        if principal.limits.monthly_budget_usd is not None:
            self.ledger.add(seq, principal.tenant_id, cost)
        if self._unwritten:
            self._unwritten.append((seq, payload))
            return
        try:
            self.spool.append(seq, payload)
        except OSError as exc:
            self._unwritten.append((seq, payload))
            self._failed(exc)
            return
        self.written += 1
        if self.on_write is not None:
            self.on_write()

    def _failed(self, exc: OSError) -> None:
        message = f"cannot write usage events to the journal {self.spool.path}: {exc}"
        if message != self.last_error:
            log.error("%s; they wait in memory and new metered requests are refused", message)
        self.last_error = message
        if self._retry is None or self._retry.done():
            self._retry = asyncio.create_task(self._rewrite(), name="interlock-usage-rewrite")

    async def _rewrite(self) -> None:
        while self._unwritten:
            await asyncio.sleep(self.spool.sync_interval_s)
            self.flush()

    def flush(self) -> None:
        """Write the events that wait in memory, if the journal takes them now."""
        while self._unwritten:
            seq, payload = self._unwritten[0]
            try:
                self.spool.append(seq, payload)
            except OSError as exc:
                self.last_error = f"cannot write usage events to the journal {self.spool.path}: {exc}"
                return
            self._unwritten.pop(0)
            self.written += 1
        log.info("usage events reach the journal again")
        self.last_error = None
        if self.on_write is not None:
            self.on_write()

    @property
    def buffered(self) -> int:
        return len(self._unwritten)

    async def stop(self) -> None:
        """Write what waits in memory (if the journal takes it) and sync."""
        await cancel_and_wait(self._retry)
        self._retry = None
        self.flush()
        await self.spool.sync()
