"""``python -m bench.hostile.loop_lag [--seconds 4] [--rounds 3] [--kinds unique,regex,big]``

Does validating a pathological JSON Schema stall the gateway's event loop? The gateway runs in this process on
uvloop, with a probe task that sleeps 1 ms at a time and records how late it wakes (the loop's lag: what every
request in flight waits on top of its own work). The upstreams and client A run as other processes, so nothing
else shares the loop. Rounds alternate between no traffic, A's requests without ``strict`` (the control: the same
bytes, no schema work) and A's pathological strict schemas (``bench/hostile/schema_stall.py`` describes the
kinds). Printed: the loop's lag p99, p99.9 and maximum in each condition. Unlike end-to-end latency, this is not
moved by other processes competing for the machine's CPUs, only by what the gateway's own loop does.
"""

from __future__ import annotations

import argparse
import asyncio
import sys
import tempfile
import time
from pathlib import Path

import orjson
import uvloop

from bench.hostile.procs import CLIENT_KEY, upstream
from bench.hostile.schema_stall import KINDS
from interlock.asgiserver import EmbeddedServer
from interlock.gateway.app import create_gateway_app
from interlock.gateway.dispatch.credentials import MappingSecretResolver
from interlock.gateway.http.serve import server_options
from interlock.gateway.settings import GatewaySettings
from interlock.gateway.tenancy.auth import StaticKeyAuthenticator
from interlock.gatewayconfig import StaticConfigSource, compile_config
from interlock.resources import LLMBackend, Route

__all__ = ["main"]

_CLIENT = """
import asyncio, sys, time
import aiohttp, orjson
from bench.hostile.schema_stall import A_RATE, HEADERS, _hostile_body

async def loop(session, url, kind, strict, until):
    n = 0
    while time.monotonic() < until:
        paced = asyncio.create_task(asyncio.sleep(1 / A_RATE))
        async with session.post(url, data=orjson.dumps(_hostile_body(kind, n, strict)), headers=HEADERS) as r:
            await r.read()
        await paced
        n += 1

async def main(url, kinds, strict, seconds):
    until = time.monotonic() + seconds
    async with aiohttp.ClientSession() as session:
        await asyncio.gather(*(loop(session, url, kind, strict, until) for kind in kinds.split(",")))

asyncio.run(main(sys.argv[1], sys.argv[2], sys.argv[3] == "strict", float(sys.argv[4])))
"""


def _manifests(urls: dict[str, str]) -> tuple[list[LLMBackend], list[Route]]:
    backends = [
        LLMBackend.model_validate(
            {
                "apiVersion": "interlock.dev/v1alpha1",
                "kind": "LLMBackend",
                "metadata": {"name": name},
                "spec": {"provider": "openai", "url": url, "models": [{"name": "ok"}]},
            }
        )
        for name, url in urls.items()
    ]
    routes = [
        Route.model_validate(
            {
                "apiVersion": "interlock.dev/v1alpha1",
                "kind": "Route",
                "metadata": {"name": model},
                "spec": {"model": model, "targets": [{"backend": name, "model": "ok"}], "retry": {"attempts": 1}},
            }
        )
        for model, name in (("fast", "fast"), ("unique", "slow"), ("regex", "regex"))
    ]
    return backends, routes


async def _lag(seconds: float, client: list[str] | None) -> list[float]:
    lags: list[float] = []
    stop = asyncio.Event()

    async def probe() -> None:
        while not stop.is_set():
            started = time.perf_counter()
            await asyncio.sleep(0.001)
            lags.append(time.perf_counter() - started - 0.001)

    task = asyncio.create_task(probe())
    if client is None:
        await asyncio.sleep(seconds)
    else:
        proc = await asyncio.create_subprocess_exec(*client)
        await proc.wait()
    stop.set()
    await task
    return lags


async def main() -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.hostile.loop_lag", description=__doc__)
    parser.add_argument("--seconds", type=float, default=4.0)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--kinds", default=",".join(KINDS))
    args = parser.parse_args()
    work = Path(tempfile.mkdtemp(prefix="interlock-loop-lag-"))
    unique = orjson.dumps([{"a": i} for i in range(3000)]).decode()
    catastrophic = orjson.dumps("a" * 40 + "!").decode()
    async with (
        upstream(work, "fast") as fast,
        upstream(work, "unique", unique) as slow,
        upstream(work, "regex", catastrophic) as regex,
    ):
        backends, routes = _manifests({"fast": fast.url, "slow": slow.url, "regex": regex.url})
        settings = GatewaySettings()
        app, core = create_gateway_app(
            settings=settings,
            source=StaticConfigSource(compile_config(backends, routes)),
            resolver=MappingSecretResolver({}),
            authenticator=StaticKeyAuthenticator([CLIENT_KEY]),
        )
        server = EmbeddedServer(app, lifespan="on", **server_options(settings, core.services.metrics))
        url = f"{await server.start()}/v1/chat/completions"
        try:
            conditions: dict[str, list[float]] = {"no traffic": [], "A, not strict": [], "A, strict": []}
            for _ in range(args.rounds):
                for name, mode in (("no traffic", None), ("A, not strict", "plain"), ("A, strict", "strict")):
                    client = None if mode is None else [sys.executable, "-c", _CLIENT, url, args.kinds, mode]
                    conditions[name] += await _lag(args.seconds, client and [*client, str(args.seconds)])
        finally:
            await server.stop()
    print(f"event-loop lag of the gateway, A's kinds: {args.kinds} ({args.rounds} rounds of {args.seconds:g}s)")
    print(f"{'condition':<16} {'probes':>7} {'p99 ms':>8} {'p99.9 ms':>9} {'max ms':>8}")
    for name, unsorted in conditions.items():
        lags = sorted(unsorted)
        p99, p999 = lags[int(len(lags) * 0.99)] * 1000, lags[int(len(lags) * 0.999)] * 1000
        print(f"{name:<16} {len(lags):>7} {p99:>8.2f} {p999:>9.2f} {lags[-1] * 1000:>8.2f}")
    print(f"schema workers started: {core.services.schemas.started}")
    return 0


if __name__ == "__main__":
    raise SystemExit(uvloop.run(main()))
