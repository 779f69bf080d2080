"""The control-plane app: ``create_app(settings)`` builds the engine, session factory and routers.

Nothing happens at import time. The app works standalone (``interlock api``, uvicorn runs its lifespan, which
disposes the engine at shutdown) and mounted inside another app (``interlock up``), where the owner calls
``dispose_app`` itself. Schema changes go through ``migrate`` (Alembic), never ``create_all``.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

from fastapi import FastAPI
from starlette.responses import JSONResponse

from interlock.api.bodyguard import BodyGuard
from interlock.api.configwatch import ConfigWatch
from interlock.api.console import install_console
from interlock.api.deps import GatewayCredentials
from interlock.api.errors import install_error_handlers
from interlock.api.maintenance import fold_rollups, maintain_usage_storage
from interlock.api.readiness import readiness
from interlock.api.routes import ROUTERS
from interlock.api.routes.gateway import SnapshotCache
from interlock.api.settings import ApiSettings
from interlock.api.unchanged import UnchangedPolls
from interlock.db.migrate import head_revision
from interlock.db.session import create_engine, create_sessionmaker

__all__ = ["create_app", "dispose_app"]

DESCRIPTION = (
    "Interlock's control plane: tenants, API keys, quotas, price overrides, and the usage, cost and trace ledger. "
    "Authenticate with `Authorization: Bearer <admin token>`; a tenant's `sk-il-` key may read its own usage, "
    "costs and traces only. Money is a decimal string in USD."
)


async def dispose_app(app: FastAPI) -> None:
    """Close the app's database connections."""
    await app.state.engine.dispose()


def create_app(settings: ApiSettings | None = None, **engine_options: Any) -> FastAPI:
    settings = settings or ApiSettings()
    engine = create_engine(settings.url, **engine_options)
    head = head_revision()

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        tasks = [
            asyncio.create_task(maintain_usage_storage(engine, settings), name="usage-maintenance"),
            asyncio.create_task(fold_rollups(engine, settings), name="rollup-fold"),
        ]
        app.state.config_watch.start()
        try:
            yield
        finally:
            for task in tasks:
                task.cancel()
            for task in tasks:
                with contextlib.suppress(asyncio.CancelledError):
                    await task
            await app.state.config_watch.stop()
            await dispose_app(app)

    app = FastAPI(title="Interlock control plane", version="v1", description=DESCRIPTION, lifespan=lifespan)
    app.state.settings = settings
    app.state.engine = engine
    app.state.sessions = create_sessionmaker(engine)
    app.state.snapshot_cache = SnapshotCache(settings.snapshot_cache_size)
    app.state.config_watch = ConfigWatch(engine)
    app.state.gateway_credentials = GatewayCredentials()
    install_error_handlers(app)
    app.add_middleware(BodyGuard, settings=settings)
    for router in ROUTERS:
        app.include_router(router)
    if settings.console_enabled:
        install_console(app, settings)
    # Outermost of ours: an unchanged snapshot or spend poll is answered before anything else runs.
    app.add_middleware(
        UnchangedPolls,
        settings=settings,
        watch=app.state.config_watch,
        credentials=app.state.gateway_credentials,
    )

    @app.get("/healthz", include_in_schema=False)
    async def healthz() -> dict[str, str]:
        return {"status": "ok"}

    @app.get("/readyz", include_in_schema=False)
    async def readyz() -> JSONResponse:
        """The database answers and is migrated to head (see ``interlock.api.readiness``)."""
        return await readiness(engine, head)

    return app
