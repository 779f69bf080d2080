"""The gateway builds its tokenizer while it starts (in a thread), not on its event loop at the first answer.

Built lazily, the encoding (~0.1-0.2 s of CPU) was built on the loop by the first answer's calibration sample,
stalling every stream of the gateway for as long (bench/RESULTS.md, helper "quiet2"). Each check runs in a fresh
interpreter: in this one another test has long since built it.
"""

from __future__ import annotations

import subprocess
import sys
import textwrap


def _run(script: str) -> list[str]:
    done = subprocess.run(
        [sys.executable, "-c", textwrap.dedent(script)], capture_output=True, text=True, timeout=60, check=False
    )
    assert done.returncode == 0, done.stderr
    return done.stdout.split()


def test_the_tokenizer_is_built_before_the_gateway_serves() -> None:
    seen = _run(
        """
        import asyncio

        import httpx

        from interlock import tokenizer
        from interlock.asgiserver import EmbeddedServer
        from interlock.gateway.app import create_gateway_app
        from interlock.gateway.dispatch.credentials import MappingSecretResolver
        from interlock.gateway.settings import GatewaySettings
        from interlock.gateway.tenancy.auth import StaticKeyAuthenticator
        from interlock.gatewayconfig import StaticConfigSource, compile_config

        async def main():
            app, core = create_gateway_app(
                settings=GatewaySettings(),
                source=StaticConfigSource(compile_config([], [])),
                resolver=MappingSecretResolver({}),
                authenticator=StaticKeyAuthenticator(["sk-il-test-key"]),
            )
            print("before", tokenizer.loaded())
            server = EmbeddedServer(app, lifespan="on")
            root = await server.start()
            print("serving", tokenizer.loaded())
            async with httpx.AsyncClient() as http:
                print("healthz", (await http.get(f"{root}/healthz")).status_code)
            await server.stop()

        asyncio.run(main())
        """
    )
    assert seen == ["before", "False", "serving", "True", "healthz", "200"]
