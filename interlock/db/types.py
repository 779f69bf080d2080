"""Column types that behave the same on Postgres and SQLite.

- ``UTCDateTime``: ``timestamptz`` on Postgres; on SQLite a naive UTC timestamp (which sorts and compares as
  text correctly). Values go in as aware datetimes (naive ones are taken as UTC) and always come back aware, in UTC.
- ``Money``: ``NUMERIC(20, 9)`` on both. Postgres keeps it exact natively. SQLite has no decimal type, so the
  value is stored as an integer count of nano-dollars (kept as an integer by the column's NUMERIC affinity):
  ``SUM()`` then adds integers, exactly, and the result comes back as a ``Decimal``.
"""

from __future__ import annotations

import datetime as dt
from decimal import Decimal
from typing import Any

from sqlalchemy import BigInteger, DateTime, Dialect, Numeric
from sqlalchemy.types import TypeDecorator, TypeEngine

__all__ = ["MONEY_PLACES", "Money", "UTCDateTime", "to_money"]

MONEY_PLACES = 9
_NANO = Decimal(10) ** MONEY_PLACES
_QUANTUM = Decimal(1).scaleb(-MONEY_PLACES)


def to_money(value: Decimal | float | int | str) -> Decimal:
    """A USD amount rounded to the nano-dollar; floats are read through their shortest repr, so 0.1 is 0.1."""
    amount = value if isinstance(value, Decimal) else Decimal(str(value))
    return amount.quantize(_QUANTUM)


class UTCDateTime(TypeDecorator[dt.datetime]):
    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: dt.datetime | None, dialect: Dialect) -> dt.datetime | None:
        if value is None:
            return None
        value = value.replace(tzinfo=dt.UTC) if value.tzinfo is None else value.astimezone(dt.UTC)
        return value.replace(tzinfo=None) if dialect.name == "sqlite" else value

    def process_result_value(self, value: Any, dialect: Dialect) -> dt.datetime | None:
        if value is None:
            return None
        if isinstance(value, str):  # SQLite expressions (e.g. MIN()) may come back as text
            value = dt.datetime.fromisoformat(value)
        assert isinstance(value, dt.datetime)
        return value.replace(tzinfo=dt.UTC) if value.tzinfo is None else value.astimezone(dt.UTC)


class Money(TypeDecorator[Decimal]):
    impl = Numeric(20, MONEY_PLACES)
    cache_ok = True

    def load_dialect_impl(self, dialect: Dialect) -> TypeEngine[Any]:
        if dialect.name == "sqlite":
            return dialect.type_descriptor(BigInteger())
        return dialect.type_descriptor(Numeric(20, MONEY_PLACES, asdecimal=True))

    def process_bind_param(self, value: Decimal | float | int | None, dialect: Dialect) -> Any:
        if value is None:
            return None
        amount = to_money(value)
        return int(amount * _NANO) if dialect.name == "sqlite" else amount

    def process_result_value(self, value: Any, dialect: Dialect) -> Decimal | None:
        if value is None:
            return None
        if dialect.name == "sqlite":
            return (Decimal(int(value)) / _NANO).quantize(_QUANTUM)
        return to_money(value)
