"""The ``interlock`` command: ``up``, ``gateway``, ``api``, ``operator``, ``render-crds``."""

from __future__ import annotations

import argparse
import logging
import os
import sys
from pathlib import Path

__all__ = ["main"]

DEFAULT_MANIFESTS = Path("examples/local")


def _setup_logging(level: str) -> None:
    logging.basicConfig(level=level.upper(), format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    # One line per HTTP request to the control plane (a snapshot poll every few seconds) and per Alembic plugin
    # is noise at INFO; their warnings still show.
    for chatty in ("httpx", "alembic.runtime.plugins"):
        logging.getLogger(chatty).setLevel(max(logging.WARNING, logging.getLogger().level))


def _cmd_up(args: argparse.Namespace) -> int:
    import uvloop

    from interlock.local.up import UpOptions, run_up

    options = UpOptions(
        manifests=args.file,
        host=args.host,
        port=args.port,
        api_port=args.api_port,
        bootstrap_key=args.bootstrap_key,
        admin_token=args.admin_token,
        state_dir=args.state_dir,
    )
    return uvloop.run(run_up(options))


def _cmd_gateway(args: argparse.Namespace) -> int:
    import uvicorn

    from interlock.gateway.app import create_gateway_app
    from interlock.gateway.dispatch.credentials import FileSecretResolver
    from interlock.gateway.settings import GatewaySettings
    from interlock.gatewayconfig.loader import FileConfigSource
    from interlock.local.up import EMBEDDED_MOCK_CHUNK_DELAY_S
    from interlock.mockprovider import MockSettings
    from interlock.mockprovider import create_app as create_mock_app
    from interlock.telemetry.tracing import configure_tracing

    overrides = {k: v for k, v in {"config_file": args.config, "port": args.port, "host": args.host}.items() if v}
    settings = GatewaySettings(**overrides)
    if settings.config_file is None:
        print("interlock gateway: set --config or INTERLOCK_GATEWAY_CONFIG_FILE", file=sys.stderr)
        return 2
    try:
        tracing = configure_tracing("interlock-gateway")
    except ValueError as exc:
        print(f"interlock gateway: {exc}", file=sys.stderr)
        return 2
    app, _ = create_gateway_app(
        settings=settings,
        source=FileConfigSource(settings.config_file),
        resolver=FileSecretResolver(settings.secrets_dir),
        mock_app_factory=lambda: create_mock_app(MockSettings(chunk_delay_s=EMBEDDED_MOCK_CHUNK_DELAY_S)),
        tracing=tracing,
    )
    uvicorn.run(
        app,
        host=settings.host,
        port=settings.port,
        loop="uvloop",
        http="httptools",
        access_log=False,
        log_level=args.log_level.lower(),
        lifespan="on",
        proxy_headers=False,
        server_header=False,
    )
    return 0


def _cmd_operator(args: argparse.Namespace) -> int:
    import uvloop

    try:
        from interlock.operator.main import run_operator
    except ModuleNotFoundError as exc:  # kopf and the Kubernetes client come with the `operator` extra
        if exc.name not in ("kopf", "kubernetes"):
            raise
        print(f"interlock operator: {exc.name} is not installed: pip install 'interlock[operator]'", file=sys.stderr)
        return 2
    from interlock.operator.settings import OperatorSettings

    if not args.all_namespaces and not args.namespace:
        print("interlock operator: name --namespace NS (repeatable) or --all-namespaces", file=sys.stderr)
        return 2
    settings = OperatorSettings()
    liveness = args.liveness if args.liveness is not None else settings.liveness_endpoint
    uvloop.run(
        run_operator(
            settings,
            namespaces=args.namespace or (),
            clusterwide=args.all_namespaces,
            liveness_endpoint=liveness or None,
        )
    )
    return 0


def _cmd_api(args: argparse.Namespace) -> int:
    import uvloop

    if args.write_openapi is not None:
        from interlock.api.openapi import write_openapi

        print(write_openapi(args.write_openapi))
        return 0
    from interlock.api.serve import load_settings, run_api

    settings = load_settings(**{k: v for k, v in {"host": args.host, "port": args.port}.items() if v is not None})
    if isinstance(settings, str):
        print(f"interlock api: {settings}", file=sys.stderr)
        return 2
    migrate = args.migrate or args.migrate_only
    return uvloop.run(run_api(settings, run_migrations=migrate, serve=not args.migrate_only, log_level=args.log_level))


def _cmd_render_crds(args: argparse.Namespace) -> int:
    from interlock.resources.crdgen import write_crds

    for path in write_crds(args.out):
        print(path)
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="interlock", description="Interlock LLM gateway platform")
    parser.add_argument("--log-level", default=os.environ.get("INTERLOCK_LOG_LEVEL", "INFO"))
    sub = parser.add_subparsers(dest="command", required=True)

    up = sub.add_parser("up", help="run the gateway and the control plane on this machine, from manifests")
    up.add_argument("-f", "--file", type=Path, default=DEFAULT_MANIFESTS, help="manifest file or directory")
    up.add_argument("--host", default="127.0.0.1")
    up.add_argument("--port", type=int, default=8080, help="gateway port")
    up.add_argument("--api-port", type=int, default=8081, help="control-plane port")
    up.add_argument("--bootstrap-key", help="the first tenant's API key, sk-il-... (default: a new one, printed)")
    up.add_argument("--admin-token", help="the control plane's admin token (default: a new one, printed)")
    up.add_argument("--state-dir", type=Path, default=Path(".interlock"), help="database and usage spool")
    up.set_defaults(func=_cmd_up)

    gw = sub.add_parser("gateway", help="run the gateway from a compiled GatewayConfig file (in a cluster)")
    gw.add_argument("--config", type=Path, help="GatewayConfig JSON (default: $INTERLOCK_GATEWAY_CONFIG_FILE)")
    gw.add_argument("--host")
    gw.add_argument("--port", type=int)
    gw.set_defaults(func=_cmd_gateway)

    op = sub.add_parser("operator", help="run the Kubernetes operator (kopf) for LLMBackend and Route")
    scope = op.add_mutually_exclusive_group()
    scope.add_argument("-n", "--namespace", action="append", help="namespace to watch (repeatable; globs allowed)")
    scope.add_argument("-A", "--all-namespaces", action="store_true", help="watch every namespace")
    op.add_argument("--liveness", help="liveness endpoint, e.g. http://0.0.0.0:8082/healthz (default: off)")
    op.set_defaults(func=_cmd_operator)

    api = sub.add_parser("api", help="run the control-plane API (tenants, keys, quotas, usage, costs, traces)")
    api.add_argument("--host", help="default: $INTERLOCK_API_HOST or 127.0.0.1")
    api.add_argument("--port", type=int, help="default: $INTERLOCK_API_PORT or 8081")
    api.add_argument("--migrate", action="store_true", help="run the database migrations first")
    api.add_argument("--migrate-only", action="store_true", help="run the database migrations and exit")
    api.add_argument("--write-openapi", type=Path, metavar="PATH", help="write the OpenAPI document and exit")
    api.set_defaults(func=_cmd_api)

    crds = sub.add_parser("render-crds", help="write the CRD YAML generated from the resource models")
    crds.add_argument("--out", type=Path, default=Path("operator/crds"))
    crds.set_defaults(func=_cmd_render_crds)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    _setup_logging(args.log_level)
    code: int = args.func(args)
    return code


if __name__ == "__main__":
    sys.exit(main())
