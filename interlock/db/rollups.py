"""Usage rollups, maintained at ingest in the transaction that stores the rows (``interlock.api.crud.rollup``).

- ``usage_hourly`` / ``usage_daily``: per bucket (start of the UTC hour / day), tenant, model, route and backend:
  requests, errors (status ≥ 400), tokens and cost. What tenant-scoped and per-tenant questions read.
- ``fleet_hourly`` / ``fleet_daily``: the same without the tenant (a few rows per bucket, whatever the number of
  tenants), plus latency and time-to-first-token histograms (``interlock.db.histogram``): what fleet-wide totals,
  charts and percentiles read, cheaply over a year.
- ``fleet_model_*``, ``fleet_route_*``, ``fleet_backend_*`` (hourly and daily): the fleet rollup summed further to
  one dimension (one row per bucket and model, route or backend), histograms included. A month of hourly
  percentiles by route sums 4 rows per hour instead of every (model, route, backend) combination, and a fleet-wide
  question with no dimension reads the narrowest of them.
- ``tenant_daily`` / ``tenant_monthly``: per bucket (UTC day / month) and tenant only, no histograms: what ranking
  tenants (top spenders, ``/v1/costs`` by tenant) reads: a month of days is a few rows per tenant, a year eleven
  months and the ragged days. ``tenant_monthly`` is also the month's spend that budgets are checked against (the
  gateways' spend snapshot, quotas, the console's tenants page).

- ``tenant_latency_daily``: a sparse per-tenant latency histogram: per UTC day, tenant, model, route, backend and
  histogram bin (``interlock.db.histogram``), how many requests' latency (``latency``) and time to first token
  (``ttft``) fell in that bin; a row only where one of them is nonzero (about 20 bins of a key's day are). What a
  tenant's percentiles over whole days read (``interlock.api.crud.rollup_query.histograms``). Not in ``ROLLUPS``:
  its key has a bin and its sums are counts, a shape the generic specs do not have. On Postgres it is folded from
  the raw rows a few minutes after they start (``interlock.api.crud.fold``, ``ROLLUP_WATERMARKS``), not at ingest:
  two upserts per event were a third of Postgres's time per ingested event, and a few minutes' rows fold into far
  fewer. On SQLite it is kept at ingest (``interlock.api.crud.rollup``: ``add_to_tenant_latency``).

They are plain tables on both databases; retention drops raw rows only, so rollups outlive them.

``ROLLUPS`` lists them with their grain, narrowest first: ingest maintains every table listed
(``interlock.api.crud.rollup``: in SQL on Postgres, in Python on SQLite), so a new rollup is a table here and an
entry there, and a query reads the first that can answer it. A rollup's key is its primary key: ``bucket`` (the
start of the UTC hour, day or month) and usage columns of
the same name; every other column is a sum ingest knows: ``requests``, ``errors``, the token counters,
``cost_usd``, and the histogram bins ``lat_NN`` / ``ttft_NN``.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from sqlalchemy import BigInteger, Column, Index, Integer, PrimaryKeyConstraint, SmallInteger, String, Table

from interlock.db.base import Base
from interlock.db.histogram import BINS
from interlock.db.types import Money, UTCDateTime

__all__ = [
    "COUNTERS",
    "FILLFACTOR",
    "FLEET_DAILY",
    "FLEET_HOURLY",
    "LATENCY_COLUMNS",
    "ROLLUPS",
    "ROLLUP_WATERMARKS",
    "TENANT_DAILY",
    "TENANT_LATENCY_DAILY",
    "TENANT_LATENCY_FOLD",
    "TENANT_LATENCY_KEYS",
    "TENANT_MONTHLY",
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


FILLFACTOR = 70
"""Of each rollup's heap pages (Postgres): ingest updates a row of the current hour, day or month once per batch that
adds to it, and an update is HOT (no new entry in any index, the old version pruned from the page) only when the
new version fits on the row's page; with full pages (100, the default) every update wrote a new entry into each of
the table's indexes. 70 leaves room for a few versions of a page's rows between prunes."""


def _sums() -> list[Column[object]]:
    columns: list[Column[object]] = [Column(name, BigInteger(), nullable=False) for name in COUNTERS]
    columns.append(Column("cost_usd", Money(), nullable=False))
    return columns


def _tenant_table(name: str, dimensions: tuple[str, ...] = ("model", "route", "backend")) -> Table:
    return Table(
        name,
        Base.metadata,
        Column("bucket", UTCDateTime(), nullable=False),
        Column("tenant_id", String(), nullable=False),
        *[Column(d, String(), nullable=False) for d in dimensions],
        *_sums(),
        PrimaryKeyConstraint("bucket", "tenant_id", *dimensions),
        Index(f"ix_{name}_tenant_id_bucket", "tenant_id", "bucket"),
        postgresql_with={"fillfactor": FILLFACTOR},
    )


def _fleet_table(name: str, dimensions: tuple[str, ...] = ("model", "route", "backend")) -> Table:
    # INTEGER, not BIGINT: Postgres sums BIGINTs with a NUMERIC accumulator, which made a month of hourly
    # percentiles ten times slower; a bin of one key in one hour or day stays far below 2^31 (a one-dimension
    # table's bin sums a few keys: still far below).
    histogram = [Column(c, Integer(), nullable=False) for c in (*LATENCY_COLUMNS, *TTFT_COLUMNS)]
    return Table(
        name,
        Base.metadata,
        Column("bucket", UTCDateTime(), nullable=False),
        *[Column(d, String(), nullable=False) for d in dimensions],
        *_sums(),
        *histogram,
        PrimaryKeyConstraint("bucket", *dimensions),
        postgresql_with={"fillfactor": FILLFACTOR},
    )


USAGE_HOURLY = _tenant_table("usage_hourly")
USAGE_DAILY = _tenant_table("usage_daily")
FLEET_HOURLY = _fleet_table("fleet_hourly")
FLEET_DAILY = _fleet_table("fleet_daily")
TENANT_DAILY = _tenant_table("tenant_daily", ())
TENANT_MONTHLY = _tenant_table("tenant_monthly", ())

TENANT_LATENCY_DAILY = Table(
    "tenant_latency_daily",
    Base.metadata,
    Column("tenant_id", String(), nullable=False),
    Column("bucket", UTCDateTime(), nullable=False),
    Column("model", String(), nullable=False),
    Column("route", String(), nullable=False),
    Column("backend", String(), nullable=False),
    Column("bin", SmallInteger(), nullable=False),
    # INTEGER for the same reason as the fleet bins: one key's bin in one day stays far below 2^31.
    Column("latency", Integer(), nullable=False),
    Column("ttft", Integer(), nullable=False),
    # Tenant first: the primary key is also the index a tenant's window is read through (no second index to keep),
    # and on Postgres it carries the counts (INCLUDE), so that read is an index-only scan of the tenant's entries,
    # side by side, instead of a heap fetch per row from pages shared with every other tenant of the day.
    # Route and bin right after the day: a tenant's bins by day and route (the console's default grouping) are
    # summed in index order, as Postgres scans, without hashing and sorting every entry.
    PrimaryKeyConstraint(
        "tenant_id", "bucket", "route", "bin", "model", "backend", postgresql_include=["latency", "ttft"]
    ),
)
TENANT_LATENCY_KEYS = ("tenant_id", "bucket", "model", "route", "backend", "bin")
"""The sparse per-tenant latency rollup (see the module's text): one row per (tenant, UTC day, model, route,
backend, bin) with a nonzero ``latency`` or ``ttft`` count. The columns in the order ingest writes them; the primary
key orders them for reading."""

ROLLUP_WATERMARKS = Table(
    "rollup_watermarks",
    Base.metadata,
    Column("rollup", String(), primary_key=True),
    Column("claimed_until", UTCDateTime(), nullable=False),
    Column("folded_until", UTCDateTime(), nullable=False),
)
"""Rollups kept by folding the raw rows after the fact instead of at ingest (``interlock.api.crud.fold``), per
rollup: ingest adds to it itself the rows that started before ``claimed_until`` (and marks them
``usage.latency_rolled``); the rollup holds those and every other row that started before ``folded_until``
(≤ ``claimed_until``); the other rows are still only raw, and queries read them raw. A rollup without a row here
is kept at ingest, every row (SQLite, where the migration adds none)."""
TENANT_LATENCY_FOLD = "tenant_latency_daily"
"""``ROLLUP_WATERMARKS``'s row of ``tenant_latency_daily`` (folded on Postgres)."""


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
    def dimensions(self) -> tuple[str, ...]:
        """The key after its bucket: what a row is per."""
        return tuple(k for k in self.keys if k not in ("bucket", "month"))

    @property
    def sums(self) -> tuple[str, ...]:
        return tuple(str(c.name) for c in self.table.c if not c.primary_key)

    @property
    def histograms(self) -> bool:
        return LATENCY_COLUMNS[0] in self.table.c


def _one_dimension(dimension: str) -> list[Rollup]:
    return [
        Rollup(_fleet_table(f"fleet_{dimension}_hourly", (dimension,)), "hour"),
        Rollup(_fleet_table(f"fleet_{dimension}_daily", (dimension,)), "day"),
    ]


ROLLUPS: tuple[Rollup, ...] = (
    *_one_dimension("backend"),
    *_one_dimension("route"),
    *_one_dimension("model"),
    Rollup(FLEET_HOURLY, "hour"),
    Rollup(FLEET_DAILY, "day"),
    Rollup(TENANT_DAILY, "day"),
    Rollup(TENANT_MONTHLY, "month"),
    Rollup(USAGE_HOURLY, "hour"),
    Rollup(USAGE_DAILY, "day"),
)
"""Every rollup, narrowest (fewest rows per bucket) first; ingest maintains each of them, and a query reads the
first that can answer it."""
