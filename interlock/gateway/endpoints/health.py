"""``/healthz`` (the process is alive), ``/readyz`` (a config is loaded) and ``/metrics`` (Prometheus)."""

from __future__ import annotations

import orjson
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

from interlock.gateway.asgi import Send, send_bytes
from interlock.gateway.context import Services
from interlock.gatewayconfig.loader import ConfigStatus

__all__ = ["healthz", "metrics", "readyz"]


async def healthz(send: Send) -> None:
    await send_bytes(send, 200, b'{"status":"ok"}')


async def readyz(send: Send, status: ConfigStatus) -> None:
    """Ready once a config is loaded. A rejected newer config is shown, but the last good one keeps serving."""
    body = {
        "status": "ready" if status.ready else "not ready",
        "config_version": status.version,
        "loaded_at": status.loaded_at,
        "last_error": status.last_error,
        "last_error_at": status.last_error_at,
    }
    await send_bytes(send, 200 if status.ready else 503, orjson.dumps(body))


async def metrics(send: Send, services: Services) -> None:
    body = generate_latest(services.metrics.registry)
    await send_bytes(send, 200, body, content_type=CONTENT_TYPE_LATEST.encode())
