"""Before serving: can the database be opened, and is its schema the one this version of Interlock needs?

Each answer is one line a user can act on (the URL without its password, and what to run), so ``interlock api``
and ``interlock up`` refuse clearly instead of answering 500s or printing a driver's traceback.
"""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import sqlalchemy as sa
from alembic.script import ScriptDirectory
from sqlalchemy.engine import URL, Connection, make_url
from sqlalchemy.exc import SQLAlchemyError

from interlock.db.migrate import alembic_config
from interlock.db.session import create_engine, normalize_url

__all__ = ["DATABASE_ERRORS", "describe_database_error", "head_revision", "safe_url", "schema_problem"]

DATABASE_ERRORS: tuple[type[BaseException], ...] = (SQLAlchemyError, OSError, TimeoutError)
"""What opening or migrating a database raises when the database, not Interlock, is the problem."""


def safe_url(url: str | URL) -> str:
    """The URL as a user wrote it, without the password."""
    return make_url(url).render_as_string(hide_password=True)


def describe_database_error(url: str | URL, exc: BaseException) -> str:
    """One line: which database, and the driver's reason without its traceback."""
    orig: Any = getattr(exc, "orig", None) or exc
    reason = " ".join(str(orig).split()) or type(orig).__name__
    parsed = normalize_url(url)
    hint = ""
    if parsed.get_backend_name() == "sqlite" and "unable to open" in reason:
        hint = "; does its directory exist?"
    elif "does not exist" in reason and parsed.database:
        hint = f"; create it first (for example: createdb {parsed.database})"
    elif isinstance(orig, OSError | TimeoutError) or "refused" in reason:
        hint = "; is the database server running and reachable?"
    return f"cannot open the database {safe_url(url)}: {reason}{hint}"


def head_revision() -> str:
    head = ScriptDirectory.from_config(alembic_config()).get_current_head()
    assert head is not None, "migrations/ has no revisions"
    return head


def _current_revision(connection: Connection) -> str | None:
    if not sa.inspect(connection).has_table("alembic_version"):
        return None
    return connection.execute(sa.text("SELECT version_num FROM alembic_version")).scalar()


async def schema_problem(url: str | URL) -> str | None:
    """None when the database is at the migrations' head; else why not, and what to do. Raises the driver's
    error (one of ``DATABASE_ERRORS``) when the database cannot be opened. A SQLite file that does not exist is
    not created."""
    parsed = normalize_url(url)
    file = parsed.database if parsed.get_backend_name() == "sqlite" and parsed.database != ":memory:" else None
    if file and not await asyncio.to_thread(Path(file).exists):
        return f"the database file {file} does not exist: run `interlock api --migrate-only` (or start with --migrate)"
    engine = create_engine(url)
    try:
        async with engine.connect() as connection:
            current = await connection.run_sync(_current_revision)
    finally:
        await engine.dispose()
    head = head_revision()
    if current == head:
        return None
    if current is None:
        return (
            f"the database {safe_url(url)} has no Interlock schema yet: run `interlock api --migrate-only` "
            "(or start with --migrate)"
        )
    script = ScriptDirectory.from_config(alembic_config())
    if current not in {rev.revision for rev in script.walk_revisions()}:
        return (
            f"the database {safe_url(url)} is at revision {current}, which this version of Interlock does not know "
            f"(its newest is {head}): a newer version migrated it"
        )
    return (
        f"the database {safe_url(url)} is at revision {current}, not {head}: run `interlock api --migrate-only` "
        "(or start with --migrate)"
    )
