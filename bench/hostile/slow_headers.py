"""``python -m bench.hostile.slow_headers [--connections 1000] [--probes 50]``

What slowloris costs the gateway: a gateway process (default limits: ``header_timeout_s`` 10 s) and an upstream;
``--connections`` clients each send the start of a request head and then one more byte every 2 s, never ending
their headers. Printed: the gateway's resident memory (``VmRSS``) before and with them all open, the latency of
``--probes`` normal requests made while they are open (the acceptance: RSS grows by under 50 MB, and a normal
request is answered in under 50 ms), and how long the gateway took to close them all.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import statistics
import tempfile
import time
from pathlib import Path
from urllib.parse import urlsplit

import httpx

from bench.hostile.procs import CLIENT_KEY, gateway, rss_mb, upstream

__all__ = ["main"]

HEAD = b"POST /v1/chat/completions HTTP/1.1\r\nhost: gw\r\ncontent-type: application/json\r\nx-slow: "
BODY = {"model": "chat", "messages": [{"role": "user", "content": "Hi"}]}


async def _slow(
    host: str, port: int, opened: list[int], closed: list[float], stop: asyncio.Event, all_open: asyncio.Event
) -> None:
    """One slowloris client; ``opened`` holds the number still to open, ``all_open`` is set once none is left."""
    reader, writer = await asyncio.open_connection(host, port)
    writer.write(HEAD)
    opened[0] -= 1
    if opened[0] == 0:
        all_open.set()
    started = time.monotonic()

    async def drip() -> None:
        while not stop.is_set():
            await asyncio.sleep(2.0)
            writer.write(b"x")
            with contextlib.suppress(ConnectionError):
                await writer.drain()

    dripping = asyncio.create_task(drip())
    try:
        with contextlib.suppress(ConnectionError):
            await reader.read()  # EOF: the gateway closed it
        closed.append(time.monotonic() - started)
    finally:
        dripping.cancel()
        writer.close()


async def _probe(client: httpx.AsyncClient, count: int) -> list[float]:
    latencies = []
    for _ in range(count):
        started = time.perf_counter()
        response = await client.post("/v1/chat/completions", json=BODY)
        latencies.append(time.perf_counter() - started)
        if response.status_code != 200:
            raise RuntimeError(f"normal request answered {response.status_code}: {response.text[:200]}")
        await asyncio.sleep(0.02)
    return latencies


async def main() -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.hostile.slow_headers", description=__doc__)
    parser.add_argument("--connections", type=int, default=1000)
    parser.add_argument("--probes", type=int, default=50)
    args = parser.parse_args()
    work = Path(tempfile.mkdtemp(prefix="interlock-slow-headers-"))
    async with upstream(work, "upstream") as up, gateway(work, {"up": up.url}, {"chat": ("up", "ok")}) as gw:
        pid = gw.proc.pid
        headers = {"authorization": f"Bearer {CLIENT_KEY}"}
        async with httpx.AsyncClient(base_url=gw.url, headers=headers, timeout=30) as client:
            before_latency = await _probe(client, args.probes)  # also warms the gateway up
            before = rss_mb(pid)
            parts = urlsplit(gw.url)
            host, port = parts.hostname or "127.0.0.1", parts.port or 80
            opened = [args.connections]
            closed: list[float] = []
            stop, all_open = asyncio.Event(), asyncio.Event()
            began = time.monotonic()
            slow = [
                asyncio.create_task(_slow(host, port, opened, closed, stop, all_open)) for _ in range(args.connections)
            ]
            async with asyncio.timeout(60):
                await all_open.wait()
            opened_in = time.monotonic() - began
            await asyncio.sleep(0.5)
            with_them = rss_mb(pid)
            during = await _probe(client, args.probes)
            still_open = args.connections - len(closed)
            peak = max(with_them, rss_mb(pid))
            async with asyncio.timeout(60):
                await asyncio.gather(*slow)
            stop.set()
            ops = (await client.get(f"{gw.ops_url}/metrics")).text
    trips = next((line for line in ops.splitlines() if 'limit="header_timeout"' in line), "no header_timeout trips")
    print(
        f"{args.connections} slow-header connections opened in {opened_in:.1f}s; {still_open} still open while probing"
    )
    print(f"gateway RSS: {before:.1f} MiB before, {peak:.1f} MiB with them open: {peak - before:+.1f} MiB (< 50 MB)")
    for name, values in (("before", before_latency), ("with them open", during)):
        print(
            f"normal request {name}: p50 {statistics.median(values) * 1000:.2f} ms, "
            f"max {max(values) * 1000:.2f} ms over {len(values)} (< 50 ms)"
        )
    print(f"closed by the gateway after {min(closed):.1f}-{max(closed):.1f}s (header_timeout_s 10); {trips}")
    return 0


if __name__ == "__main__":
    raise SystemExit(asyncio.run(main()))
