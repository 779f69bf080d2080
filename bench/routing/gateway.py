"""``python -m bench.routing.gateway --config F --port P --ops-port Q --keys JSON``: the gateway with a table of
keys per tenant (``interlock gateway`` gives every static key the one tenant ``default``; the noisy-tenant
workload needs two)."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

import orjson
import uvloop

from bench.routing import timeline
from interlock.asgiserver import bind_listener
from interlock.gateway.app import create_gateway_app
from interlock.gateway.dispatch.credentials import MappingSecretResolver
from interlock.gateway.http.serve import serve_gateway
from interlock.gateway.settings import GatewaySettings
from interlock.gateway.tenancy.auth import StaticKeyAuthenticator
from interlock.gateway.upstream.client import BackendClient, UpstreamResponse
from interlock.gatewayconfig.loader import FileConfigSource


def stamp_upstream() -> None:
    """``--timeline``: stamp when the gateway sends a request upstream and when the engine's response head is in
    (benchmark instrumentation: wraps ``BackendClient.post`` in this process)."""
    post = BackendClient.post

    async def stamped_post(self: BackendClient, path: str, body: bytes, extra_head: bytes = b"") -> UpstreamResponse:
        timeline.mark("upstream")
        response = await post(self, path, body, extra_head)
        timeline.mark("head")
        return response

    BackendClient.post = stamped_post  # type: ignore[method-assign]


def main() -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.routing.gateway")
    parser.add_argument("--config", required=True)
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--ops-port", type=int, required=True)
    parser.add_argument("--keys", required=True, help='{"key": "tenant", ...}')
    parser.add_argument(
        "--timeline", action="store_true", help="stamp tagged requests, sample the loop's lag; GET /_timeline"
    )
    args = parser.parse_args()
    settings = GatewaySettings(config_file=args.config, port=args.port, ops_port=args.ops_port)
    app, core = create_gateway_app(
        settings=settings,
        source=FileConfigSource(Path(args.config)),
        resolver=MappingSecretResolver({}),
        authenticator=StaticKeyAuthenticator(orjson.loads(args.keys)),
    )
    sock = bind_listener("127.0.0.1", args.port, option="--port")
    ops = bind_listener("127.0.0.1", args.ops_port, option="--ops-port")
    metrics = core.services.metrics
    if not args.timeline:
        return uvloop.run(serve_gateway(app, core.ops_app, settings, metrics, log_level="warning", sockets=(sock, ops)))
    stamp_upstream()
    lag = timeline.LoopLag()
    stamped: Any = timeline.Stamps(app, [], lag)  # its GET /_timeline, on the client port, serves what it saw

    async def serve_stamped() -> int:
        lag.start()
        return await serve_gateway(stamped, core.ops_app, settings, metrics, log_level="warning", sockets=(sock, ops))

    return uvloop.run(serve_stamped())


if __name__ == "__main__":
    raise SystemExit(main())
