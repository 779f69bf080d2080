"""Narrower rollups, built from the existing ones (which already hold every usage row, including those whose raw
rows retention has dropped):

- ``fleet_{backend,route,model}_{hourly,daily}``: one row per bucket and backend, route or model, with the same
  counters, cost and latency/TTFT histograms as ``fleet_hourly`` / ``fleet_daily`` (summed from them);
- ``tenant_daily`` / ``tenant_monthly``: one row per UTC day / month and tenant, counters and cost only (summed from
  ``usage_daily``).

Revision ID: 6d2f4a8b1c53
Revises: 5b1e0c2d9a47
Create Date: 2026-12-06 12:00:00.000000
"""

# ruff: noqa: S608  (SQL built from this file's constants only)

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "6d2f4a8b1c53"
down_revision: str | Sequence[str] | None = "5b1e0c2d9a47"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

# Frozen copies of interlock.db.histogram and interlock.db.rollups as of this revision.
BINS = 80
COUNTERS = ("requests", "errors", "input_tokens", "output_tokens", "cached_tokens", "cache_creation_tokens")
HISTOGRAM = tuple(f"lat_{k:02d}" for k in range(BINS)) + tuple(f"ttft_{k:02d}" for k in range(BINS))
DIMENSIONS = ("backend", "route", "model")
GRAINS = (("hourly", "fleet_hourly"), ("daily", "fleet_daily"))


def _sums() -> list[sa.Column[object]]:
    columns: list[sa.Column[object]] = [sa.Column(c, sa.BigInteger(), nullable=False) for c in COUNTERS]
    return [*columns, sa.Column("cost_usd", sa.Numeric(precision=20, scale=9), nullable=False)]


def _fill(name: str, keys: str, source: str, summed: Sequence[str], bucket: str = "bucket") -> None:
    op.execute(
        f"INSERT INTO {name} (bucket, {keys}, {', '.join(summed)}) "
        f"SELECT {bucket}, {keys}, {', '.join(f'sum({c})' for c in summed)} FROM {source} GROUP BY {bucket}, {keys}"
    )


def upgrade() -> None:
    for dimension in DIMENSIONS:
        for grain, source in GRAINS:
            name = f"fleet_{dimension}_{grain}"
            op.create_table(
                name,
                sa.Column("bucket", sa.DateTime(timezone=True), nullable=False),
                sa.Column(dimension, sa.String(), nullable=False),
                *_sums(),
                *[sa.Column(c, sa.Integer(), nullable=False) for c in HISTOGRAM],
                sa.PrimaryKeyConstraint("bucket", dimension, name=f"pk_{name}"),
            )
            _fill(name, dimension, source, (*COUNTERS, "cost_usd", *HISTOGRAM))
    for name in ("tenant_daily", "tenant_monthly"):
        op.create_table(
            name,
            sa.Column("bucket", sa.DateTime(timezone=True), nullable=False),
            sa.Column("tenant_id", sa.String(), nullable=False),
            *_sums(),
            sa.PrimaryKeyConstraint("bucket", "tenant_id", name=f"pk_{name}"),
        )
        op.create_index(f"ix_{name}_tenant_id_bucket", name, ["tenant_id", "bucket"], unique=False)
    _fill("tenant_daily", "tenant_id", "usage_daily", (*COUNTERS, "cost_usd"))
    if op.get_bind().dialect.name == "postgresql":
        month = "date_trunc('month', bucket AT TIME ZONE 'UTC') AT TIME ZONE 'UTC'"
    else:  # naive UTC text, as interlock.db.types.UTCDateTime stores it
        month = "strftime('%Y-%m-01 00:00:00.000000', bucket)"
    _fill("tenant_monthly", "tenant_id", "tenant_daily", (*COUNTERS, "cost_usd"), bucket=month)


def downgrade() -> None:
    for name in ("tenant_monthly", "tenant_daily"):
        op.drop_index(f"ix_{name}_tenant_id_bucket", table_name=name)
        op.drop_table(name)
    for dimension in reversed(DIMENSIONS):
        for grain, _ in reversed(GRAINS):
            op.drop_table(f"fleet_{dimension}_{grain}")
