"""``UsageRecorder``: turns each finished request into a usage event and writes events to the spool in groups.

On the event loop, a request costs a ``seq`` and one tuple appended to a list; the JSON encoding and the SQLite
transaction run on the spool's thread, every ``flush_interval_s`` at most, for all the events gathered meanwhile
(group commit). Nothing on the request path waits for the disk.

Ordering guarantees: ``seq`` is strictly increasing per gateway id, across restarts (the spool remembers the
highest one, and a snapshot's ``ingested_seq`` raises the floor when the spool was lost). The idempotency id is
this process's random run id and the ``seq``, so a resent event is recognised and no two events share an id.
A graceful stop flushes what is buffered; a process killed with ``kill -9`` loses the events of at most the last
flush interval (their responses had been sent), never a committed group.
"""

from __future__ import annotations

import asyncio
import contextlib
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
from interlock.gateway.usage.spool import AsyncSpool, Spool

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


def encode_event(gateway_id: str, row: Row) -> tuple[int, str, float, bytes]:
    """A row as the spool stores it: ``(seq, tenant_id, cost, JSON of contract.UsageEvent)``."""
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


def _write(spool: Spool, gateway_id: str, rows: list[Row]) -> None:
    spool.append([encode_event(gateway_id, row) for row in rows])


def spans_of(ctx: RequestContext, finished: float) -> tuple[tuple[Any, ...], ...]:
    """The request's steps from its timestamps (``time.perf_counter`` relative to arrival)."""
    auth = ctx.auth_s
    spans: list[tuple[Any, ...]] = [
        ("auth", 0.0, auth, {"tenant": ctx.tenant}),
        ("route", auth, ctx.admit_s or auth, {"route": ctx.route_model}),
    ]
    last = ctx.admit_s or auth
    for backend, model, start, end, status, kind in ctx.attempts:
        end = end or finished  # an attempt cut short (deadline, client gone) ends with the request
        attributes = {"backend": backend, "model": model, "status": status, "failure": kind}
        spans.append(("upstream", start, end, attributes))
        last = end
    spans.append(("respond", last, finished, {"status": ctx.status}))
    return tuple(spans)


class UsageRecorder:
    """See the module docstring. ``on_commit`` runs on the loop after each group is on disk."""

    def __init__(
        self,
        spool: AsyncSpool,
        *,
        gateway_id: str,
        ledger: SpendLedger,
        flush_interval_s: float = 0.05,
        batch_size: int = 500,
        on_commit: Callable[[], None] | None = None,
    ) -> None:
        self.spool = spool
        self.gateway_id = gateway_id
        self.ledger = ledger
        self.flush_interval_s = flush_interval_s
        self.batch_size = batch_size
        self.on_commit = on_commit
        self.committed = 0
        self.last_error: str | None = None
        self._run_id = os.urandom(8).hex()
        self._seq = 0
        self._buffer: list[Row] = []
        self._wake = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        self._pruning: asyncio.Task[int] | None = None

    @property
    def seq(self) -> int:
        return self._seq

    async def start(self, settled_seq: int) -> None:
        """Continue the spool's ``seq``, restore the unsettled spend into the ledger, start group commits."""
        spool = self.spool
        last = await spool.call(lambda: spool.spool.last_seq())
        self._seq = max(self._seq, last, settled_seq)
        self.ledger.settle(settled_seq)
        for seq, tenant_id, cost in await spool.call(lambda: spool.spool.unsettled(settled_seq)):
            self.ledger.add(seq, tenant_id, cost)
        self._task = asyncio.create_task(self._flush_loop(), name="interlock-usage-flush")

    def settle(self, ingested_seq: int) -> None:
        """A new snapshot counts this gateway's events up to ``ingested_seq``."""
        if ingested_seq <= self.ledger.settled_seq:
            return
        self.ledger.settle(ingested_seq)
        if ingested_seq > self._seq:
            log.warning("the control plane has seq %d from this gateway id; continuing above it", ingested_seq)
            self._seq = ingested_seq
        if self._pruning is None or self._pruning.done():
            spool = self.spool
            self._pruning = asyncio.create_task(spool.call(lambda: spool.spool.prune(ingested_seq)))

    def record(self, ctx: RequestContext, finished: float) -> None:
        """Queue the event of a finished request (``finished``: ``time.perf_counter()`` at its end)."""
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
        if not self._buffer:
            self._wake.set()
        self._buffer.append(row)
        if principal.limits.monthly_budget_usd is not None:
            self.ledger.add(seq, principal.tenant_id, cost)

    async def _flush_loop(self) -> None:
        while True:
            await self._wake.wait()
            await asyncio.sleep(self.flush_interval_s)
            self._wake.clear()
            await self.flush()
            if self._buffer:
                self._wake.set()

    async def flush(self) -> None:
        """Write the buffered events to the spool (a group per ``batch_size``)."""
        while self._buffer:
            rows = self._buffer[: self.batch_size]
            del self._buffer[: self.batch_size]
            spool = self.spool
            try:
                await spool.call(_write, spool.spool, self.gateway_id, rows)
            except Exception as exc:  # disk full, file removed: keep the events and try again
                self._buffer[:0] = rows
                message = f"{type(exc).__name__}: {exc}"
                if message != self.last_error:
                    log.error("cannot write usage events to the spool %s: %s", spool.path, message)
                self.last_error = message
                return
            self.last_error = None
            self.committed += len(rows)
            if self.on_commit is not None:
                self.on_commit()

    @property
    def buffered(self) -> int:
        return len(self._buffer)

    async def stop(self) -> None:
        """Stop the group commits and write what is buffered."""
        await cancel_and_wait(self._task)
        self._task = None
        if self._pruning is not None:
            with contextlib.suppress(Exception):
                await self._pruning
        await self.flush()
