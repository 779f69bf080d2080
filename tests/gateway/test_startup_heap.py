"""A gateway process freezes its startup heap once it serves (``interlock.heap``); an embedded app does not.

Each check runs in a fresh interpreter: freezing is a whole process's decision, and this one is pytest's.
"""

from __future__ import annotations

import subprocess
import sys
import textwrap

_SCRIPT = """
    import asyncio, gc, os, sys

    import httpx

    from interlock.asgiserver import EmbeddedServer, bind_listener
    from interlock.gateway.app import create_gateway_app
    from interlock.gateway.dispatch.credentials import MappingSecretResolver
    from interlock.gateway.http.serve import serve_gateway
    from interlock.gateway.settings import GatewaySettings
    from interlock.gateway.tenancy.auth import StaticKeyAuthenticator
    from interlock.gatewayconfig import StaticConfigSource, compile_config

    async def main():
        settings = GatewaySettings(host="127.0.0.1", port=0, ops_port=0)
        app, core = create_gateway_app(
            settings=settings,
            source=StaticConfigSource(compile_config([], [])),
            resolver=MappingSecretResolver({}),
            authenticator=StaticKeyAuthenticator(["sk-il-test-key"]),
        )
        print("before", gc.get_freeze_count())
        MODE
    asyncio.run(main())
"""

_SERVED = """
        sock, ops = bind_listener("127.0.0.1", 0, option="port"), bind_listener("127.0.0.1", 0, option="ops")
        root = f"http://127.0.0.1:{sock.getsockname()[1]}"
        serving = asyncio.create_task(serve_gateway(app, core.ops_app, settings, core.services.metrics,
                                                    log_level="warning", sockets=(sock, ops)))
        async with httpx.AsyncClient() as http:
            for _ in range(200):
                try:
                    status = (await http.get(f"{root}/healthz")).status_code
                    break
                except httpx.TransportError:
                    await asyncio.sleep(0.05)
        print("serving", status, gc.get_freeze_count() > 10_000)
        sys.stdout.flush()
        os._exit(0)  # how the server stops is not this test's business
"""

_EMBEDDED = """
        server = EmbeddedServer(app, lifespan="on")
        await server.start()
        print("embedded", gc.get_freeze_count())
        await server.stop()
"""


def _run(mode: str) -> list[str]:
    body = textwrap.indent(textwrap.dedent(mode), " " * 4)
    script = textwrap.dedent(_SCRIPT).replace("    MODE\n", body)
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=60, check=False)
    assert done.returncode == 0, done.stderr
    return done.stdout.split()


def test_a_served_gateway_freezes_what_startup_built() -> None:
    assert _run(_SERVED) == ["before", "0", "serving", "200", "True"]


def test_an_embedded_gateway_leaves_its_hosts_heap_alone() -> None:
    assert _run(_EMBEDDED) == ["before", "0", "embedded", "0"]
