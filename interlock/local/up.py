"""``interlock up``: the gateway on one machine, from a directory of manifests, with the embedded mock provider."""

from __future__ import annotations

import asyncio
import logging
import secrets
import signal
from dataclasses import dataclass
from pathlib import Path

from interlock.asgiserver import EmbeddedServer
from interlock.gateway.app import create_gateway_app
from interlock.gateway.auth import StaticKeyAuthenticator
from interlock.gateway.settings import GatewaySettings
from interlock.local.source import ManifestSource
from interlock.mockprovider import MockSettings
from interlock.mockprovider import create_app as create_mock_app
from interlock.resources.manifests import ManifestError

__all__ = ["UpOptions", "generate_key", "run_up"]

log = logging.getLogger("interlock.up")

KEY_PREFIX = "sk-il-"
EMBEDDED_MOCK_CHUNK_DELAY_S = 0.02  # paced like a real engine, so streaming is visible


def generate_key() -> str:
    return KEY_PREFIX + secrets.token_urlsafe(32)


@dataclass(frozen=True)
class UpOptions:
    manifests: Path
    host: str = "127.0.0.1"
    port: int = 8080
    bootstrap_key: str | None = None
    namespace: str = "default"


def _banner(url: str, key: str, models: list[str]) -> str:
    first = models[0] if models else "<model>"
    return "\n".join(
        [
            "",
            f"  Interlock gateway   {url}/v1",
            f"  API key             {key}",
            f"  Models              {', '.join(models) or '(none)'}",
            "",
            "  Try it:",
            f"    curl {url}/v1/chat/completions -H 'Authorization: Bearer {key}' \\",
            "      -H 'Content-Type: application/json' \\",
            f'      -d \'{{"model": "{first}", "messages": [{{"role": "user", "content": "Hello"}}]}}\'',
            "",
            "  Edit the manifests and the gateway reloads them. Ctrl-C stops.",
            "",
        ]
    )


async def run_up(options: UpOptions) -> int:
    source = ManifestSource(options.manifests, namespace=options.namespace)
    try:
        initial = await asyncio.to_thread(source.load)
    except (ManifestError, ValueError) as exc:
        print(f"interlock up: {exc}")
        return 2
    if initial.rejected:
        for name, reason in initial.rejected.items():
            print(f"interlock up: Route {name!r} cannot be served: {reason}")
        return 2
    key = options.bootstrap_key or generate_key()
    settings = GatewaySettings(host=options.host, port=options.port, api_keys=[key])
    app, core = create_gateway_app(
        settings=settings,
        source=source,
        resolver=source,
        authenticator=StaticKeyAuthenticator(settings.api_keys),
        mock_app_factory=lambda: create_mock_app(MockSettings(chunk_delay_s=EMBEDDED_MOCK_CHUNK_DELAY_S)),
    )
    server = EmbeddedServer(app, host=options.host, port=options.port, lifespan="on", server_header=False)
    try:
        url = await server.start()
    except (OSError, RuntimeError, SystemExit) as exc:
        print(f"interlock up: cannot listen on {options.host}:{options.port}: {exc}")
        return 1
    runtime = core.services.runtime
    print(_banner(url, key, sorted(runtime.routes) if runtime else []), flush=True)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    await stop.wait()
    print("interlock up: stopping", flush=True)
    await server.stop()
    return 0
