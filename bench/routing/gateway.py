"""``python -m bench.routing.gateway --config F --port P --ops-port Q --keys JSON``: the gateway with a table of
keys per tenant (``interlock gateway`` gives every static key the one tenant ``default``; the noisy-tenant
workload needs two)."""

from __future__ import annotations

import argparse
import gc
import signal
import time
from pathlib import Path
from typing import Any

import orjson
import uvloop

from bench.routing import timeline
from interlock import heap
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


def report_gc_on_sigusr1() -> None:
    """``--gc-report``: on SIGUSR1, print one JSON line: the objects the collector tracks and has frozen, and two
    full collections timed (``bench.routing.gcpause``)."""

    def report(*_: Any) -> None:
        tracked, frozen = len(gc.get_objects()), gc.get_freeze_count()
        times = []
        for _ in range(2):
            start = time.perf_counter()
            gc.collect()
            times.append(round((time.perf_counter() - start) * 1000, 1))
        print(orjson.dumps({"tracked": tracked, "frozen": frozen, "full_ms": times}).decode(), flush=True)

    signal.signal(signal.SIGUSR1, report)


def main() -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.routing.gateway")
    parser.add_argument("--config", required=True)
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--ops-port", type=int, required=True)
    parser.add_argument("--keys", required=True, help='{"key": "tenant", ...}')
    parser.add_argument(
        "--timeline", action="store_true", help="stamp tagged requests, sample the loop's lag; GET /_timeline"
    )
    parser.add_argument("--gc-report", action="store_true", help="SIGUSR1: print GC figures (bench.routing.gcpause)")
    parser.add_argument("--no-freeze", action="store_true", help="do not freeze the startup heap (interlock.heap)")
    args = parser.parse_args()
    if args.gc_report:
        report_gc_on_sigusr1()
    if args.no_freeze:
        heap.freeze_startup_heap = lambda: 0  # type: ignore[assignment]
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
