"""Usage at scale: ``usage`` and ``spans`` partitioned by month on Postgres, hourly and daily rollups.

On Postgres the existing tables are renamed, partitioned tables with the same names (and sequences) are created with
a partition per month present in the data (plus this month and the next), the rows are copied across and the old
tables dropped. ``spans`` gains ``started_at`` (its usage row's, the partition key) and loses its foreign key to
``usage`` (a partitioned table's unique keys must include the partition key). On SQLite the tables stay plain: the
same column and unique-key changes are made in batch mode. The rollups are then built from the existing rows.

Revision ID: 5b1e0c7d9a42
Revises: 8e4b6f0c9a12
Create Date: 2026-12-06 09:00:00.000000
"""

# ruff: noqa: S608  (SQL built from this file's constants and generated month numbers only)

from __future__ import annotations

import datetime as dt
import math
from collections.abc import Iterator, Sequence
from decimal import Decimal
from typing import Any

import sqlalchemy as sa
from alembic import op

revision: str = "5b1e0c7d9a42"
down_revision: str | Sequence[str] | None = "8e4b6f0c9a12"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

# Frozen copies of interlock.db.histogram and interlock.db.rollups as of this revision (revisions import nothing
# from interlock).
BINS = 80
COUNTERS = ("requests", "errors", "input_tokens", "output_tokens", "cached_tokens", "cache_creation_tokens")
LATENCY = tuple(f"lat_{k:02d}" for k in range(BINS))
TTFT = tuple(f"ttft_{k:02d}" for k in range(BINS))
USAGE_COLUMNS = (
    "id, idempotency_id, gateway_id, seq, started_at, tenant_id, key_id, route, backend, model, status, "
    "input_tokens, output_tokens, cached_tokens, cache_creation_tokens, usage_estimated, cost_usd, latency_ms, "
    "ttft_ms, trace_id, ingested_at"
)
SPAN_COLUMNS = "id, usage_id, trace_id, position, name, start_ms, duration_ms, attributes"


def _bin(ms: float) -> int:
    if not ms >= 1.0:
        return 0
    return min(BINS - 1, 1 + math.floor(4 * math.log2(ms)))


def _sums() -> list[sa.Column[Any]]:
    columns = [sa.Column(name, sa.BigInteger(), nullable=False) for name in COUNTERS]
    return [*columns, sa.Column("cost_usd", sa.Numeric(precision=20, scale=9), nullable=False)]


def _create_rollups() -> None:
    for name in ("usage_hourly", "usage_daily"):
        op.create_table(
            name,
            sa.Column("bucket", sa.DateTime(timezone=True), nullable=False),
            sa.Column("tenant_id", sa.String(), nullable=False),
            sa.Column("model", sa.String(), nullable=False),
            sa.Column("route", sa.String(), nullable=False),
            sa.Column("backend", sa.String(), nullable=False),
            *_sums(),
            sa.PrimaryKeyConstraint("bucket", "tenant_id", "model", "route", "backend", name=f"pk_{name}"),
        )
        op.create_index(f"ix_{name}_tenant_id_bucket", name, ["tenant_id", "bucket"], unique=False)
    for name in ("fleet_hourly", "fleet_daily"):
        op.create_table(
            name,
            sa.Column("bucket", sa.DateTime(timezone=True), nullable=False),
            sa.Column("model", sa.String(), nullable=False),
            sa.Column("route", sa.String(), nullable=False),
            sa.Column("backend", sa.String(), nullable=False),
            *_sums(),
            *[sa.Column(c, sa.Integer(), nullable=False) for c in (*LATENCY, *TTFT)],
            sa.PrimaryKeyConstraint("bucket", "model", "route", "backend", name=f"pk_{name}"),
        )


def _utc(value: Any) -> dt.datetime:
    if isinstance(value, str):
        value = dt.datetime.fromisoformat(value)
    assert isinstance(value, dt.datetime)
    return value.replace(tzinfo=dt.UTC) if value.tzinfo is None else value.astimezone(dt.UTC)


def _money(value: Any, sqlite: bool) -> Decimal:
    return Decimal(int(value)) / Decimal(10**9) if sqlite else Decimal(value)


def _fill_rollups(connection: sa.Connection) -> None:
    """Stream the rows in time order and write each hour's and day's sums when it is complete."""
    sqlite = connection.dialect.name == "sqlite"
    meta = sa.MetaData()
    tables = {
        name: sa.Table(name, meta, autoload_with=connection)
        for name in ("usage_hourly", "usage_daily", "fleet_hourly", "fleet_daily")
    }
    pending: dict[str, dict[tuple[Any, ...], dict[str, Any]]] = {name: {} for name in tables}
    current: dict[str, dt.datetime | None] = {"hour": None, "day": None}

    def flush(names: tuple[str, ...]) -> None:
        for name in names:
            rows = list(pending[name].values())
            if rows:
                store = [
                    {**row, "bucket": row["bucket"].replace(tzinfo=None) if sqlite else row["bucket"],
                     "cost_usd": int(row["cost_usd"] * 10**9) if sqlite else row["cost_usd"]}
                    for row in rows
                ]  # fmt: skip
                connection.execute(tables[name].insert(), store)
            pending[name] = {}

    def add(name: str, key: tuple[Any, ...], keys: tuple[str, ...], row: Any, histograms: bool) -> None:
        sums = pending[name].get(key)
        if sums is None:
            sums = dict(zip(keys, key, strict=True))
            sums.update(dict.fromkeys(COUNTERS, 0))
            sums["cost_usd"] = Decimal(0)
            if histograms:
                sums.update(dict.fromkeys((*LATENCY, *TTFT), 0))
            pending[name][key] = sums
        sums["requests"] += 1
        sums["errors"] += int(row.status >= 400)
        for column in COUNTERS[2:]:
            sums[column] += int(getattr(row, column))
        sums["cost_usd"] += _money(row.cost_usd, sqlite)
        if histograms:
            sums[LATENCY[_bin(float(row.latency_ms))]] += 1
            if row.ttft_ms is not None:
                sums[TTFT[_bin(float(row.ttft_ms))]] += 1

    def pages() -> Iterator[Any]:
        """Every usage row by (started_at, id), 5,000 at a time by keyset: no server-side cursor, which asyncpg keeps
        open to the end of the transaction (holding the table "in use" for a later ALTER TABLE in it)."""
        columns = (
            "started_at, id, tenant_id, model, route, backend, status, input_tokens, output_tokens, cached_tokens, "
            "cache_creation_tokens, cost_usd, latency_ms, ttft_ms"
        )
        first = sa.text(f"SELECT {columns} FROM usage ORDER BY started_at, id LIMIT 5000")
        after = sa.text(
            f"SELECT {columns} FROM usage WHERE started_at > :at OR (started_at = :at AND id > :id) "
            "ORDER BY started_at, id LIMIT 5000"
        )
        page = connection.execute(first).all()
        while page:
            yield from page
            last = page[-1]
            page = connection.execute(after, {"at": last.started_at, "id": last.id}).all()

    tenant_keys = ("bucket", "tenant_id", "model", "route", "backend")
    fleet_keys = ("bucket", "model", "route", "backend")
    for row in pages():
        started = _utc(row.started_at)
        hour = started.replace(minute=0, second=0, microsecond=0)
        day = hour.replace(hour=0)
        if current["hour"] != hour:
            flush(("usage_hourly", "fleet_hourly"))
            current["hour"] = hour
        if current["day"] != day:
            flush(("usage_daily", "fleet_daily"))
            current["day"] = day
        rest = (row.model, row.route, row.backend)
        add("usage_hourly", (hour, row.tenant_id, *rest), tenant_keys, row, False)
        add("usage_daily", (day, row.tenant_id, *rest), tenant_keys, row, False)
        add("fleet_hourly", (hour, *rest), fleet_keys, row, True)
        add("fleet_daily", (day, *rest), fleet_keys, row, True)
    flush(tuple(tables))


def _months(connection: sa.Connection, table: str) -> list[tuple[int, int]]:
    now = dt.datetime.now(dt.UTC)
    nxt = (now.year + 1, 1) if now.month == 12 else (now.year, now.month + 1)
    found = connection.execute(
        sa.text(f"SELECT DISTINCT date_trunc('month', started_at AT TIME ZONE 'UTC') FROM {table}")
    ).scalars()
    return sorted({(now.year, now.month), nxt, *((m.year, m.month) for m in found)})


def _partition(table: str, month: tuple[int, int]) -> None:
    year, number = month
    upper = (year + 1, 1) if number == 12 else (year, number + 1)
    op.execute(
        f"CREATE TABLE {table}_p{year:04d}{number:02d} PARTITION OF {table} FOR VALUES FROM "
        f"('{year:04d}-{number:02d}-01 00:00:00+00') TO ('{upper[0]:04d}-{upper[1]:02d}-01 00:00:00+00')"
    )


_USAGE_DDL = """
CREATE TABLE usage (
    id BIGINT NOT NULL DEFAULT nextval('usage_id_seq'::regclass),
    idempotency_id VARCHAR(64) NOT NULL,
    gateway_id VARCHAR(128) NOT NULL,
    seq BIGINT NOT NULL,
    started_at TIMESTAMP WITH TIME ZONE NOT NULL,
    tenant_id VARCHAR NOT NULL,
    key_id VARCHAR NOT NULL,
    route VARCHAR NOT NULL,
    backend VARCHAR NOT NULL,
    model VARCHAR NOT NULL,
    status INTEGER NOT NULL,
    input_tokens BIGINT NOT NULL,
    output_tokens BIGINT NOT NULL,
    cached_tokens BIGINT NOT NULL,
    cache_creation_tokens BIGINT NOT NULL,
    usage_estimated BOOLEAN NOT NULL,
    cost_usd NUMERIC(20, 9) NOT NULL,
    latency_ms FLOAT NOT NULL,
    ttft_ms FLOAT,
    trace_id VARCHAR NOT NULL,
    ingested_at TIMESTAMP WITH TIME ZONE DEFAULT CURRENT_TIMESTAMP NOT NULL,
    CONSTRAINT pk_usage PRIMARY KEY (id, started_at),
    CONSTRAINT uq_usage_idempotency_id_started_at UNIQUE (idempotency_id, started_at)
) PARTITION BY RANGE (started_at)
"""

_SPANS_DDL = """
CREATE TABLE spans (
    id BIGINT NOT NULL DEFAULT nextval('spans_id_seq'::regclass),
    usage_id BIGINT NOT NULL,
    started_at TIMESTAMP WITH TIME ZONE NOT NULL,
    trace_id VARCHAR NOT NULL,
    position INTEGER NOT NULL,
    name VARCHAR NOT NULL,
    start_ms FLOAT NOT NULL,
    duration_ms FLOAT NOT NULL,
    attributes JSON NOT NULL,
    CONSTRAINT pk_spans PRIMARY KEY (id, started_at)
) PARTITION BY RANGE (started_at)
"""

_USAGE_INDEXES = {
    "ix_usage_key_id": "key_id",
    "ix_usage_started_at": "started_at",
    "ix_usage_tenant_id_started_at": "tenant_id, started_at",
    "ix_usage_trace_id": "trace_id",
}
_SPAN_INDEXES = {"ix_spans_trace_id": "trace_id", "ix_spans_usage_id": "usage_id"}


def _set_aside(table: str, constraints: Sequence[str], indexes: Sequence[str]) -> None:
    """Rename a table, its constraints and indexes with a ``_old`` suffix, and take its id sequence off it."""
    op.execute(f"ALTER TABLE {table} RENAME TO {table}_old")
    for name in constraints:
        op.execute(f"ALTER TABLE {table}_old RENAME CONSTRAINT {name} TO {name}_old")
    for name in indexes:
        op.execute(f"ALTER INDEX {name} RENAME TO {name}_old")
    op.execute(f"ALTER TABLE {table}_old ALTER COLUMN id DROP DEFAULT")
    op.execute(f"ALTER SEQUENCE {table}_id_seq OWNED BY NONE")


def _upgrade_postgres() -> None:
    connection = op.get_bind()
    op.execute("ALTER TABLE spans DROP CONSTRAINT fk_spans_usage_id_usage")
    _set_aside("usage", ["pk_usage", "uq_usage_idempotency_id"], list(_USAGE_INDEXES))
    _set_aside("spans", ["pk_spans"], list(_SPAN_INDEXES))
    op.execute(_USAGE_DDL)
    op.execute(_SPANS_DDL)
    for name, columns in _USAGE_INDEXES.items():
        op.execute(f"CREATE INDEX {name} ON usage ({columns})")
    for name, columns in _SPAN_INDEXES.items():
        op.execute(f"CREATE INDEX {name} ON spans ({columns})")
    op.execute("ALTER SEQUENCE usage_id_seq OWNED BY usage.id")
    op.execute("ALTER SEQUENCE spans_id_seq OWNED BY spans.id")
    for month in _months(connection, "usage_old"):
        _partition("usage", month)
        _partition("spans", month)
    op.execute(f"INSERT INTO usage ({USAGE_COLUMNS}) SELECT {USAGE_COLUMNS} FROM usage_old")
    op.execute(
        f"INSERT INTO spans ({SPAN_COLUMNS}, started_at) SELECT "
        f"{', '.join('s.' + c.strip() for c in SPAN_COLUMNS.split(','))}, u.started_at "
        "FROM spans_old s JOIN usage_old u ON u.id = s.usage_id"
    )
    op.execute("DROP TABLE spans_old")
    op.execute("DROP TABLE usage_old")


def _upgrade_sqlite() -> None:
    with op.batch_alter_table("spans", schema=None) as batch_op:
        batch_op.add_column(sa.Column("started_at", sa.DateTime(timezone=True), nullable=True))
        batch_op.drop_constraint("fk_spans_usage_id_usage", type_="foreignkey")
    op.execute("UPDATE spans SET started_at = (SELECT started_at FROM usage WHERE usage.id = spans.usage_id)")
    op.execute("DELETE FROM spans WHERE started_at IS NULL")
    with op.batch_alter_table("spans", schema=None) as batch_op:
        batch_op.alter_column("started_at", existing_type=sa.DateTime(timezone=True), nullable=False)
    with op.batch_alter_table("usage", schema=None) as batch_op:
        batch_op.drop_constraint("uq_usage_idempotency_id", type_="unique")
        batch_op.create_unique_constraint("uq_usage_idempotency_id_started_at", ["idempotency_id", "started_at"])


def upgrade() -> None:
    if op.get_bind().dialect.name == "postgresql":
        _upgrade_postgres()
    else:
        _upgrade_sqlite()
    _create_rollups()
    _fill_rollups(op.get_bind())


_PLAIN_USAGE_DDL = (
    _USAGE_DDL.replace("PRIMARY KEY (id, started_at)", "PRIMARY KEY (id)")
    .replace("uq_usage_idempotency_id_started_at UNIQUE (idempotency_id, started_at)",
             "uq_usage_idempotency_id UNIQUE (idempotency_id)")
    .replace(") PARTITION BY RANGE (started_at)", ")")
)  # fmt: skip
_PLAIN_SPANS_DDL = (
    _SPANS_DDL.replace("    started_at TIMESTAMP WITH TIME ZONE NOT NULL,\n", "")
    .replace("PRIMARY KEY (id, started_at)", "PRIMARY KEY (id)")
    .replace(") PARTITION BY RANGE (started_at)", ")")
)


def _downgrade_postgres() -> None:
    _set_aside("usage", ["pk_usage", "uq_usage_idempotency_id_started_at"], list(_USAGE_INDEXES))
    _set_aside("spans", ["pk_spans"], list(_SPAN_INDEXES))
    op.execute(_PLAIN_USAGE_DDL)
    op.execute(_PLAIN_SPANS_DDL)
    op.execute("ALTER SEQUENCE usage_id_seq OWNED BY usage.id")
    op.execute("ALTER SEQUENCE spans_id_seq OWNED BY spans.id")
    op.execute(
        f"INSERT INTO usage ({USAGE_COLUMNS}) SELECT {USAGE_COLUMNS} FROM usage_old ORDER BY id "
        "ON CONFLICT (idempotency_id) DO NOTHING"
    )
    op.execute(
        f"INSERT INTO spans ({SPAN_COLUMNS}) SELECT {SPAN_COLUMNS} FROM spans_old "
        "WHERE usage_id IN (SELECT id FROM usage)"
    )
    op.execute("DROP TABLE spans_old")
    op.execute("DROP TABLE usage_old")
    for name, columns in _USAGE_INDEXES.items():
        op.execute(f"CREATE INDEX {name} ON usage ({columns})")
    for name, columns in _SPAN_INDEXES.items():
        op.execute(f"CREATE INDEX {name} ON spans ({columns})")
    op.execute(
        "ALTER TABLE spans ADD CONSTRAINT fk_spans_usage_id_usage FOREIGN KEY (usage_id) REFERENCES usage (id) "
        "ON DELETE CASCADE"
    )


def _downgrade_sqlite() -> None:
    op.execute(
        "DELETE FROM usage WHERE id NOT IN (SELECT min(id) FROM usage GROUP BY idempotency_id)"
    )  # fmt: skip
    op.execute("DELETE FROM spans WHERE usage_id NOT IN (SELECT id FROM usage)")
    with op.batch_alter_table("usage", schema=None) as batch_op:
        batch_op.drop_constraint("uq_usage_idempotency_id_started_at", type_="unique")
        batch_op.create_unique_constraint("uq_usage_idempotency_id", ["idempotency_id"])
    with op.batch_alter_table("spans", schema=None) as batch_op:
        batch_op.drop_column("started_at")
        batch_op.create_foreign_key("fk_spans_usage_id_usage", "usage", ["usage_id"], ["id"], ondelete="CASCADE")


def downgrade() -> None:
    for name in ("fleet_daily", "fleet_hourly", "usage_daily", "usage_hourly"):
        op.drop_table(name)
    if op.get_bind().dialect.name == "postgresql":
        _downgrade_postgres()
    else:
        _downgrade_sqlite()
