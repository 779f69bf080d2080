"""Multi-row writes on Postgres in one statement each: the rows go as one JSON document (``orjson``, in C) and
Postgres takes them apart (``INSERT … SELECT … FROM json_to_recordset($1::json) AS r(col type, …)``), sent through
asyncpg inside the session's transaction.

This is what makes ingest fast: one round trip and no per-row or per-value work in Python, where SQLAlchemy's
``executemany`` binds every row and asyncpg's array parameters check every element. Column types come from the
table's metadata; values must already be what the column stores (aware UTC datetimes, quantized ``Decimal``
money, strings without NUL; a ``json`` column's value is a JSON-ready object).
"""

from __future__ import annotations

from collections.abc import Sequence
from decimal import Decimal
from functools import cache
from typing import Any

import orjson
from sqlalchemy import Table, text
from sqlalchemy.dialects import postgresql
from sqlalchemy.ext.asyncio import AsyncSession

from interlock.api.crud.dialect import driver_connection

__all__ = ["json_insert"]

_DIALECT = postgresql.dialect()  # type: ignore[no-untyped-call]


def _plain(value: Any) -> Any:
    if isinstance(value, Decimal):
        return str(value)
    raise TypeError(f"{type(value).__name__} is not JSON serializable")


@cache
def _statement(table: Table, columns: tuple[str, ...], conflict: tuple[str, ...] | None, update: str | None,
               returning: tuple[str, ...]) -> str:  # fmt: skip
    record = ", ".join(f"{c} {table.c[c].type.compile(dialect=_DIALECT)}" for c in columns)
    names = ", ".join(columns)
    sql = f'INSERT INTO "{table.name}" ({names}) SELECT {names} FROM json_to_recordset($1::json) AS r({record})'  # noqa: S608
    if conflict is not None:
        target = ", ".join(conflict)
        if update is None:
            sql += f" ON CONFLICT ({target}) DO NOTHING"
        elif update == "add":
            sums = ", ".join(f"{c} = {table.name}.{c} + EXCLUDED.{c}" for c in columns if c not in conflict)
            sql += f" ON CONFLICT ({target}) DO UPDATE SET {sums}"
        else:
            sql += f" ON CONFLICT ({target}) DO UPDATE SET {update}"
    if returning:
        sql += f" RETURNING {', '.join(returning)}"
    return sql


async def json_insert(
    session: AsyncSession,
    table: Table,
    rows: Sequence[dict[str, Any]],
    *,
    conflict: Sequence[str] | None = None,
    update: str | None = None,
    returning: Sequence[str] = (),
) -> list[Any]:
    """Insert ``rows`` (dicts with the same keys) in one statement. ``conflict``: the unique key for ``ON
    CONFLICT``; ``update``: None (``DO NOTHING``), ``"add"`` (add every other column to the stored one) or a SET
    clause. Returns the ``returning`` columns of the rows written."""
    if not rows:
        return []
    columns = tuple(rows[0])
    sql = _statement(table, columns, tuple(conflict) if conflict is not None else None, update, tuple(returning))
    document = orjson.dumps(rows, default=_plain).decode()
    driver = await driver_connection(session)
    if not driver.is_in_transaction():  # the adapter begins lazily, at its first statement
        await session.execute(text("SELECT 1"))
    if returning:
        return list(await driver.fetch(sql, document))
    await driver.execute(sql, document)
    return []
