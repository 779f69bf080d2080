"""Query parameters the console's pages share."""

from __future__ import annotations

from typing import Annotated, cast

from fastapi import Query

from interlock.api.crud.analytics import Dimension
from interlock.api.schemas import PRINTABLE

__all__ = ["DIMENSIONS", "PRINTABLE_ID", "FilterQuery", "RangeQuery", "dimension"]

RangeQuery = Annotated[str | None, Query(alias="range", max_length=16)]
FilterQuery = Annotated[str | None, Query(max_length=256, pattern=PRINTABLE)]
PRINTABLE_ID = r"^[^\x00-\x1f\x7f]+$"
"""A path's id: not empty, no control characters (``PRINTABLE``)."""
DIMENSIONS: dict[str, str] = {"tenant": "Tenant", "model": "Model", "route": "Route", "backend": "Backend"}


def dimension(value: str | None, allowed: tuple[str, ...], default: Dimension) -> Dimension:
    """The group the page is asked for, if allowed; else the default."""
    return cast(Dimension, value) if value in allowed else default
