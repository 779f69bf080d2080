"""The migrations build the models' schema on Postgres and SQLite, go down to nothing and up again, and leave
no autogenerate difference (so every model change comes with its revision)."""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from alembic.script import ScriptDirectory

from interlock.db.base import Base
from interlock.db.migrate import MIGRATIONS_DIR, alembic_config, compare_type, downgrade, include_name, migrate
from interlock.db.session import create_engine
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
