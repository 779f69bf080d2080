"""``python -m bench.routing.gateway --config F --port P --ops-port Q --keys JSON``: the gateway with a table of
keys per tenant (``interlock gateway`` gives every static key the one tenant ``default``; the noisy-tenant
workload needs two)."""

from __future__ import annotations

import argparse
from pathlib import Path

import orjson
import uvloop

from interlock.asgiserver import bind_listener
from interlock.gateway.app import create_gateway_app
from interlock.gateway.dispatch.credentials import MappingSecretResolver
from interlock.gateway.http.serve import serve_gateway
from interlock.gateway.settings import GatewaySettings
from interlock.gateway.tenancy.auth import StaticKeyAuthenticator
from interlock.gatewayconfig.loader import FileConfigSource


def main() -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.routing.gateway")
    parser.add_argument("--config", required=True)
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--ops-port", type=int, required=True)
    parser.add_argument("--keys", required=True, help='{"key": "tenant", ...}')
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
    return uvloop.run(serve_gateway(app, core.ops_app, settings, metrics, log_level="warning", sockets=(sock, ops)))


if __name__ == "__main__":
    raise SystemExit(main())
