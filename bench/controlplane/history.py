"""Synthetic history for the control-plane benchmark, loaded straight into Postgres with COPY.

10,000 tenants (a fifth with a monthly budget), three keys each, and 10,000,000 times ``scale`` usage rows over the
last 365 days: tenants drawn with Zipf weights (1/rank: a few big tenants, a long tail), six models on three
backends, four routes, 3 % errors, log-normal latency (median ≈ 500 ms) and time to first token for 80 % of them.
The rollups and monthly spend are then built from the rows in SQL, as the migration does for existing data.
"""

from __future__ import annotations

import bisect
import datetime as dt
import hashlib
import itertools
import random
import secrets
import time
import uuid
from decimal import Decimal
from typing import Any

import asyncpg

from interlock.db.histogram import bin_sql
from interlock.db.rollups import ROLLUPS

__all__ = ["History", "load_history", "loaded_history"]

FULL_ROWS = 10_000_000
FULL_TENANTS = 10_000
KEYS_PER_TENANT = 3
MODELS = [
    ("gpt-4o-mini", "openai", 0.15, 0.6),
    ("gpt-4o", "openai", 2.5, 10.0),
    ("claude-3-5-haiku", "anthropic", 0.8, 4.0),
    ("claude-sonnet-4", "anthropic", 3.0, 15.0),
    ("llama-3.1-8b", "vllm", 0.05, 0.05),
    ("llama-3.1-70b", "vllm", 0.4, 0.4),
]
ROUTES = ["chat-default", "chat-premium", "embeddings", "batch"]
HISTORY_GATEWAYS = 50


class History:
    """What was loaded: the tenants (heaviest first), their keys, and the time span of the rows."""

    def __init__(self, tenants: list[str], rows: int, start: dt.datetime, end: dt.datetime) -> None:
        self.tenants = tenants
        self.rows = rows
        self.start = start
        self.end = end


def _bin_sql(column: str) -> str:
    return f"(CASE WHEN {column} >= 1 THEN least(79, 1 + floor(4 * ln({column}) / ln(2))::int) ELSE 0 END)"


def _rollup_sql(now: dt.datetime) -> list[str]:
    sums = (
        "count(*), count(*) FILTER (WHERE status >= 400), sum(input_tokens), sum(output_tokens), sum(cached_tokens), "
        "sum(cache_creation_tokens), sum(cost_usd)"
    )
    # Every rollup's rows are inserted in bucket order (ORDER BY the bucket), as ingest creates them over time: the
    # rows of the current hour, day and month then lie together at the end of each table, as on a database that
    # grew by ingest. Grouped without an order, they lay scattered over the whole table (today's 51,000
    # usage_daily rows on 10,700 of its 125,700 pages), and every ingested batch read pages all over it.
    statements = []
    for grain, table in (("hour", "hourly"), ("day", "daily")):
        bucket = f"date_trunc('{grain}', started_at AT TIME ZONE 'UTC') AT TIME ZONE 'UTC'"
        statements.append(
            f"INSERT INTO usage_{table} SELECT {bucket}, tenant_id, model, route, backend, {sums} FROM usage "
            "GROUP BY 1, 2, 3, 4, 5 ORDER BY 1"
        )
        bins = ", ".join(f"count(*) FILTER (WHERE lb = {k})" for k in range(80))
        ttft = ", ".join(f"count(*) FILTER (WHERE tb = {k})" for k in range(80))
        statements.append(
            f"INSERT INTO fleet_{table} SELECT bucket, model, route, backend, {sums}, {bins}, {ttft} FROM ("
            f"SELECT {bucket} AS bucket, model, route, backend, status, input_tokens, output_tokens, cached_tokens, "
            f"cache_creation_tokens, cost_usd, {_bin_sql('latency_ms')} AS lb, "
            f"CASE WHEN ttft_ms IS NULL THEN NULL ELSE {_bin_sql('ttft_ms')} END AS tb FROM usage) AS u "
            "GROUP BY 1, 2, 3, 4 ORDER BY 1"
        )
    statements += _derived_sql()
    day = "date_trunc('day', started_at AT TIME ZONE 'UTC') AT TIME ZONE 'UTC'"
    statements.append(  # the sparse per-tenant latency histogram, as migration 7a3e5c1d9b20 builds it
        "INSERT INTO tenant_latency_daily (tenant_id, bucket, model, route, backend, bin, latency, ttft) "
        f"SELECT tenant_id, {day}, model, route, backend, v.bin, sum(v.l)::int, sum(v.t)::int FROM usage "
        f"CROSS JOIN LATERAL (VALUES ({bin_sql('latency_ms')}, 1, 0), "
        f"(CASE WHEN ttft_ms IS NULL THEN NULL ELSE {bin_sql('ttft_ms')} END, 0, 1)) AS v(bin, l, t) "
        "WHERE v.bin IS NOT NULL GROUP BY 1, 2, 3, 4, 5, 6 ORDER BY 2"
    )
    statements.append(
        "INSERT INTO gateway_cursors SELECT gateway_id, max(seq), now() FROM usage GROUP BY 1"
    )  # fmt: skip
    statements.append(  # every row loaded is in tenant_latency_daily already: none is for the fold to add
        "UPDATE rollup_watermarks SET claimed_until = w, folded_until = w FROM (SELECT greatest(folded_until, "
        "(SELECT max(started_at) + interval '1 microsecond' FROM usage)) AS w FROM rollup_watermarks) AS loaded"
    )
    return statements


def _derived_sql() -> list[str]:
    """The narrower rollups of ``interlock.db.rollups.ROLLUPS`` summed from the wider ones, as the migration does."""
    sources = {"hour": "fleet_hourly", "day": "fleet_daily"}
    statements = []
    for rollup in ROLLUPS:
        name = rollup.table.name
        if name in ("usage_hourly", "usage_daily", "fleet_hourly", "fleet_daily"):
            continue
        keys = ", ".join(rollup.dimensions)
        bucket = "bucket"
        if rollup.histograms:
            source = sources[rollup.grain]
        elif rollup.grain == "day":
            source = "usage_daily"
        else:
            source, bucket = "tenant_daily", "date_trunc('month', bucket AT TIME ZONE 'UTC') AT TIME ZONE 'UTC'"
        summed = [c.name for c in rollup.table.c if c.name not in ("bucket", *rollup.dimensions)]
        statements.append(
            f"INSERT INTO {name} (bucket, {keys}, {', '.join(summed)}) SELECT {bucket}, {keys}, "
            f"{', '.join(f'sum({c})' for c in summed)} FROM {source} GROUP BY {bucket}, {keys} ORDER BY 1"
        )
    return statements


def _tenant_rows(count: int, now: dt.datetime, rng: random.Random) -> tuple[list[tuple[Any, ...]], ...]:
    tenants, quotas, keys = [], [], []
    for i in range(count):
        tenant_id = str(uuid.UUID(int=rng.getrandbits(128), version=4))
        tenants.append((tenant_id, f"tenant-{i:05d}", now, now))
        budget = Decimal(rng.choice([50, 100, 500, 1000])) if i % 5 == 0 else None
        quotas.append((tenant_id, rng.choice([0, 600, 6000]), 0, 0, budget, now))
        for k in range(KEYS_PER_TENANT):
            secret = f"sk-il-{secrets.token_urlsafe(32)}"
            key_id = str(uuid.UUID(int=rng.getrandbits(128), version=4))
            keys.append((key_id, tenant_id, f"key-{k}", secret[6:14], hashlib.sha256(secret.encode()).hexdigest(),
                         now, None, None))  # fmt: skip
    return tenants, quotas, keys


def _usage_rows(count: int, tenants: list[str], keys: dict[str, list[str]], now: dt.datetime, seed: int):  # type: ignore[no-untyped-def]
    """Rows in ``started_at`` order per chunk (yielded in chunks of 50,000)."""
    rng = random.Random(seed)
    weights = list(itertools.accumulate(1.0 / (rank + 1) for rank in range(len(tenants))))
    total = weights[-1]
    span = 365 * 86400.0
    start = now - dt.timedelta(days=365)
    chunk: list[tuple[Any, ...]] = []
    for i in range(count):
        tenant = tenants[bisect.bisect_left(weights, rng.random() * total)]
        model, backend, price_in, price_out = MODELS[min(5, int(rng.expovariate(0.6)))]
        input_tokens = rng.randint(50, 2000)
        output_tokens = rng.randint(10, 800)
        cost = Decimal(round((input_tokens * price_in + output_tokens * price_out) / 1e6, 9))
        draw = rng.random()
        status = 200 if draw < 0.97 else (429 if draw < 0.99 else 500)
        streamed = rng.random() < 0.8
        chunk.append((
            f"h{i:015x}", f"history-gw-{i % HISTORY_GATEWAYS}", i // HISTORY_GATEWAYS + 1,
            start + dt.timedelta(seconds=rng.random() * span), tenant, rng.choice(keys[tenant]),
            ROUTES[min(3, int(rng.expovariate(1.0)))], backend, model, status, input_tokens, output_tokens, 0, 0,
            False, cost, rng.lognormvariate(6.2, 0.8), rng.lognormvariate(5.0, 0.7) if streamed else None,
            f"{rng.getrandbits(128):032x}",
        ))  # fmt: skip
        if len(chunk) >= 50_000:
            yield chunk
            chunk = []
    if chunk:
        yield chunk


USAGE_COLUMNS = [
    "idempotency_id", "gateway_id", "seq", "started_at", "tenant_id", "key_id", "route", "backend", "model",
    "status", "input_tokens", "output_tokens", "cached_tokens", "cache_creation_tokens", "usage_estimated",
    "cost_usd", "latency_ms", "ttft_ms", "trace_id",
]  # fmt: skip


async def load_history(dsn: str, *, scale: float, tenants: int, log: Any) -> History:
    """Load the history into the (migrated, empty) database at ``dsn``; ``log(message)`` reports progress."""
    rng = random.Random(20261206)
    now = dt.datetime.now(dt.UTC).replace(microsecond=0)
    connection = await asyncpg.connect(dsn)
    try:
        began = time.perf_counter()
        tenant_rows, quota_rows, key_rows = _tenant_rows(tenants, now, rng)
        await connection.copy_records_to_table(
            "tenants", records=tenant_rows, columns=["id", "name", "created_at", "updated_at"]
        )
        await connection.copy_records_to_table(
            "quotas", records=quota_rows,
            columns=["tenant_id", "requests_per_minute", "tokens_per_minute", "max_concurrency",
                     "monthly_budget_usd", "updated_at"],
        )  # fmt: skip
        await connection.copy_records_to_table(
            "api_keys", records=key_rows,
            columns=["id", "tenant_id", "name", "prefix", "sha256", "created_at", "expires_at", "revoked_at"],
        )  # fmt: skip
        log(f"{tenants:,} tenants, {len(key_rows):,} keys in {time.perf_counter() - began:.1f} s")
        ids = [row[0] for row in tenant_rows]
        keys: dict[str, list[str]] = {}
        for row in key_rows:
            keys.setdefault(row[1], []).append(row[0])
        month = (now - dt.timedelta(days=366)).replace(day=1, hour=0, minute=0, second=0)
        while month <= now + dt.timedelta(days=32):
            upper = (month + dt.timedelta(days=32)).replace(day=1)
            for table in ("usage", "spans"):
                await connection.execute(
                    f'CREATE TABLE IF NOT EXISTS "{table}_p{month:%Y%m}" PARTITION OF {table} '
                    f"FOR VALUES FROM ('{month.isoformat()}') TO ('{upper.isoformat()}')"
                )
            month = upper
        rows = round(FULL_ROWS * scale)
        began = time.perf_counter()
        loaded = 0
        for chunk in _usage_rows(rows, ids, keys, now, seed=7):
            await connection.copy_records_to_table("usage", records=chunk, columns=USAGE_COLUMNS)
            loaded += len(chunk)
            if loaded % 1_000_000 < len(chunk):
                log(f"{loaded:,} usage rows ({time.perf_counter() - began:.0f} s)")
        log(f"{rows:,} usage rows in {time.perf_counter() - began:.1f} s")
        began = time.perf_counter()
        for statement in _rollup_sql(now):
            await connection.execute(statement)
        await connection.execute("ANALYZE")
        log(f"rollups and statistics in {time.perf_counter() - began:.1f} s")
    finally:
        await connection.close()
    return History(ids, rows, now - dt.timedelta(days=365), now)


async def loaded_history(dsn: str) -> History:
    """What an earlier run loaded into the database at ``dsn`` (kept with ``--keep``)."""
    connection = await asyncpg.connect(dsn)
    try:
        tenants = [str(r[0]) for r in await connection.fetch("SELECT id FROM tenants WHERE name LIKE 'tenant-%' "
                                                               "ORDER BY name")]  # fmt: skip
        row = await connection.fetchrow(
            "SELECT count(*), min(started_at), max(started_at) FROM usage WHERE gateway_id LIKE 'history-gw-%'"
        )
    finally:
        await connection.close()
    return History(tenants, int(row[0]), row[1], row[2])
