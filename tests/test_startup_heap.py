"""A served gateway and a served control plane freeze their startup heap (``interlock.heap``); an app embedded in
another program does not.

Each check runs in a fresh interpreter: freezing is a whole process's decision, and this one is pytest's.
"""

from __future__ import annotations

import subprocess
import sys
import textwrap
from pathlib import Path

_COMMON = """
    import asyncio, gc, os, socket, sys

    import httpx

    async def report_when_serving(url, serving):
        status = None
        async with httpx.AsyncClient() as http:
            for _ in range(600):
                if serving.done():
                    break
                try:
                    status = (await http.get(url)).status_code
                    break
                except httpx.TransportError:
                    await asyncio.sleep(0.05)
        print("serving", status, gc.get_freeze_count() > 10_000)
        sys.stdout.flush()
        os._exit(0)  # how the server stops is not this test's business

    def gateway_app():
        from interlock.gateway.app import create_gateway_app
        from interlock.gateway.dispatch.credentials import MappingSecretResolver
        from interlock.gateway.settings import GatewaySettings
        from interlock.gateway.tenancy.auth import StaticKeyAuthenticator
        from interlock.gatewayconfig import StaticConfigSource, compile_config

        settings = GatewaySettings(host="127.0.0.1", port=0, ops_port=0)
        app, core = create_gateway_app(
            settings=settings,
            source=StaticConfigSource(compile_config([], [])),
            resolver=MappingSecretResolver({}),
            authenticator=StaticKeyAuthenticator(["sk-il-test-key"]),
        )
        return settings, app, core
"""

_GATEWAY = """
    from interlock.asgiserver import bind_listener
    from interlock.gateway.http.serve import serve_gateway

    async def main():
        settings, app, core = gateway_app()
        print("before", gc.get_freeze_count())
        sock, ops = bind_listener("127.0.0.1", 0, option="port"), bind_listener("127.0.0.1", 0, option="ops")
        serving = asyncio.create_task(
            serve_gateway(app, core.ops_app, settings, core.services.metrics, log_level="warning", sockets=(sock, ops))
        )
        await report_when_serving(f"http://127.0.0.1:{sock.getsockname()[1]}/healthz", serving)

    asyncio.run(main())
"""

_API = """
    from interlock.api.serve import run_api
    from interlock.api.settings import ApiSettings

    async def main():
        with socket.socket() as probe:
            probe.bind(("127.0.0.1", 0))
            port = probe.getsockname()[1]
        print("before", gc.get_freeze_count())
        settings = ApiSettings(port=port, database_url=sys.argv[1])
        serving = asyncio.create_task(run_api(settings, run_migrations=True, serve=True, log_level="warning"))
        await report_when_serving(f"http://127.0.0.1:{port}/healthz", serving)

    asyncio.run(main())
"""

_EMBEDDED = """
    from interlock.asgiserver import EmbeddedServer

    async def main():
        settings, app, core = gateway_app()
        print("before", gc.get_freeze_count())
        server = EmbeddedServer(app, lifespan="on")
        await server.start()
        print("embedded", gc.get_freeze_count())
        await server.stop()

    asyncio.run(main())
"""


def _run(script: str, *args: str) -> list[str]:
    source = textwrap.dedent(_COMMON) + textwrap.dedent(script)
    done = subprocess.run(
        [sys.executable, "-c", source, *args], capture_output=True, text=True, timeout=120, check=False
    )
    assert done.returncode == 0, done.stderr
    return done.stdout.split()


def test_a_served_gateway_freezes_what_startup_built() -> None:
    assert _run(_GATEWAY) == ["before", "0", "serving", "200", "True"]


def test_a_served_control_plane_freezes_what_startup_built(tmp_path: Path) -> None:
    assert _run(_API, f"sqlite:///{tmp_path / 'interlock.db'}") == ["before", "0", "serving", "200", "True"]


def test_an_embedded_gateway_leaves_its_hosts_heap_alone() -> None:
    assert _run(_EMBEDDED) == ["before", "0", "embedded", "0"]
