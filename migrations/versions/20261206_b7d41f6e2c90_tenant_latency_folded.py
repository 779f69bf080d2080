"""``rollup_watermarks``: ``tenant_latency_daily`` folded from the raw rows after the fact (Postgres) instead of at
ingest (``interlock.api.crud.fold``).

``usage.latency_rolled`` marks a row ingest added to the rollup itself (a late one), so the fold leaves it; a
constant default, so adding it rewrites no row.

On Postgres the table gets the row ``tenant_latency_daily`` whose ``claimed_until`` and ``folded_until`` are the
upgrade's time, or just after the latest row that started later than that (``USAGE_FUTURE`` lets a row start up to
31 days ahead): every row already counted started before it, so the fold never adds a row twice. Rows that start
from then on are folded by the API's maintenance a few minutes later, and read raw until then.

An API process of an earlier version still ingesting after this upgrade would add the rows it counts to the rollup
as well, and the fold would add them again: upgrade every API process across this revision (a Deployment's rolling
update takes minutes; the double count is of latency histograms only, never of tokens or spend).

On SQLite the table stays empty: the rollup is kept at ingest there, as before.

Revision ID: b7d41f6e2c90
Revises: e5b2c8d4f1a7
Create Date: 2026-12-06 23:10:00.000000
"""

# ruff: noqa: S608  (SQL built from this file's constants only)
from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

from interlock.db.types import UTCDateTime

revision: str = "b7d41f6e2c90"
down_revision: str | Sequence[str] | None = "e5b2c8d4f1a7"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("usage") as batch_op:
        batch_op.add_column(sa.Column("latency_rolled", sa.Boolean(), server_default=sa.false(), nullable=False))
    op.create_table(
        "rollup_watermarks",
        sa.Column("rollup", sa.String(), nullable=False),
        sa.Column("claimed_until", UTCDateTime(), nullable=False),
        sa.Column("folded_until", UTCDateTime(), nullable=False),
        sa.PrimaryKeyConstraint("rollup", name=op.f("pk_rollup_watermarks")),
    )
    if op.get_bind().dialect.name == "postgresql":
        # ix_usage_started_at finds the rows that started after now (at most USAGE_FUTURE of them) at once
        op.execute(
            "INSERT INTO rollup_watermarks (rollup, claimed_until, folded_until) SELECT 'tenant_latency_daily', w, w "
            "FROM greatest(now(), (SELECT max(started_at) + interval '1 microsecond' FROM usage "
            "WHERE started_at >= now())) AS w"
        )


def downgrade() -> None:
    # Back to keeping it at ingest: the rows not folded yet are added now, so the rollup holds every row again.
    if op.get_bind().dialect.name == "postgresql":
        op.execute(
            "INSERT INTO tenant_latency_daily (tenant_id, bucket, model, route, backend, bin, latency, ttft) "
            "SELECT tenant_id, date_trunc('day', started_at AT TIME ZONE 'UTC') AT TIME ZONE 'UTC', model, route, "
            "backend, v.bin, sum(v.l)::int, sum(v.t)::int FROM usage CROSS JOIN LATERAL (VALUES "
            f"({_bin('latency_ms')}, 1, 0), (CASE WHEN ttft_ms IS NULL THEN NULL ELSE {_bin('ttft_ms')} END, 0, 1)) "
            "AS v(bin, l, t) WHERE v.bin IS NOT NULL AND NOT latency_rolled AND started_at >= (SELECT folded_until "
            "FROM rollup_watermarks WHERE rollup = 'tenant_latency_daily') GROUP BY 1, 2, 3, 4, 5, 6 "
            "ON CONFLICT (tenant_id, bucket, route, bin, model, backend) DO UPDATE SET "
            "latency = tenant_latency_daily.latency + EXCLUDED.latency, "
            "ttft = tenant_latency_daily.ttft + EXCLUDED.ttft"
        )
    op.drop_table("rollup_watermarks")
    with op.batch_alter_table("usage") as batch_op:
        batch_op.drop_column("latency_rolled")


def _bin(column: str) -> str:
    """``interlock.db.histogram.bin_sql``, frozen as of this revision (a migration does not follow later code)."""
    bounds = ",".join(repr(2.0 ** (k / 4)) for k in range(79))
    return f"width_bucket({column}, '{{{bounds}}}'::float8[])"
