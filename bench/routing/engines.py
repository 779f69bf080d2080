"""``python -m bench.routing.engines --ports 9001,9002 [engine settings]``: N simulated engines in one process.

Each is the mock provider with its engine model (``--engine-metrics``): batch slots, a paged KV cache with prefix
reuse, prefill per uncached token, decode per output token, vLLM's metrics. One process, one event loop, so that
the benchmark's three processes (engines, gateway, load) fit a 2-core machine.
"""

from __future__ import annotations

import argparse
import asyncio
import signal

import uvloop

from interlock.asgiserver import EmbeddedServer
from interlock.mockprovider import MockSettings, create_app


async def serve(ports: list[int], settings: MockSettings) -> None:
    servers = [EmbeddedServer(create_app(settings), port=port, lifespan="off") for port in ports]
    for server in servers:
        await server.start()
    print("ready", flush=True)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    await stop.wait()
    for server in servers:
        await server.stop()


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.routing.engines")
    parser.add_argument("--ports", required=True)
    parser.add_argument("--settings", required=True, help="MockSettings as JSON")
    args = parser.parse_args()
    settings = MockSettings.model_validate_json(args.settings)
    uvloop.run(serve([int(p) for p in args.ports.split(",")], settings))


if __name__ == "__main__":
    main()
