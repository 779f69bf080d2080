"""The client port's ``/healthz``, and the ops port (``OpsApp``): ``/healthz``, ``/readyz`` and ``/metrics``.

The ops port is for kubelet probes and Prometheus only; the client Service does not expose it, because
``/metrics`` names every tenant and its spend and ``/readyz`` tells the state of the control-plane link.
"""

from __future__ import annotations

from typing import Any

import orjson
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

from interlock.gateway.context import Services
from interlock.gateway.controlplane.link import ControlPlaneLink
from interlock.gateway.errors import NotFoundError
from interlock.gateway.http.asgi import Receive, Scope, Send, send_bytes
from interlock.gateway.tenancy.limits import Enforcer
from interlock.gatewayconfig.loader import ConfigLoader, ConfigStatus

__all__ = ["OpsApp", "healthz", "metrics", "readyz"]


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


class OpsApp:
    """The ASGI app of the ops port (``ops_host``:``ops_port``)."""

    def __init__(
        self,
        services: Services,
        loader: ConfigLoader,
        link: ControlPlaneLink | None = None,
        enforcer: Enforcer | None = None,
    ) -> None:
        self.services = services
        self.loader = loader
        self.link = link
        self.enforcer = enforcer

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            return
        path = scope["path"]
        if scope["method"] not in ("GET", "HEAD"):
            await send_bytes(send, 405, b'{"error":"method not allowed"}', headers=[(b"allow", b"GET")])
        elif path == "/healthz":
            await healthz(send)
        elif path == "/readyz":
            await readyz(send, self.loader.status, self.link, self.enforcer)
        elif path == "/metrics":
            await metrics(send, self.services)
        else:
            error = NotFoundError(f"Unknown path {path}; the ops port serves /healthz, /readyz and /metrics.")
            await send_bytes(send, error.status, error.openai_body())
