"""``GET /readyz`` of the control plane: the database answers and its schema is at the migrations' head.

Kubernetes sends traffic to an API pod only once this is 200, so a pod never serves on a database that is down or
not migrated yet (the chart migrates in a hook Job or in the pod's init container first). The body says which
check failed, with the exception's type only: never the URL or credentials.
"""

from __future__ import annotations

import asyncio
from typing import Any

from alembic.runtime.migration import MigrationContext
from sqlalchemy.engine import Connection
from sqlalchemy.ext.asyncio import AsyncEngine
from starlette.responses import JSONResponse

__all__ = ["CHECK_TIMEOUT_S", "readiness"]

CHECK_TIMEOUT_S = 3.0


def _current(connection: Connection) -> str | None:
    revision: str | None = MigrationContext.configure(connection).get_current_revision()
    return revision


async def readiness(engine: AsyncEngine, head: str | None) -> JSONResponse:
    body: dict[str, Any] = {"migrations": {"head": head}}
    try:
        async with asyncio.timeout(CHECK_TIMEOUT_S), engine.connect() as connection:
            current = await connection.run_sync(_current)
    except Exception as exc:  # any failure to reach the database means not ready; say which kind
        reason = "timed out" if isinstance(exc, TimeoutError) else type(exc).__name__
        return JSONResponse({"status": "unavailable", "database": f"unreachable ({reason})", **body}, status_code=503)
    body["migrations"]["current"] = current
    if current != head:
        return JSONResponse({"status": "not migrated", "database": "ok", **body}, status_code=503)
    return JSONResponse({"status": "ready", "database": "ok", **body})
