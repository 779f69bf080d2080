"""The migrations build the models' schema on Postgres and SQLite, go down to nothing and up again, and leave
no autogenerate difference (so every model change comes with its revision)."""

from __future__ import annotations

import datetime as dt
import re
from collections.abc import Iterator
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from alembic.script import ScriptDirectory

from interlock.api.crud.partitions import ensure_partitions, months_of
from interlock.db.base import Base
from interlock.db.migrate import MIGRATIONS_DIR, alembic_config, compare_type, downgrade, include_name, migrate
from interlock.db.models import Usage
from interlock.db.rollups import FILLFACTOR, ROLLUPS, TENANT_MONTHLY
from interlock.db.session import create_engine
from interlock.db.types import Money, UTCDateTime
from tests.db.support import temporary_postgres

TABLES = {
    "tenants",
    "api_keys",
    "quotas",
    "prices",
    "usage",
    "spans",
    "gateway_cursors",
    "usage_dead_letters",
    "gateway_status",
    "console_sessions",
    "usage_hourly",
    "usage_daily",
    "fleet_hourly",
    "fleet_daily",
    *(f"fleet_{dimension}_{grain}" for dimension in ("backend", "route", "model") for grain in ("hourly", "daily")),
    "tenant_daily",
    "tenant_monthly",
    "tenant_latency_daily",
    "rollup_watermarks",
    "config_changes",
}


@pytest.fixture(params=["postgres", "sqlite"])
def database_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    if request.param == "postgres":
        with temporary_postgres("migrations") as url:
            yield url
    else:
        yield f"sqlite+aiosqlite:///{tmp_path / 'migrations.db'}"


async def _inspect(url: str, fn: Any) -> Any:
    engine = create_engine(url)
    try:
        async with engine.connect() as connection:
            return await connection.run_sync(fn)
    finally:
        await engine.dispose()


def _tables(connection: sa.Connection) -> set[str]:
    names = set(sa.inspect(connection).get_table_names()) - {"alembic_version"}
    return {name for name in names if include_name(name, "table", {})}


def _diff(metadata: sa.MetaData) -> Any:
    def run(connection: sa.Connection) -> list[Any]:
        context = MigrationContext.configure(
            connection, opts={"compare_type": compare_type, "include_name": include_name}
        )
        return list(compare_metadata(context, metadata))

    return run


async def test_upgrade_downgrade_upgrade_and_no_autogenerate_difference(database_url: str) -> None:
    assert await _inspect(database_url, _tables) == set()
    await migrate(database_url)
    assert await _inspect(database_url, _tables) == TABLES
    assert await _inspect(database_url, _diff(Base.metadata)) == []

    await downgrade(database_url, "base")
    assert await _inspect(database_url, _tables) == set()

    await migrate(database_url)
    assert await _inspect(database_url, _tables) == TABLES
    assert await _inspect(database_url, _diff(Base.metadata)) == []


async def test_the_difference_check_sees_a_model_change(database_url: str) -> None:
    """The no-difference assertion above can fail: a column the migrations lack is reported."""
    await migrate(database_url)
    changed = sa.MetaData(naming_convention=Base.metadata.naming_convention)
    for table in Base.metadata.tables.values():
        table.to_metadata(changed)
    changed.tables["tenants"].append_column(sa.Column("plan", sa.String(32), nullable=True))
    diff = await _inspect(database_url, _diff(changed))
    assert [(op[0], op[2], op[3].name) for op in diff] == [("add_column", "tenants", "plan")]


def test_one_head_with_a_descriptive_slug() -> None:
    script = ScriptDirectory.from_config(alembic_config())
    heads = script.get_heads()
    assert len(heads) == 1
    files = sorted(p.name for p in (MIGRATIONS_DIR / "versions").glob("*.py"))
    assert len(files) == len(list(script.walk_revisions()))
    assert all(re.fullmatch(r"\d{8}_[0-9a-f]{12}_[a-z][a-z_]+\.py", name) for name in files), files


_MONTHLY_SPEND = sa.Table(
    "monthly_spend",
    sa.MetaData(),
    sa.Column("tenant_id", sa.String()),
    sa.Column("month", sa.String()),
    sa.Column("requests", sa.BigInteger()),
    sa.Column("cost_usd", Money()),
)


async def _run(url: str, statement: Any, rows: Any = None) -> list[Any]:
    engine = create_engine(url)
    try:
        async with engine.begin() as connection:
            result = (
                await connection.execute(statement, rows) if rows is not None else await connection.execute(statement)
            )
            return list(result.all()) if result.returns_rows else []
    finally:
        await engine.dispose()


async def test_the_spend_moves_to_tenant_monthly_and_back(database_url: str) -> None:
    """Dropping ``monthly_spend`` keeps every tenant's spend: a month ``tenant_monthly`` lacks is carried over (its
    requests and cost), one it has is left as it is; going down rebuilds ``monthly_spend`` from it."""
    await migrate(database_url, "9c4e2a7b5d18")
    await _run(
        database_url,
        sa.insert(_MONTHLY_SPEND),
        [
            {"tenant_id": "t1", "month": "2026-11", "requests": 3, "cost_usd": Decimal("1.5")},
            {"tenant_id": "t1", "month": "2026-12", "requests": 5, "cost_usd": Decimal("2.25")},
        ],
    )
    december = dt.datetime(2026, 12, 1, tzinfo=dt.UTC)
    sums = {"input_tokens": 10, "output_tokens": 20, "cached_tokens": 0, "cache_creation_tokens": 0}
    row = {"bucket": december, "tenant_id": "t1", "requests": 5, "errors": 1, **sums, "cost_usd": Decimal("2.25")}
    await _run(database_url, sa.insert(TENANT_MONTHLY), [row])

    await migrate(database_url)
    monthly = TENANT_MONTHLY.c
    rows = await _run(
        database_url,
        sa.select(monthly.bucket, monthly.tenant_id, monthly.requests, monthly.errors, monthly.cost_usd).order_by(
            monthly.bucket
        ),
    )
    november = dt.datetime(2026, 11, 1, tzinfo=dt.UTC)
    assert [tuple(r) for r in rows] == [
        (november, "t1", 3, 0, Decimal("1.5")),
        (december, "t1", 5, 1, Decimal("2.25")),
    ]
    found = await _run(database_url, sa.select(monthly.requests).where(monthly.bucket == november))
    assert [tuple(r) for r in found] == [(3,)]  # the carried-over bucket is the one readers ask for

    await downgrade(database_url, "9c4e2a7b5d18")
    rows = await _run(database_url, sa.select(_MONTHLY_SPEND).order_by(_MONTHLY_SPEND.c.month))
    assert [tuple(r) for r in rows] == [("t1", "2026-11", 3, Decimal("1.5")), ("t1", "2026-12", 5, Decimal("2.25"))]


_SPANS = sa.Table(
    "spans",
    sa.MetaData(),
    sa.Column("usage_id", sa.BigInteger()),
    sa.Column("started_at", UTCDateTime()),
    sa.Column("trace_id", sa.String()),
    sa.Column("position", sa.Integer()),
    sa.Column("name", sa.String()),
    sa.Column("start_ms", sa.Float()),
    sa.Column("duration_ms", sa.Float()),
    sa.Column("attributes", sa.JSON()),
)


async def test_spans_go_back_to_their_table_on_the_way_down(database_url: str) -> None:
    """Rows counted at head keep their spans in ``usage.spans``; going down past ``c5e8a1f3b7d2`` writes them into
    ``spans`` (position, name, times, attributes, ``{}`` where none were sent; on Postgres in a partition made for
    the month) and drops the column; back up, those rows' ``usage.spans`` is NULL and their spans are the table's,
    as for any row counted before the column existed."""
    await migrate(database_url)
    engine = create_engine(database_url)
    try:
        now = dt.datetime.now(dt.UTC).replace(microsecond=0)
        await ensure_partitions(engine, months_of([now]))
        base = {
            "gateway_id": "gw", "started_at": now, "tenant_id": "t1", "key_id": "k", "route": "r", "backend": "b",
            "model": "m", "status": 200, "input_tokens": 1, "output_tokens": 1, "cached_tokens": 0,
            "cache_creation_tokens": 0, "usage_estimated": False, "spilled_over": False, "cost_usd": Decimal("0.1"),
            "latency_ms": 1.0, "ttft_ms": None,
        }  # fmt: skip
        spans = [
            {"name": "auth", "start_ms": 0.0, "duration_ms": 0.5, "attributes": {"ok": True, "n": 2}},
            {"name": "upstream", "start_ms": 0.5, "duration_ms": 40.25},
        ]
        rows = [
            {**base, "idempotency_id": "a", "seq": 1, "trace_id": "trace-a", "spans": spans},
            {**base, "idempotency_id": "b", "seq": 2, "trace_id": "trace-b", "spans": None},
        ]
        async with engine.begin() as connection:
            await connection.execute(sa.insert(Usage), rows)
    finally:
        await engine.dispose()

    await downgrade(database_url, "8b4f6d2e0c31")
    found = await _run(
        database_url,
        sa.select(_SPANS.c.trace_id, _SPANS.c.position, _SPANS.c.name, _SPANS.c.start_ms, _SPANS.c.duration_ms,
                  _SPANS.c.attributes, _SPANS.c.started_at).order_by(_SPANS.c.position),
    )  # fmt: skip
    assert [tuple(r) for r in found] == [
        ("trace-a", 0, "auth", 0.0, 0.5, {"ok": True, "n": 2}, now),
        ("trace-a", 1, "upstream", 0.5, 40.25, {}, now),
    ]

    await migrate(database_url)
    stored = await _run(database_url, sa.select(Usage.idempotency_id, Usage.spans).order_by(Usage.idempotency_id))
    assert [tuple(r) for r in stored] == [("a", None), ("b", None)]
    assert len(await _run(database_url, sa.select(_SPANS.c.name))) == 2


@pytest.fixture
def postgres_url() -> Iterator[str]:
    with temporary_postgres("fillfactor") as url:
        yield url


async def test_rollups_ingest_updates_leave_room_on_their_pages(postgres_url: str) -> None:
    """Every table in ``ROLLUPS`` has the models' ``fillfactor`` after the migrations (a Postgres storage parameter;
    SQLite has none), and the tables ingest only inserts into keep the default."""
    await migrate(postgres_url)
    found = await _run(postgres_url, sa.text("SELECT relname, reloptions FROM pg_class WHERE relkind IN ('r', 'p')"))
    options = dict(found)
    for rollup in ROLLUPS:
        assert rollup.table.dialect_options["postgresql"]["with"] == {"fillfactor": FILLFACTOR}
        assert options[rollup.table.name] == [f"fillfactor={FILLFACTOR}"], rollup.table.name
    assert options["usage"] is None
    assert options["tenant_latency_daily"] is None


async def test_a_trace_is_found_through_a_hash_index_on_postgres(postgres_url: str) -> None:
    """``ix_usage_trace_id`` is a hash index after the migrations, as the model says, on the partitions too."""
    await migrate(postgres_url)
    (index,) = [i for i in Usage.__table__.indexes if i.name == "ix_usage_trace_id"]  # type: ignore[attr-defined]
    assert index.dialect_options["postgresql"]["using"] == "hash"
    found = await _run(
        postgres_url,
        sa.text(
            "SELECT t.relname, am.amname FROM pg_index i JOIN pg_class c ON c.oid = i.indexrelid "
            "JOIN pg_am am ON am.oid = c.relam JOIN pg_class t ON t.oid = i.indrelid "
            "JOIN pg_attribute a ON a.attrelid = t.oid AND a.attnum = i.indkey[0] "
            "WHERE t.relname LIKE 'usage%' AND a.attname = 'trace_id'"
        ),
    )
    tables = {table for table, _ in found}
    assert "usage" in tables
    assert any(t.startswith("usage_p") for t in tables), tables  # and a month's partition
    assert {method for _, method in found} == {"hash"}
