"""Sustained ingest through ``POST /v1/gateway/usage`` into Postgres, exactly once: ``senders`` gateways send
pre-encoded batches as fast as the API answers; then the first batches are sent again (all must be duplicates)
and the stored rows are counted. Last, the run's rows are folded into ``tenant_latency_daily``
(``interlock.api.crud.fold``), which the API does a few minutes after rows start, and that is timed too."""

from __future__ import annotations

import asyncio
import datetime as dt
import os
import random
import secrets
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import asyncpg
import httpx
import orjson

from bench.controlplane.history import MODELS, ROUTES
from bench.controlplane.server import SIGNING_KEY, ApiProcess
from interlock.api.crud.fold import FOLD_DELAY, fold_tenant_latency
from interlock.contract.gatewaycred import mint_gateway_credential
from interlock.db.session import create_engine

__all__ = ["IngestResult", "run_ingest"]

_TICK = os.sysconf("SC_CLK_TCK")
PACE = 10_000
"""Events per second the run's ``started_at`` stamps assume (the target rate)."""
_LEAD = dt.timedelta(minutes=2)


@dataclass
class IngestResult:
    events: int
    seconds: float
    api_cpu_s: float
    duplicates_on_resend: int
    stored: int
    postgres_cpu_s: float = 0.0
    fold_seconds: float = 0.0
    fold_postgres_cpu_s: float = 0.0

    @property
    def rate(self) -> float:
        return self.events / self.seconds

    @property
    def rate_with_fold(self) -> float:
        """Events per second counting the fold of the run's rows into ``tenant_latency_daily`` as if nothing else
        ran meanwhile (the API folds every ``rollup_fold_interval_s`` beside ingest, on the same server)."""
        return self.events / (self.seconds + self.fold_seconds)


def _event(
    gateway: str, seq: int, tenant: str, spans: int, rng: random.Random, run_id: str = "", at: dt.datetime | None = None
) -> dict[str, Any]:
    """One event as a gateway sends it: ``idempotency_id`` as ``interlock.gateway.usage.recorder`` makes it (the
    gateway process's random run id, then ``seq`` in hex: ascending per gateway), a random trace id (every
    request traced: the trace index's worst case)."""
    model, backend, _, _ = rng.choice(MODELS)
    return {
        "idempotency_id": f"{run_id or secrets.token_hex(8)}{seq:016x}", "gateway_id": gateway, "seq": seq,
        "started_at": (at or dt.datetime.now(dt.UTC)).isoformat(), "tenant_id": tenant, "key_id": "bench-key",
        "route": rng.choice(ROUTES), "backend": backend, "model": model, "status": 200,
        "input_tokens": rng.randint(50, 2000), "output_tokens": rng.randint(10, 800), "cached_tokens": 0,
        "cost_usd": 0.000123456, "latency_ms": rng.lognormvariate(6.2, 0.8), "ttft_ms": rng.lognormvariate(5, 0.7),
        "trace_id": secrets.token_hex(16),
        "spans": [
            {"name": name, "start_ms": float(j), "duration_ms": 1.5, "attributes": {"backend": backend, "n": j}}
            for j, name in zip(range(spans), ("auth", "route", "upstream", "respond"), strict=False)
        ],
    }  # fmt: skip


async def run_ingest(
    api: ApiProcess, dsn: str, tenants: list[str], *, events: int, batch: int, senders: int, spans: int
) -> IngestResult:
    rng = random.Random(1)
    per_sender = events // senders
    queues: list[list[bytes]] = []
    run = secrets.token_hex(3)  # gateways of their own, so a kept database can be measured again
    # Each event starts when a gateway sending PACE events/s in all would have sent it, from a little ahead on (and
    # after what is folded already): as in a fleet, rows arrive as they start, and the API's folds (every
    # rollup_fold_interval_s) find them unmarked, not late. Stamped all at once, a long run's last events would be
    # minutes old when sent, and ingest would add them to the rollup itself.
    first = max(dt.datetime.now(dt.UTC) + _LEAD, await _folded_until(dsn))
    latest = first + dt.timedelta(seconds=(per_sender - 1) * senders / PACE)
    for s in range(senders):
        gateway, run_id = f"bench/gw/pod-{run}-{s}", secrets.token_hex(8)
        bodies = []
        for start in range(0, per_sender, batch):
            count = min(batch, per_sender - start)
            chunk = [
                _event(gateway, start + i + 1, rng.choice(tenants[:2000]), spans, rng, run_id,
                       first + dt.timedelta(seconds=(start + i) * senders / PACE))
                for i in range(count)
            ]  # fmt: skip
            bodies.append(orjson.dumps({"events": chunk}))
        queues.append(bodies)
    credential = mint_gateway_credential(SIGNING_KEY.encode(), "bench/gw")
    headers = {"authorization": f"Bearer {credential}", "content-type": "application/json"}
    async with httpx.AsyncClient(base_url=api.url, headers=headers, timeout=120) as client:
        warm = orjson.dumps({"events": [_event("bench/gw/warm", i + 1, tenants[0], spans, rng) for i in range(200)]})
        (await client.post("/v1/gateway/usage", content=warm)).raise_for_status()

        async def send(bodies: list[bytes]) -> int:
            accepted = 0
            for body in bodies:
                response = await client.post("/v1/gateway/usage", content=body)
                response.raise_for_status()
                accepted += int(response.json()["accepted"])
            return accepted

        pg0 = await _postgres_cpu(dsn)
        cpu0, began = api.cpu_seconds(), time.perf_counter()
        accepted = sum(await asyncio.gather(*(send(q) for q in queues)))
        seconds, cpu = time.perf_counter() - began, api.cpu_seconds() - cpu0
        pg1 = await _postgres_cpu(dsn)
        postgres_cpu = sum(t - pg0.get(pid, 0.0) for pid, t in pg1.items())
        sent = per_sender * senders
        if accepted != sent:
            raise SystemExit(f"ingest: {accepted} accepted of {sent}")
        duplicates = 0
        for body in queues[0][:5]:
            response = await client.post("/v1/gateway/usage", content=body)
            response.raise_for_status()
            result = response.json()
            if result["accepted"]:
                raise SystemExit("ingest: a resent batch was counted again")
            duplicates += int(result["duplicates"])
    connection = await asyncpg.connect(dsn)
    try:
        stored = int(
            await connection.fetchval("SELECT count(*) FROM usage WHERE gateway_id LIKE $1", f"bench/gw/pod-{run}-%")
        )
    finally:
        await connection.close()
    if stored != sent:
        raise SystemExit(f"ingest: {stored} rows stored of {sent} sent")
    fold_seconds, fold_cpu = await _fold(dsn, latest)
    return IngestResult(sent, seconds, cpu, duplicates, stored, postgres_cpu, fold_seconds, fold_cpu)


async def _folded_until(dsn: str) -> dt.datetime:
    connection = await asyncpg.connect(dsn)
    try:
        folded: dt.datetime = await connection.fetchval("SELECT max(folded_until) FROM rollup_watermarks")
    finally:
        await connection.close()
    return folded


async def _fold(dsn: str, latest: dt.datetime) -> tuple[float, float]:
    """Fold what the API has not folded yet of the run's rows into ``tenant_latency_daily``, as its maintenance
    would a few minutes later (up to the minute after the latest of them): the seconds it took and Postgres's CPU
    seconds. (The API's own folds during the run are in the run's Postgres CPU.)"""
    engine = create_engine(dsn.replace("postgresql://", "postgresql+asyncpg://", 1))
    try:
        pg0 = await _postgres_cpu(dsn)
        began = time.perf_counter()
        await fold_tenant_latency(engine, now=latest + FOLD_DELAY + dt.timedelta(minutes=1))
        seconds = time.perf_counter() - began
        pg1 = await _postgres_cpu(dsn)
    finally:
        await engine.dispose()
    return seconds, sum(t - pg0.get(pid, 0.0) for pid, t in pg1.items())


async def _postgres_cpu(dsn: str) -> dict[int, float]:
    """CPU seconds so far of each Postgres process serving this database, and of the server's own background
    processes (WAL writer, checkpointer, background writer, autovacuum), from ``/proc`` (the server must run on
    this machine; ``{}`` when it does not). Other databases' backends are left out."""
    connection = await asyncpg.connect(dsn)
    try:
        pids = [
            int(pid)
            for (pid,) in await connection.fetch(
                "SELECT pid FROM pg_stat_activity WHERE datname = current_database() AND pid <> pg_backend_pid() "
                "OR backend_type <> 'client backend' AND datname IS NULL"
            )
        ]
    finally:
        await connection.close()
    return _cpu_of(pids)


def _cpu_of(pids: list[int]) -> dict[int, float]:
    times: dict[int, float] = {}
    for pid in pids:
        try:
            fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        times[pid] = (int(fields[11]) + int(fields[12])) / _TICK
    return times
