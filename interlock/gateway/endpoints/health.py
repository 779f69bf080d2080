"""``/healthz`` (the process is alive), ``/readyz`` (a config is loaded) and ``/metrics`` (Prometheus)."""

from __future__ import annotations

from typing import Any

import orjson
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

from interlock.gateway.context import Services
from interlock.gateway.controlplane.link import ControlPlaneLink
from interlock.gateway.http.asgi import Send, send_bytes
from interlock.gateway.tenancy.limits import Enforcer
from interlock.gatewayconfig.loader import ConfigStatus

__all__ = ["healthz", "metrics", "readyz"]


async def healthz(send: Send) -> None:
    await send_bytes(send, 200, b'{"status":"ok"}')


async def readyz(
    send: Send, status: ConfigStatus, link: ControlPlaneLink | None = None, enforcer: Enforcer | None = None
) -> None:
    """Ready once a config is loaded and, with a control plane, a key snapshot is known (from it or the spool).
    Routes the loaded config leaves out (``rejected_routes``, with the reason), a rejected newer config, an
    unreachable control plane, usage events waiting in the spool and a Redis outage are shown, but the last good
    config and snapshot keep serving."""
    ready = status.ready and (link is None or link.ready)
    body: dict[str, Any] = {
        "status": "ready" if ready else "not ready",
        "config_version": status.version,
        "loaded_at": status.loaded_at,
        "last_error": status.last_error,
        "last_error_at": status.last_error_at,
        "rejected_routes": status.rejected_routes or {},
    }
    if link is not None:
        body["control_plane"] = await link.status()
    if enforcer is not None:
        body["limits"] = enforcer.status
    await send_bytes(send, 200 if ready else 503, orjson.dumps(body))


async def metrics(send: Send, services: Services) -> None:
    body = generate_latest(services.metrics.registry)
    await send_bytes(send, 200, body, content_type=CONTENT_TYPE_LATEST.encode())
