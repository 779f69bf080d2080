"""``StatusReporter``: the gateway tells its control plane how it is, every ``status_interval_s``.

Off the request path: one task builds a small report (loaded config version, readiness, routes and backends with
their circuit-breaker state, at most ``MAX_STATUS_ITEMS`` of each) from what the gateway already holds and posts
it to ``/v1/gateway/status``. A failed post is logged once per kind of failure and tried again at the next tick;
nothing waits for it and nothing is queued, so a down control plane costs one request per interval.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Callable
from typing import TYPE_CHECKING

import httpx

from interlock.contract.controlplane import (
    GATEWAY_STATUS_PATH,
    MAX_STATUS_ITEMS,
    BackendStatus,
    GatewayStatusReport,
    RouteStatus,
)
from interlock.gateway.controlplane.client import control_plane_client

if TYPE_CHECKING:
    from interlock.gateway.dispatch.runtime import Runtime
    from interlock.gatewayconfig.loader import ConfigStatus

__all__ = ["StatusReporter", "build_report"]

log = logging.getLogger("interlock.gateway")

_TIMEOUT_S = 5.0


def _cut(text: str | None, limit: int) -> str | None:
    return text if text is None or len(text) <= limit else text[: limit - 1] + "…"


def build_report(gateway_id: str, status: ConfigStatus, runtime: Runtime | None, ready: bool) -> GatewayStatusReport:
    """The report from what the gateway holds: routes and backends by name, at most ``MAX_STATUS_ITEMS`` each."""
    routes: list[RouteStatus] = []
    backends: list[BackendStatus] = []
    if runtime is not None:
        now = time.monotonic()
        for name in sorted(runtime.routes)[:MAX_STATUS_ITEMS]:
            plan = runtime.routes[name]
            targets = [f"{t.backend.name}/{t.model}"[:256] for t in (*plan.targets, *plan.fallbacks)][:64]
            routes.append(RouteStatus(name=name[:256], targets=targets))
        for name in sorted(runtime.backends)[:MAX_STATUS_ITEMS]:
            backend = runtime.backends[name]
            backends.append(
                BackendStatus(
                    name=name[:256],
                    provider=backend.config.provider,
                    breaker_open=backend.breaker_open(now),
                    inflight=backend.inflight,
                    unusable_reason=_cut(backend.unusable_reason, 512),
                )
            )
    return GatewayStatusReport(
        gateway_id=gateway_id,
        config_version=_cut(status.version, 128),
        ready=ready,
        loaded_at=status.loaded_at,
        last_error=_cut(status.last_error, 2000),
        routes=routes,
        backends=backends,
    )


class StatusReporter:
    def __init__(
        self,
        *,
        url: str,
        token: str | None,
        interval_s: float,
        transport: httpx.AsyncBaseTransport | None = None,
    ) -> None:
        self.interval_s = interval_s
        self._client = control_plane_client(url, token, timeout_s=_TIMEOUT_S, transport=transport)
        self._task: asyncio.Task[None] | None = None
        self._wake = asyncio.Event()
        self.sent = 0
        self.last_error: str | None = None

    def start(self, collect: Callable[[], GatewayStatusReport]) -> None:
        if self.interval_s <= 0 or self._task is not None:
            return
        self._task = asyncio.get_running_loop().create_task(self._run(collect), name="interlock-status-report")

    def wake(self) -> None:
        """Report now (a new config was applied) rather than at the next tick."""
        self._wake.set()

    async def _run(self, collect: Callable[[], GatewayStatusReport]) -> None:
        while True:
            await self.send(collect())
            self._wake.clear()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wake.wait(), self.interval_s)

    async def send(self, report: GatewayStatusReport) -> bool:
        body = report.model_dump_json().encode()
        try:
            response = await self._client.post(
                GATEWAY_STATUS_PATH, content=body, headers={"content-type": "application/json"}
            )
        except httpx.HTTPError as exc:
            return self._failed(f"{type(exc).__name__}: {exc}")
        if response.status_code != 204:
            return self._failed(f"HTTP {response.status_code}")
        self.sent += 1
        self.last_error = None
        return True

    def _failed(self, error: str) -> bool:
        if error != self.last_error:
            log.warning("status report to the control plane failed: %s", error)
        self.last_error = error
        return False

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None
        await self._client.aclose()
