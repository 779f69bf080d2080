"""Slow clients: connections that send their headers, or their body, a byte at a time (slowloris), while normal
clients keep using the gateway. The gateway's header and body timeouts (``gateway/http/limits.py``) must close
every slow connection, and the normal requests must be served and metered as usual.

Counts: **lost**, normal requests answered without a usage row (or not answered at all); **counted twice**,
usage rows beyond one per normal request (a slow request never reaches the route, so it is never metered);
**leaked**, slow connections the gateway still holds open 5 s after its timeout (the sweep fires within a tick
of it; the slack is for a loaded machine: the closing times are reported).
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Callable
from urllib.parse import urlsplit

from bench.faults import Case, Outcome
from bench.faults.hostile import HostileUpstream
from bench.faults.inprocess import Stack, backend, gateway_stack, route

__all__ = ["CASES", "slow_connection"]

SLOW = 200
NORMAL = 60
TIMEOUT_S = 1.0
SLACK_S = 5.0
HEAD = b"POST /v1/chat/completions HTTP/1.1\r\nhost: gw\r\ncontent-type: application/json\r\n"


async def slow_connection(url: str, first: bytes, *, drip_s: float, closed: list[float], started: float) -> None:
    """Send ``first``, then one byte every ``drip_s`` until the server closes the connection (recorded in
    ``closed`` as seconds since ``started``), or 10 s pass."""
    parts = urlsplit(url)
    reader, writer = await asyncio.open_connection(parts.hostname, parts.port)
    try:
        writer.write(first)
        deadline = time.monotonic() + 10

        async def drip() -> None:
            while time.monotonic() < deadline:
                await asyncio.sleep(drip_s)
                writer.write(b"x")
                with contextlib.suppress(ConnectionError):
                    await writer.drain()

        dripping = asyncio.create_task(drip())
        try:
            async with asyncio.timeout(max(0.0, deadline - time.monotonic())):
                await reader.read()  # returns at EOF: the server closed the connection
            closed.append(time.monotonic() - started)
        except ConnectionError:  # reset: the server closed it while a dripped byte was on its way
            closed.append(time.monotonic() - started)
        except TimeoutError:
            pass  # still open after 10 s: counted as leaked
        finally:
            dripping.cancel()
    finally:
        writer.close()


async def _normal(stack: Stack, count: int, latencies: list[float]) -> int:
    """Normal requests, a few at a time; returns how many were answered 200."""
    ok = 0
    for _ in range(count):
        begun = time.perf_counter()
        response = await stack.client.post(
            "/v1/chat/completions", json={"model": "chat", "messages": [{"role": "user", "content": "Hi"}]}
        )
        latencies.append(time.perf_counter() - begun)
        ok += response.status_code == 200
    return ok


async def _case(first_bytes: Callable[[Stack], bytes], limit: str) -> Outcome:
    upstream = HostileUpstream()
    settings = {"header_timeout_s": TIMEOUT_S, "body_timeout_s": TIMEOUT_S}
    backends = [backend("a", "http://placeholder/v1")]
    async with gateway_stack(backends, [route("chat", "a", "ok")], {"a": upstream}, **settings) as stack:
        closed: list[float] = []
        latencies: list[float] = []
        first = first_bytes(stack)
        started = time.monotonic()
        slow = [
            asyncio.create_task(slow_connection(stack.url, first, drip_s=0.3, closed=closed, started=started))
            for _ in range(SLOW)
        ]
        answered = sum(await asyncio.gather(*(_normal(stack, NORMAL // 6, latencies) for _ in range(6))))
        await asyncio.gather(*slow)
        deadline = time.monotonic() + 10
        rows = await stack.usage_rows()
        while len(rows) < answered and time.monotonic() < deadline:
            await asyncio.sleep(0.1)
            rows = await stack.usage_rows()
        distinct = len({r["idempotency_id"] for r in rows})
        in_time = sum(t <= TIMEOUT_S + SLACK_S for t in closed)
        metrics = (await stack.client.get(f"{stack.ops_url}/metrics")).text
        trips = next((float(line.split()[-1]) for line in metrics.splitlines() if f'limit="{limit}"' in line), 0.0)
        latencies.sort()
        p99 = latencies[int(len(latencies) * 0.99) - 1] * 1000 if latencies else 0.0
        detail = (
            f"{in_time} of {SLOW} slow connections closed by the gateway within {TIMEOUT_S:g}s + {SLACK_S:g}s "
            f"(after {min(closed, default=0):.1f}-{max(closed, default=0):.1f}s); "
            f"{answered} of {NORMAL} normal requests answered meanwhile"
        )
        return Outcome(
            lost=(NORMAL - answered) + max(0, answered - distinct),
            double_counted=(len(rows) - distinct) + max(0, distinct - answered),
            leaked=SLOW - in_time,
            detail=detail,
            facts={"normal p99 ms": round(p99, 1), f"{limit} trips": trips},
        )


async def slow_headers() -> Outcome:
    return await _case(lambda stack: HEAD + b"x-slow: ", "header_timeout")


async def slow_bodies() -> Outcome:
    """Authenticated requests whose 100 kB body comes a byte at a time: the gateway waits for it (it reads a body
    only after the key checks out), until the body timeout."""

    def first(stack: Stack) -> bytes:
        return HEAD + b"authorization: Bearer " + stack.key.encode() + b"\r\ncontent-length: 100000\r\n\r\n{"

    return await _case(first, "body_timeout")


CASES = [
    Case("slow clients: slow headers", slow_headers),
    Case("slow clients: slow bodies", slow_bodies),
]
