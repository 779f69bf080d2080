"""The ``interlock`` command: ``up``, ``gateway``, ``api``, ``operator``, ``render-crds``.

Every wrong input ends in one line per problem on stderr (``interlock.console.report``) and a non-zero exit: 2 for
input to fix (flags, settings, manifests, database schema), 1 for the environment (a port in use, no database, no
cluster). Global options (``--log-level``, ``--log-format``) are accepted before and after the subcommand.
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path
from typing import Any, NoReturn

from interlock import __version__
from interlock.console import build_settings, report
from interlock.telemetry.logs import LOG_FORMATS, LOG_LEVELS, setup_logging

__all__ = ["build_parser", "main"]

DEFAULT_MANIFESTS = Path("examples/local")


def _cmd_up(args: argparse.Namespace) -> int:
    import uvloop

    from interlock.local.up import UpOptions, run_up

    options = UpOptions(
        manifests=args.file,
        host=args.host,
        port=args.port,
        api_port=args.api_port,
        ops_port=args.ops_port,
        bootstrap_key=args.bootstrap_key,
        admin_token=args.admin_token,
        state_dir=args.state_dir,
    )
    return uvloop.run(run_up(options))


def _cmd_gateway(args: argparse.Namespace) -> int:
    import uvloop

    from interlock.asgiserver import ListenError, bind_listener
    from interlock.gateway.app import create_gateway_app
    from interlock.gateway.dispatch.credentials import FileSecretResolver
    from interlock.gateway.http.serve import serve_gateway
    from interlock.gateway.settings import GatewaySettings
    from interlock.gatewayconfig.loader import FileConfigSource, describe_config_error
    from interlock.local.up import EMBEDDED_MOCK_CHUNK_DELAY_S
    from interlock.mockprovider import MockSettings
    from interlock.mockprovider import create_app as create_mock_app
    from interlock.telemetry.tracing import configure_tracing

    given = {"config_file": args.config, "port": args.port, "host": args.host, "ops_port": args.ops_port}
    settings = build_settings(
        GatewaySettings, "INTERLOCK_GATEWAY_", **{k: v for k, v in given.items() if v is not None}
    )
    if isinstance(settings, list):
        report("gateway", [p.replace("--config-file", "--config") for p in settings])
        return 2
    if settings.config_file is None:
        report("gateway", "no config: set --config or INTERLOCK_GATEWAY_CONFIG_FILE to a compiled GatewayConfig file")
        return 2
    source = FileConfigSource(settings.config_file)
    try:
        source.load()  # the same rules as every reload; a first config that fails them is an error here
    except (OSError, ValueError) as exc:
        report("gateway", describe_config_error(settings.config_file, exc))
        return 2
    try:
        tracing = configure_tracing("interlock-gateway")
    except ValueError as exc:
        report("gateway", str(exc))
        return 2
    try:
        sock = bind_listener(
            settings.host,
            settings.port,
            option="--port or INTERLOCK_GATEWAY_PORT",
            host_option="--host or INTERLOCK_GATEWAY_HOST",
        )
    except ListenError as exc:
        report("gateway", str(exc))
        return 1
    try:
        ops_sock = bind_listener(
            settings.ops_bind_host,
            settings.ops_port,
            option="--ops-port or INTERLOCK_GATEWAY_OPS_PORT",
            host_option="INTERLOCK_GATEWAY_OPS_HOST",
        )
    except ListenError as exc:
        sock.close()
        report("gateway", str(exc))
        return 1
    app, core = create_gateway_app(
        settings=settings,
        source=source,
        resolver=FileSecretResolver(settings.secrets_dir),
        mock_app_factory=lambda: create_mock_app(MockSettings(chunk_delay_s=EMBEDDED_MOCK_CHUNK_DELAY_S)),
        tracing=tracing,
    )
    metrics = core.services.metrics
    return uvloop.run(
        serve_gateway(app, core.ops_app, settings, metrics, log_level=args.log_level, sockets=(sock, ops_sock))
    )


def _cmd_operator(args: argparse.Namespace) -> int:
    import uvloop

    try:
        import kopf

        from interlock.operator.login import load_configuration
        from interlock.operator.main import run_operator
    except ModuleNotFoundError as exc:  # kopf and the Kubernetes client come with the `operator` extra
        if exc.name not in ("kopf", "kubernetes_asyncio"):
            raise
        report("operator", f"{exc.name} is not installed: pip install 'interlock[operator]'")
        return 2
    from interlock.operator.settings import OperatorSettings

    if not args.all_namespaces and not args.namespace:
        report("operator", "name the namespaces to watch with --namespace NS (repeatable) or --all-namespaces")
        return 2
    settings = build_settings(OperatorSettings, "INTERLOCK_OPERATOR_")
    if isinstance(settings, list):
        report("operator", settings)
        return 2
    try:
        load_configuration()  # the login kopf makes next; without one it would retry forever
    except kopf.LoginError as exc:
        report("operator", _no_cluster(str(exc)))
        return 1
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


def _no_cluster(reason: str) -> str:
    named = os.environ.get("KUBECONFIG")
    fix = "set KUBECONFIG to a kubeconfig file, or run in a pod with a service account"
    if named and not all(Path(p).is_file() for p in named.split(os.pathsep) if p):
        return f"cannot log in to a cluster: KUBECONFIG={named} names no file; {fix}"
    if not named and not Path("~/.kube/config").expanduser().is_file():
        return f"cannot log in to a cluster: not in a pod, no KUBECONFIG and no ~/.kube/config; {fix}"
    return f"cannot log in to a cluster: {reason}; {fix}"


def _cmd_api(args: argparse.Namespace) -> int:
    import uvloop

    if args.write_openapi is not None:
        from interlock.api.openapi import write_openapi

        try:
            print(write_openapi(args.write_openapi))
        except OSError as exc:
            report("api", f"--write-openapi {args.write_openapi}: {exc.strerror or exc}")
            return 1
        return 0
    from interlock.api.serve import load_settings, run_api

    settings = load_settings(**{k: v for k, v in {"host": args.host, "port": args.port}.items() if v is not None})
    if isinstance(settings, list):
        report("api", settings)
        return 2
    migrate = args.migrate or args.migrate_only
    return uvloop.run(run_api(settings, run_migrations=migrate, serve=not args.migrate_only, log_level=args.log_level))


def _cmd_render_crds(args: argparse.Namespace) -> int:
    from interlock.resources.crdgen import write_crds

    try:
        paths = write_crds(args.out)
    except OSError as exc:
        report("render-crds", f"--out {args.out}: {exc.strerror or exc}")
        return 1
    for path in paths:
        print(path)
    return 0


def _env_choice(name: str, default: str, choices: tuple[str, ...]) -> str:
    value = os.environ.get(name) or default
    value = value.upper() if choices is LOG_LEVELS else value.lower()
    if value not in choices:
        report("", f"{name}={value!r}: choose one of {', '.join(choices)}")
        sys.exit(2)
    return value


def _global_options(parser: argparse.ArgumentParser, *, top: bool) -> None:
    """The same options on the main parser (with the defaults) and on every subcommand (without, so a value given
    before the subcommand is not reset by it)."""

    def default(value: str) -> Any:
        return value if top else argparse.SUPPRESS

    parser.add_argument(
        "--log-level",
        type=str.upper,
        choices=LOG_LEVELS,
        default=default(_env_choice("INTERLOCK_LOG_LEVEL", "INFO", LOG_LEVELS)),
        help="log level (default: INFO, or $INTERLOCK_LOG_LEVEL)",
    )
    parser.add_argument(
        "--log-format",
        choices=LOG_FORMATS,
        default=default(_env_choice("INTERLOCK_LOG_FORMAT", "text", LOG_FORMATS)),
        help="text for a terminal, json for one JSON object per line (default: text, or $INTERLOCK_LOG_FORMAT)",
    )


class _Parser(argparse.ArgumentParser):
    """A wrong flag is one line that says where to look, not the whole usage."""

    def error(self, message: str) -> NoReturn:
        print(f"{self.prog}: {message} (see {self.prog} --help)", file=sys.stderr)
        sys.exit(2)


class _Help(argparse.ArgumentDefaultsHelpFormatter):
    """Shows each option's default, except where the help text already says it."""

    def _get_help_string(self, action: argparse.Action) -> str | None:
        text = action.help or ""
        if "default" in text or action.default in (None, False) or not action.option_strings:
            return text
        return super()._get_help_string(action)


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(
        prog="interlock",
        description="Interlock: a Kubernetes-operated, multi-tenant LLM gateway.",
        formatter_class=_Help,
    )
    parser.add_argument("--version", action="version", version=f"interlock {__version__}")
    _global_options(parser, top=True)
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND", parser_class=_Parser)

    def command(name: str, help_: str) -> argparse.ArgumentParser:
        cmd = sub.add_parser(name, help=help_, description=help_[0].upper() + help_[1:] + ".", formatter_class=_Help)
        _global_options(cmd, top=False)
        return cmd

    up = command("up", "run the gateway and the control plane on this machine, from manifests")
    up.add_argument("-f", "--file", type=Path, default=DEFAULT_MANIFESTS, help="manifest file or directory")
    up.add_argument("--host", default="127.0.0.1", help="address both servers listen on")
    up.add_argument("--port", type=int, default=8080, help="gateway port (0: any free port)")
    up.add_argument("--api-port", type=int, default=8081, help="control-plane port (0: any free port)")
    up.add_argument(
        "--ops-port", type=int, default=8090, help="gateway ops port: /healthz, /readyz, /metrics (0: any free port)"
    )
    up.add_argument(
        "--bootstrap-key",
        help="the first tenant's API key, sk-il-... (default: the one kept in --state-dir, else a new one; printed)",
    )
    up.add_argument(
        "--admin-token",
        help="the control plane's admin token (default: the one kept in --state-dir, else a new one; printed)",
    )
    up.add_argument(
        "--state-dir",
        type=Path,
        default=Path(".interlock"),
        help="the SQLite database, the usage spool and the admin token and key kept across restarts",
    )
    up.set_defaults(func=_cmd_up)

    gw = command("gateway", "run the gateway from a compiled GatewayConfig file (in a cluster)")
    gw.add_argument("--config", type=Path, help="GatewayConfig JSON (default: $INTERLOCK_GATEWAY_CONFIG_FILE)")
    gw.add_argument("--host", help="listen address (default: $INTERLOCK_GATEWAY_HOST or 127.0.0.1)")
    gw.add_argument("--port", type=int, help="listen port (default: $INTERLOCK_GATEWAY_PORT or 8080)")
    gw.add_argument(
        "--ops-port", type=int, help="/healthz, /readyz and /metrics (default: $INTERLOCK_GATEWAY_OPS_PORT or 8090)"
    )
    gw.set_defaults(func=_cmd_gateway)

    op = command("operator", "run the Kubernetes operator (kopf) for LLMBackend and Route")
    scope = op.add_mutually_exclusive_group()
    scope.add_argument(
        "-n", "--namespace", action="append", help="namespace to watch (repeatable; globs allowed; default: none)"
    )
    scope.add_argument("-A", "--all-namespaces", action="store_true", help="watch every namespace (default: off)")
    op.add_argument(
        "--liveness",
        help="liveness endpoint, e.g. http://0.0.0.0:8082/healthz (default: $INTERLOCK_OPERATOR_LIVENESS_ENDPOINT, "
        "else off)",
    )
    op.set_defaults(func=_cmd_operator)

    api = command("api", "run the control-plane API (tenants, keys, quotas, usage, costs, traces)")
    api.add_argument("--host", help="listen address (default: $INTERLOCK_API_HOST or 127.0.0.1)")
    api.add_argument("--port", type=int, help="listen port (default: $INTERLOCK_API_PORT or 8081)")
    api.add_argument("--migrate", action="store_true", help="run the database migrations first (default: off)")
    api.add_argument("--migrate-only", action="store_true", help="run the database migrations and exit (default: off)")
    api.add_argument(
        "--write-openapi", type=Path, metavar="PATH", help="write the OpenAPI document and exit (default: off)"
    )
    api.set_defaults(func=_cmd_api)

    crds = command("render-crds", "write the CRD YAML generated from the resource models")
    crds.add_argument("--out", type=Path, default=Path("operator/crds"), help="directory to write to")
    crds.set_defaults(func=_cmd_render_crds)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    setup_logging(args.log_level, args.log_format)
    code: int = args.func(args)
    return code


if __name__ == "__main__":
    sys.exit(main())
