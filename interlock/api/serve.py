"""``interlock api``: migrate and/or serve the control plane with uvicorn."""

from __future__ import annotations

import logging

import uvicorn
from pydantic import ValidationError

from interlock.api.app import create_app
from interlock.api.settings import ApiSettings

__all__ = ["load_settings", "run_api"]

log = logging.getLogger("interlock.api")


def load_settings(**overrides: object) -> ApiSettings | str:
    """The settings, or why they are refused (one line per problem, without the secret values)."""
    try:
        return ApiSettings(**overrides)  # type: ignore[arg-type]
    except ValidationError as exc:
        return "; ".join(f"{'.'.join(map(str, e['loc'])) or 'settings'}: {e['msg']}" for e in exc.errors())


async def run_api(settings: ApiSettings, *, run_migrations: bool, serve: bool, log_level: str = "info") -> int:
    if run_migrations:
        logging.getLogger("alembic.runtime.plugins").setLevel(logging.WARNING)  # one line per plugin otherwise
        from interlock.db.migrate import migrate

        await migrate(settings.url)
        log.info("database migrated to head")
    if not serve:
        return 0
    config = uvicorn.Config(
        create_app(settings),
        host=settings.host,
        port=settings.port,
        loop="none",
        lifespan="on",
        access_log=False,
        log_level=log_level.lower(),
        server_header=False,
        proxy_headers=False,
    )
    await uvicorn.Server(config).serve()
    return 0
