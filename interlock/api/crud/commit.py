"""Committing a change that a unique constraint may refuse."""

from __future__ import annotations

from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from interlock.api.errors import ConflictError

__all__ = ["commit_unique"]


async def commit_unique(session: AsyncSession, conflict: str) -> None:
    """Commit; when a unique constraint refuses it, roll back and raise ``ConflictError(conflict)`` (a 409)."""
    try:
        await session.commit()
    except IntegrityError as exc:
        await session.rollback()
        raise ConflictError(conflict) from exc
