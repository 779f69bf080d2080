"""Serving the gateway: the client port and the ops port, both by uvicorn with httptools and the gateway's HTTP
limits (``limits.py``), in one process and one event loop."""

from __future__ import annotations

import asyncio
import logging
import socket
from typing import Any

import uvicorn

from interlock.asgiserver import EmbeddedServer
from interlock.gateway.http.asgi import ASGIApp
from interlock.gateway.http.limits import HttpLimits, limited_protocol
from interlock.gateway.settings import GatewaySettings
from interlock.heap import FrozenStartupServer
from interlock.telemetry.metrics import GatewayMetrics

__all__ = ["http_limits", "serve_gateway", "server_options"]

log = logging.getLogger("interlock.gateway")


def http_limits(settings: GatewaySettings) -> HttpLimits:
    return HttpLimits(
        max_header_bytes=settings.max_header_bytes,
        header_timeout_s=settings.header_timeout_s,
        body_timeout_s=settings.body_timeout_s,
        idle_timeout_s=settings.idle_timeout_s,
    )


def server_options(settings: GatewaySettings, metrics: GatewayMetrics) -> dict[str, Any]:
    """uvicorn options of one gateway server (client or ops port): httptools with the limits, no access log, no
    ``server`` header, no proxy headers. Each call makes a protocol class of its own (one sweeper per server)."""
    limits = http_limits(settings)
    return {
        "http": limited_protocol(limits, metrics.limit_trip),
        "timeout_keep_alive": limits.idle_timeout_s,
        "access_log": False,
        "server_header": False,
        "proxy_headers": False,
    }


async def serve_gateway(
    app: ASGIApp,
    ops_app: ASGIApp,
    settings: GatewaySettings,
    metrics: GatewayMetrics,
    *,
    log_level: str,
    sockets: tuple[socket.socket, socket.socket] | None = None,
) -> int:
    """Serve the ops port, then the client port until SIGTERM/SIGINT (uvicorn's graceful shutdown: requests in
    flight finish, the app's lifespan sends its last usage events); then stop the ops port. ``sockets``: the client
    and ops listeners, bound by the caller (so "port in use" is said before anything starts)."""
    client_sock, ops_sock = sockets if sockets is not None else (None, None)
    ops = EmbeddedServer(
        ops_app,
        host=settings.ops_bind_host,
        port=settings.ops_port,
        lifespan="off",
        log_level=log_level.lower(),
        **server_options(settings, metrics),
    )
    try:
        await ops.start(sock=ops_sock)
    except (OSError, RuntimeError, SystemExit) as exc:
        log.error("cannot serve the ops port on %s:%d: %s", settings.ops_bind_host, settings.ops_port, exc)
        return 1
    log.info("ops port (/healthz, /readyz, /metrics) on %s", ops.url)
    config = uvicorn.Config(
        app,
        host=settings.host,
        port=settings.port,
        loop="none",
        lifespan="on",
        log_level=log_level.lower(),
        log_config=None,
        **server_options(settings, metrics),
    )
    server = FrozenStartupServer(config)  # interlock.heap
    try:
        await server.serve(sockets=[client_sock] if client_sock is not None else None)
    finally:
        await asyncio.shield(ops.stop())
    return 0
