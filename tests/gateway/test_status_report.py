"""The gateway reports its state to the control plane: loaded config version, readiness, routes and backends
with their circuit breakers, on start, on every config change and every ``status_interval_s``."""

from __future__ import annotations

import socket
from contextlib import AsyncExitStack

from tests.gateway.contract_server import gateway_id
from tests.gateway.enforcement_support import HELLO, cp_settings
from tests.gateway.harness import Servers, backend, config, route, start_gateway
from tests.support import eventually


def closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
    return port


async def test_the_gateway_reports_its_config_routes_and_an_opening_breaker(control_plane, tmp_path):
    cp = control_plane
    tenant = cp.add_tenant("acme")
    _, key = cp.add_key(tenant)
    dead = config(backend("a", f"http://127.0.0.1:{closed_port()}/v1"), route("chat", [("a", "m1")]))
    settings = cp_settings(cp, tmp_path / "spool", gateway_id=gateway_id("gw-status"), status_interval_s=0.2)
    async with AsyncExitStack() as stack:
        gw = await start_gateway(stack, Servers(stack), dead, keys=None, api_key=key, **settings)
        await eventually(lambda: any(r.ready for r in cp.status_reports), what="a ready report")
        report = next(r for r in cp.status_reports if r.ready)
        assert report.gateway_id == gateway_id("gw-status")
        assert report.config_version
        assert [(r.name, r.targets) for r in report.routes] == [("chat", ["a/m1"])]
        assert [(b.name, b.breaker_open) for b in report.backends] == [("a", False)]
        for _ in range(5):  # the upstream refuses connections: five failures in a row open the breaker
            await gw.http.post("/v1/chat/completions", json={"model": "chat", "messages": HELLO})
        await eventually(lambda: cp.status_reports[-1].backends[0].breaker_open, what="a report with the breaker open")
