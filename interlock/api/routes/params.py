"""Path and query parameters shared by the routers, bounded so garbage is a 422 and never reaches the database."""

from __future__ import annotations

from typing import Annotated

from fastapi import Path, Query

from interlock.api.errors import InvalidError
from interlock.api.schemas import PRINTABLE, Moment
from interlock.api.settings import ApiSettings

__all__ = ["CursorQuery", "FilterQuery", "IdPath", "LimitQuery", "MomentQuery", "page_size"]

IdPath = Annotated[str, Path(min_length=1, max_length=64, pattern=r"^[A-Za-z0-9._-]+$")]
FilterQuery = Annotated[str | None, Query(min_length=1, max_length=1024, pattern=PRINTABLE)]
MomentQuery = Annotated[Moment | None, Query(description="ISO 8601; naive means UTC.")]
LimitQuery = Annotated[int | None, Query(ge=1, description="Page size (default 100; at most max_page_size, 1000).")]
CursorQuery = Annotated[str | None, Query(max_length=512, description="The next_cursor of the previous page.")]


def page_size(limit: int | None, settings: ApiSettings) -> int:
    if limit is None:
        return min(settings.default_page_size, settings.max_page_size)
    if limit > settings.max_page_size:
        raise InvalidError(f"limit must be at most {settings.max_page_size} (got {limit}); page with next_cursor")
    return limit
