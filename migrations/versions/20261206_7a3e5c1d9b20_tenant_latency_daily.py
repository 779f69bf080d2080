"""A sparse per-tenant daily latency histogram, ``tenant_latency_daily``: one row per (tenant, UTC day, model, route,
backend, histogram bin) with how many requests' latency (``latency``) and time to first token (``ttft``) fell in the
bin, where either is nonzero. What a tenant's latency percentiles over whole days read instead of its raw rows.

Built from the raw ``usage`` rows still kept (days whose rows retention has dropped stay without per-tenant
percentiles): on Postgres one ``INSERT … SELECT … GROUP BY`` over every kept row, so it takes time proportional to
the rows kept (10 million rows: see bench/RESULTS.md); on SQLite summed here. The table is read through its primary
key, which on Postgres includes the counts: reads are index-only once a VACUUM (autovacuum, or one run after the
upgrade) has marked the new pages all-visible.

Revision ID: 7a3e5c1d9b20
Revises: 6d2f1b3e8c54
Create Date: 2026-12-06 13:00:00.000000
"""

# ruff: noqa: S608  (SQL built from this file's constants only)

from __future__ import annotations

import bisect
from collections.abc import Sequence
from typing import Any

import sqlalchemy as sa
from alembic import op

revision: str = "7a3e5c1d9b20"
down_revision: str | Sequence[str] | None = "6d2f1b3e8c54"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

# Frozen copy of interlock.db.histogram as of this revision.
BINS = 80
BOUNDS = tuple(2.0 ** (k / 4) for k in range(BINS - 1))
_BOUNDS_SQL = "'{" + ",".join(repr(b) for b in BOUNDS) + "}'::float8[]"
KEYS = ("tenant_id", "bucket", "model", "route", "backend", "bin")
PAGE = 10_000


def _bin(ms: float) -> int:
    if not ms >= 1.0:
        return 0
    return bisect.bisect_right(BOUNDS, ms)


def _fill_postgres() -> None:
    op.execute("SET LOCAL work_mem = '256MB'")  # one grouping of every kept row: hash it in memory, not on disk
    day = "date_trunc('day', u.started_at AT TIME ZONE 'UTC') AT TIME ZONE 'UTC'"
    op.execute(
        f"INSERT INTO tenant_latency_daily ({', '.join(KEYS)}, latency, ttft) "
        f"SELECT u.tenant_id, {day}, u.model, u.route, u.backend, v.bin, sum(v.l)::int, sum(v.t)::int FROM usage u "
        f"CROSS JOIN LATERAL (VALUES (width_bucket(u.latency_ms, {_BOUNDS_SQL}), 1, 0), "
        f"(CASE WHEN u.ttft_ms IS NULL THEN NULL ELSE width_bucket(u.ttft_ms, {_BOUNDS_SQL}) END, 0, 1)) "
        "AS v(bin, l, t) WHERE v.bin IS NOT NULL GROUP BY 1, 2, 3, 4, 5, 6"
    )


def _fill_sqlite(connection: sa.Connection) -> None:
    sums: dict[tuple[Any, ...], list[int]] = {}
    result = connection.execute(
        sa.text(
            "SELECT tenant_id, strftime('%Y-%m-%d 00:00:00.000000', started_at), model, route, backend, latency_ms, "
            "ttft_ms FROM usage"
        )
    )
    for tenant_id, day, model, route, backend, latency_ms, ttft_ms in result:
        key = (tenant_id, day, model, route, backend)
        sums.setdefault((*key, _bin(float(latency_ms))), [0, 0])[0] += 1
        if ttft_ms is not None:
            sums.setdefault((*key, _bin(float(ttft_ms))), [0, 0])[1] += 1
    insert = sa.text(
        f"INSERT INTO tenant_latency_daily ({', '.join(KEYS)}, latency, ttft) "
        "VALUES (:tenant_id, :bucket, :model, :route, :backend, :bin, :latency, :ttft)"
    )
    rows = [{**dict(zip(KEYS, key, strict=True)), "latency": v[0], "ttft": v[1]} for key, v in sorted(sums.items())]
    for start in range(0, len(rows), PAGE):
        connection.execute(insert, rows[start : start + PAGE])


def upgrade() -> None:
    op.create_table(
        "tenant_latency_daily",
        sa.Column("tenant_id", sa.String(), nullable=False),
        sa.Column("bucket", sa.DateTime(timezone=True), nullable=False),
        sa.Column("model", sa.String(), nullable=False),
        sa.Column("route", sa.String(), nullable=False),
        sa.Column("backend", sa.String(), nullable=False),
        sa.Column("bin", sa.SmallInteger(), nullable=False),
        sa.Column("latency", sa.Integer(), nullable=False),
        sa.Column("ttft", sa.Integer(), nullable=False),
        # the counts in the key's index (Postgres): a tenant's days are read by an index-only scan
        sa.PrimaryKeyConstraint(*KEYS, name="pk_tenant_latency_daily", postgresql_include=["latency", "ttft"]),
    )
    connection = op.get_bind()
    if connection.dialect.name == "postgresql":
        _fill_postgres()
    else:
        _fill_sqlite(connection)


def downgrade() -> None:
    op.drop_table("tenant_latency_daily")
