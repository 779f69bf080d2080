"""``interlock api``: migrate and/or serve the control plane with uvicorn."""

from __future__ import annotations

import logging

import uvicorn

from interlock.api.app import create_app
from interlock.api.settings import ApiSettings
from interlock.asgiserver import ListenError, bind_listener
from interlock.console import build_settings, report
from interlock.db.check import DATABASE_ERRORS, describe_database_error, schema_problem
from interlock.db.migrate import migrate
from interlock.heap import FrozenStartupServer

__all__ = ["load_settings", "run_api"]

log = logging.getLogger("interlock.api")


def load_settings(**overrides: object) -> ApiSettings | list[str]:
    """The settings, or why they are refused (one line per problem, without the secret values)."""
    return build_settings(ApiSettings, "INTERLOCK_API_", **overrides)


async def run_api(settings: ApiSettings, *, run_migrations: bool, serve: bool, log_level: str = "info") -> int:
    """Migrate and/or serve; refuse with one line (and exit status 1 or 2) when the port is taken, the database
    cannot be opened, or its schema is not this version's. The port is bound before anything is migrated."""
    sock = None
    if serve:
        try:
            sock = bind_listener(
                settings.host,
                settings.port,
                option="--port or INTERLOCK_API_PORT",
                host_option="--host or INTERLOCK_API_HOST",
            )
        except ListenError as exc:
            report("api", str(exc))
            return 1
    try:
        if run_migrations:
            await migrate(settings.url)
            log.info("database migrated to head")
        problem = await schema_problem(settings.url)
    except DATABASE_ERRORS as exc:
        report("api", describe_database_error(settings.url, exc))
        return 1
    if problem is not None:
        report("api", problem)
        return 2
    if sock is None:
        return 0
    config = uvicorn.Config(
        create_app(settings),
        host=settings.host,
        port=settings.port,
        loop="none",
        lifespan="on",
        access_log=False,
        log_config=None,
        log_level=log_level.lower(),
        server_header=False,
        proxy_headers=False,
    )
    await FrozenStartupServer(config).serve(sockets=[sock])  # interlock.heap
    return 0
