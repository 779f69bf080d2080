"""Usage rollups, maintained at ingest in the transaction that stores the rows (``interlock.api.crud.rollup``).

- ``usage_hourly`` / ``usage_daily``: per bucket (start of the UTC hour / day), tenant, model, route and backend:
  requests, errors (status ≥ 400), tokens and cost. What tenant-scoped and per-tenant questions read.
- ``fleet_hourly`` / ``fleet_daily``: the same without the tenant (a few rows per bucket, whatever the number of
  tenants), plus latency and time-to-first-token histograms (``interlock.db.histogram``): what fleet-wide totals,
  charts and percentiles read, cheaply over a year.

They are plain tables on both databases; retention drops raw rows only, so rollups outlive them.

``ROLLUPS`` lists them with their grain: ingest maintains every table listed (``interlock.api.crud.rollup``: in SQL
on Postgres, in Python on SQLite), so a new rollup is a table here and an entry there. A rollup's key is its primary
key: ``bucket`` (the start of the UTC hour or day; ``month``, ``YYYY-MM``, for a monthly grain) and usage columns of
the same name; every other column is a sum ingest knows: ``requests``, ``errors``, the token counters,
``cost_usd``, and the histogram bins ``lat_NN`` / ``ttft_NN``.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from sqlalchemy import BigInteger, Column, Index, Integer, PrimaryKeyConstraint, String, Table

from interlock.db.base import Base
from interlock.db.histogram import BINS
from interlock.db.types import Money, UTCDateTime

__all__ = [
    "COUNTERS",
    "FLEET_DAILY",
    "FLEET_HOURLY",
    "LATENCY_COLUMNS",
    "ROLLUPS",
    "TTFT_COLUMNS",
    "USAGE_DAILY",
    "USAGE_HOURLY",
    "Rollup",
]

COUNTERS = (
    "requests",
    "errors",
    "input_tokens",
    "output_tokens",
    "cached_tokens",
    "cache_creation_tokens",
)
"""Integer sums every rollup row carries (with ``cost_usd``)."""
LATENCY_COLUMNS = tuple(f"lat_{k:02d}" for k in range(BINS))
TTFT_COLUMNS = tuple(f"ttft_{k:02d}" for k in range(BINS))


def _sums() -> list[Column[object]]:
    columns: list[Column[object]] = [Column(name, BigInteger(), nullable=False) for name in COUNTERS]
    columns.append(Column("cost_usd", Money(), nullable=False))
    return columns


def _tenant_table(name: str) -> Table:
    return Table(
        name,
        Base.metadata,
        Column("bucket", UTCDateTime(), nullable=False),
        Column("tenant_id", String(), nullable=False),
        Column("model", String(), nullable=False),
        Column("route", String(), nullable=False),
        Column("backend", String(), nullable=False),
        *_sums(),
        PrimaryKeyConstraint("bucket", "tenant_id", "model", "route", "backend"),
        Index(f"ix_{name}_tenant_id_bucket", "tenant_id", "bucket"),
    )


def _fleet_table(name: str) -> Table:
    # INTEGER, not BIGINT: Postgres sums BIGINTs with a NUMERIC accumulator, which made a month of hourly
    # percentiles ten times slower; a bin of one key in one hour or day stays far below 2^31.
    histogram = [Column(c, Integer(), nullable=False) for c in (*LATENCY_COLUMNS, *TTFT_COLUMNS)]
    return Table(
        name,
        Base.metadata,
        Column("bucket", UTCDateTime(), nullable=False),
        Column("model", String(), nullable=False),
        Column("route", String(), nullable=False),
        Column("backend", String(), nullable=False),
        *_sums(),
        *histogram,
        PrimaryKeyConstraint("bucket", "model", "route", "backend"),
    )


USAGE_HOURLY = _tenant_table("usage_hourly")
USAGE_DAILY = _tenant_table("usage_daily")
FLEET_HOURLY = _fleet_table("fleet_hourly")
FLEET_DAILY = _fleet_table("fleet_daily")


Grain = Literal["hour", "day", "month"]


@dataclass(frozen=True)
class Rollup:
    """A table ingest keeps summed: its grain; its key (the primary key) and sums come from the table."""

    table: Table
    grain: Grain

    @property
    def keys(self) -> tuple[str, ...]:
        return tuple(str(c.name) for c in self.table.primary_key.columns)

    @property
    def sums(self) -> tuple[str, ...]:
        return tuple(str(c.name) for c in self.table.c if not c.primary_key)

    @property
    def histograms(self) -> bool:
        return LATENCY_COLUMNS[0] in self.table.c


ROLLUPS: tuple[Rollup, ...] = (
    Rollup(USAGE_HOURLY, "hour"),
    Rollup(USAGE_DAILY, "day"),
    Rollup(FLEET_HOURLY, "hour"),
    Rollup(FLEET_DAILY, "day"),
)
"""Every rollup ingest maintains (with ``monthly_spend``, which ``interlock.db.models`` declares)."""
