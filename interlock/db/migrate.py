"""Run the Alembic migrations from code (``interlock api --migrate-only``, ``interlock up``, tests).

The revisions live in the repository's top-level ``migrations/`` (``alembic.ini`` points there too); set
``INTERLOCK_MIGRATIONS_DIR`` when the package is installed elsewhere. ``migrations/env.py`` runs on the
connection handed over in ``config.attributes`` when there is one, so this works inside a running event loop.
"""

from __future__ import annotations

import os
import re
from pathlib import Path
from typing import Any

import sqlalchemy as sa
from alembic import command
from alembic.config import Config
from alembic.script import ScriptDirectory
from sqlalchemy.engine import URL

from interlock.db.session import create_engine, normalize_url
from interlock.db.types import MONEY_PLACES, Money, UTCDateTime

__all__ = [
    "MIGRATIONS_DIR",
    "alembic_config",
    "compare_type",
    "downgrade",
    "head_revision",
    "include_name",
    "migrate",
    "render_item",
]

MIGRATIONS_DIR = Path(os.environ.get("INTERLOCK_MIGRATIONS_DIR") or Path(__file__).resolve().parents[2] / "migrations")
# Concurrent `interlock api --migrate-only` runs (API pods' init containers, a hook Job) take turns on Postgres:
# a transaction-scoped advisory lock, released at commit. The key is arbitrary but fixed ("ILMIGRAT").
_PG_MIGRATION_LOCK = 0x494C4D4947524154


def alembic_config(database_url: str | URL | None = None) -> Config:
    """An Alembic config for ``migrations/`` (no ini file needed); the URL, when given, in async-driver form."""
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS_DIR))
    if database_url is not None:
        url = normalize_url(database_url).render_as_string(hide_password=False)
        config.set_main_option("sqlalchemy.url", url.replace("%", "%%"))
    return config


def head_revision() -> str | None:
    """The revision ``alembic upgrade head`` leads to (what a migrated database reports)."""
    head: str | None = ScriptDirectory.from_config(alembic_config()).get_current_head()
    return head


async def migrate(database_url: str | URL, revision: str = "head") -> None:
    """``alembic upgrade <revision>`` (default ``head``) on the database, in this event loop."""
    await _run(database_url, lambda config: command.upgrade(config, revision))


async def downgrade(database_url: str | URL, revision: str = "base") -> None:
    await _run(database_url, lambda config: command.downgrade(config, revision))


async def _run(database_url: str | URL, action: Any) -> None:
    config = alembic_config(database_url)
    engine = create_engine(database_url)
    try:
        async with engine.begin() as connection:
            if connection.dialect.name == "postgresql":
                await connection.execute(sa.text("SELECT pg_advisory_xact_lock(:key)"), {"key": _PG_MIGRATION_LOCK})

            def run(sync_connection: Any) -> None:
                config.attributes["connection"] = sync_connection
                action(config)

            await connection.run_sync(run)
    finally:
        await engine.dispose()


def render_item(type_: str, obj: Any, _autogen_context: Any) -> str | bool:
    """Autogenerate renders our portable types as the plain SQL types they stand for, so revisions import
    nothing from ``interlock``."""
    if type_ == "type" and isinstance(obj, UTCDateTime):
        return "sa.DateTime(timezone=True)"
    if type_ == "type" and isinstance(obj, Money):
        return f"sa.Numeric(precision=20, scale={MONEY_PLACES})"
    return False


_PARTITION = re.compile(r"^(usage|spans)_p\d{6}$")


def include_name(name: str | None, type_: str, _parent_names: Any) -> bool:
    """Autogenerate leaves the monthly partitions of ``usage`` and ``spans`` alone: they are made at run time
    (``interlock.api.crud.partitions``), not by the models."""
    return not (type_ == "table" and name is not None and _PARTITION.match(name))


def compare_type(
    _context: Any, _inspected_column: Any, _metadata_column: Any, inspected_type: Any, metadata_type: Any
) -> bool | None:
    """``Money`` is stored as integer nano-dollars on SQLite but declared NUMERIC(20, 9) everywhere: compare the
    declared type. Everything else: Alembic's own comparison (as ``compare_type=True``)."""
    if isinstance(metadata_type, Money):
        return not (
            isinstance(inspected_type, sa.Numeric)
            and (inspected_type.precision, inspected_type.scale) == (20, MONEY_PLACES)
        )
    return None
