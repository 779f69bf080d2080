"""``interlock up``: the gateway and the control plane on one machine, from a directory of manifests.

One process serves both, as separate servers: the gateway on ``--port`` (with the embedded mock provider, and its
ops port, ``/readyz`` and ``/metrics``, on ``--ops-port``) and the control plane on ``--api-port``, on SQLite in
``.interlock/`` (or ``DATABASE_URL``), migrated at start. The gateway talks to the control plane exactly as in a
cluster: it polls the key snapshot and sends usage events over HTTP, through its spool, with a gateway credential
of scope ``local/default`` minted at start under a signing key made for this run (gateway id
``local/default/<hostname>``). The first tenant (``default``) and a key are created on the first start and
printed, with the admin token of the control plane and the URL of its console (``/console/``); both are kept
in the state directory and printed again on every start.

Every check that can fail (the manifests, the flags, the three ports) runs before anything is written.
"""

from __future__ import annotations

import asyncio
import logging
import os
import re
import secrets
import signal
import socket
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from pydantic import SecretStr

from interlock.asgiserver import EmbeddedServer, ListenError, bind_listener
from interlock.console import report
from interlock.contract.gatewaycred import mint_gateway_credential
from interlock.contract.keys import is_well_formed_key
from interlock.gateway.app import create_gateway_app
from interlock.gateway.http.serve import server_options
from interlock.gateway.settings import GatewaySettings
from interlock.heap import freeze_startup_heap
from interlock.local.source import ManifestSource
from interlock.local.state import UpState, read_state, write_state
from interlock.mockprovider import MockSettings
from interlock.mockprovider import create_app as create_mock_app
from interlock.resources.manifests import ManifestError
from interlock.telemetry.tracing import configure_tracing

if TYPE_CHECKING:
    from sqlalchemy.ext.asyncio import AsyncSession

__all__ = ["UpOptions", "run_up"]

log = logging.getLogger("interlock.up")

EMBEDDED_MOCK_CHUNK_DELAY_S = 0.02  # paced like a real engine, so streaming is visible
STATE_DIR = Path(".interlock")  # the SQLite database and the gateway's usage spool, under the working directory
GATEWAY_SCOPE = "local/default"
"""The scope of the embedded gateway's credential: ``<namespace>/<gateway>`` as in a cluster."""


@dataclass(frozen=True)
class UpOptions:
    manifests: Path
    host: str = "127.0.0.1"
    port: int = 8080
    api_port: int = 8081
    ops_port: int = 8090
    bootstrap_key: str | None = None
    admin_token: str | None = None
    namespace: str = "default"
    state_dir: Path = STATE_DIR


def _banner(url: str, api_url: str, ops_url: str, key: str, admin_token: str, models: list[str]) -> str:
    first = models[0] if models else "<model>"
    return "\n".join(
        [
            "",
            f"  Interlock gateway   {url}/v1",
            f"  API key             {key}",
            f"  Models              {', '.join(models) or '(none)'}",
            f"  Gateway ops         {ops_url}  (/metrics, /readyz)",
            f"  Control plane       {api_url}/v1",
            f"  Console             {api_url}/console/  (log in with the admin token or an API key)",
            f"  Admin token         {admin_token}",
            "",
            "  Try it:",
            f"    curl {url}/v1/chat/completions -H 'Authorization: Bearer {key}' \\",
            "      -H 'Content-Type: application/json' \\",
            f'      -d \'{{"model": "{first}", "messages": [{{"role": "user", "content": "Hello"}}]}}\'',
            f"    curl {api_url}/v1/usage -H 'Authorization: Bearer {admin_token}'",
            "",
            "  Edit the manifests and the gateway reloads them. Ctrl-C stops.",
            "",
        ]
    )


@dataclass(frozen=True)
class _ControlPlane:
    server: EmbeddedServer
    admin_token: str
    key: str
    gateway_credential: str


def local_gateway_id() -> str:
    """``local/default/<hostname>`` (``up`` when the hostname has nothing usable)."""
    name = re.sub(r"[^a-z0-9.-]+", "-", socket.gethostname().lower()).strip("-.")[:60]
    return f"{GATEWAY_SCOPE}/{name or 'up'}"


async def _control_plane(options: UpOptions, state: UpState, sock: socket.socket) -> _ControlPlane | str:
    """Migrate the database, make sure the first tenant and a key exist, serve the API; or why it cannot."""
    from interlock.api import ApiSettings, create_app, migrate
    from interlock.api.errors import ApiError
    from interlock.db.check import DATABASE_ERRORS, describe_database_error

    database_url = os.environ.get("DATABASE_URL")
    if not database_url:
        options.state_dir.mkdir(parents=True, exist_ok=True)
        database_url = f"sqlite+aiosqlite:///{(options.state_dir / 'interlock.db').resolve()}"
    assert state.admin_token is not None
    signing_key = secrets.token_urlsafe(32)  # per run: the one credential minted below is all that needs it
    settings = ApiSettings(
        environment="development",
        database_url=database_url,
        admin_token=SecretStr(state.admin_token),
        gateway_signing_key=SecretStr(signing_key),
        host=options.host,
        port=options.api_port,
    )
    try:
        await migrate(settings.url)
    except DATABASE_ERRORS as exc:
        return describe_database_error(settings.url, exc)
    app = create_app(settings)
    try:
        async with app.state.sessions() as session:
            key = await _first_key(session, state.bootstrap_key, given=options.bootstrap_key is not None)
    except ApiError as exc:
        return f"--bootstrap-key: {exc.detail}"
    server = EmbeddedServer(app, host=options.host, port=options.api_port, lifespan="on", server_header=False)
    await server.start(sock=sock)
    credential = mint_gateway_credential(signing_key.encode(), GATEWAY_SCOPE)
    return _ControlPlane(server, state.admin_token, key, credential)


async def _first_key(session: AsyncSession, kept: str | None, *, given: bool) -> str:
    """The first tenant's key: the given or kept one, else a new one (an earlier run's key is stored as a hash
    only, so it cannot be shown again)."""
    from interlock.api import ensure_bootstrap
    from interlock.api.crud.keys import create_key
    from interlock.api.errors import ConflictError

    try:
        first = await ensure_bootstrap(session=session, key=kept)
    except ConflictError:
        if given:
            raise
        log.warning("the key kept in the state directory was revoked; making a new one")
        first = await ensure_bootstrap(session=session, key=None)
    if first.key is not None:
        return first.key
    return (await create_key(session=session, tenant_id=first.tenant_id, name="interlock-up")).key


def _listeners(options: UpOptions) -> tuple[socket.socket, socket.socket, socket.socket] | str:
    """The three ports, bound before anything is written, so "port in use" costs nothing."""
    bound: list[socket.socket] = []
    for port, option in ((options.api_port, "--api-port"), (options.port, "--port"), (options.ops_port, "--ops-port")):
        try:
            bound.append(bind_listener(options.host, port, option=option))
        except ListenError as exc:
            for sock in bound:
                sock.close()
            return str(exc)
    api_sock, gateway_sock, ops_sock = bound
    return api_sock, gateway_sock, ops_sock


async def run_up(options: UpOptions) -> int:
    source = ManifestSource(options.manifests, namespace=options.namespace)
    try:
        initial = await asyncio.to_thread(source.load)
    except ManifestError as exc:
        report("up", exc.problems)
        return 2
    if initial.rejected:
        report("up", source.rejected_problems(initial))
        return 2
    if options.bootstrap_key is not None and not is_well_formed_key(options.bootstrap_key):
        report("up", "--bootstrap-key: a key is 'sk-il-' followed by more than 8 printable characters without spaces")
        return 2
    kept = read_state(options.state_dir)
    if isinstance(kept, str):
        report("up", kept)
        return 2
    try:
        tracing = configure_tracing("interlock-gateway")
    except ValueError as exc:
        report("up", str(exc))
        return 2
    listeners = _listeners(options)
    if isinstance(listeners, str):
        report("up", listeners)
        return 1
    api_sock, gateway_sock, ops_sock = listeners
    try:
        options.state_dir.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        report("up", f"--state-dir {options.state_dir}: cannot create it: {exc.strerror or exc}")
        api_sock.close()
        gateway_sock.close()
        ops_sock.close()
        return 2
    state = kept.with_options(admin_token=options.admin_token, bootstrap_key=options.bootstrap_key)
    plane = await _control_plane(options, state, api_sock)
    if isinstance(plane, str):
        report("up", plane)
        api_sock.close()
        gateway_sock.close()
        ops_sock.close()
        return 2
    write_state(options.state_dir, UpState(admin_token=plane.admin_token, bootstrap_key=plane.key))
    settings = GatewaySettings(
        host=options.host,
        port=options.port,
        ops_port=options.ops_port,
        control_plane_url=plane.server.url,
        control_plane_token=SecretStr(plane.gateway_credential),
        gateway_id=local_gateway_id(),
        snapshot_interval_s=1.0,
        status_interval_s=2.0,
        spool_path=(options.state_dir / "usage-spool").resolve(),
    )
    app, core = create_gateway_app(
        settings=settings,
        source=source,
        resolver=source,
        mock_app_factory=lambda: create_mock_app(MockSettings(chunk_delay_s=EMBEDDED_MOCK_CHUNK_DELAY_S)),
        tracing=tracing,
    )
    metrics = core.services.metrics
    ops = EmbeddedServer(
        core.ops_app, host=options.host, port=options.ops_port, lifespan="off", **server_options(settings, metrics)
    )
    try:
        ops_url = await ops.start(sock=ops_sock)
    except (OSError, RuntimeError, SystemExit) as exc:
        report("up", f"cannot serve the gateway's ops port on {options.host}:{options.ops_port}: {exc}")
        await plane.server.stop()
        return 1
    server = EmbeddedServer(
        app, host=options.host, port=options.port, lifespan="on", **server_options(settings, metrics)
    )
    try:
        url = await server.start(sock=gateway_sock)
    except (OSError, RuntimeError, SystemExit) as exc:
        report("up", f"the gateway did not start on {options.host}:{options.port}: {exc}")
        await ops.stop()
        await plane.server.stop()
        return 1
    freeze_startup_heap()  # everything is started: keep it out of later collections (interlock.heap)
    runtime = core.services.runtime
    models = sorted(runtime.routes) if runtime else []
    print(_banner(url, plane.server.url, ops_url, plane.key, plane.admin_token, models), flush=True)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    await stop.wait()
    print("interlock up: stopping", flush=True)
    await server.stop()  # the gateway first: its last usage events still reach the control plane
    await ops.stop()
    await plane.server.stop()
    return 0
