"""Open-loop load: every request starts on schedule (so queueing shows as latency), streamed, timed by tenant."""

from __future__ import annotations

import asyncio
import statistics
import time
from collections.abc import Mapping
from dataclasses import dataclass, field

import httpx
import orjson

from bench.routing.workloads import Request

__all__ = ["Outcome", "run_load", "summary"]


@dataclass
class Outcome:
    tenant: str
    measured: bool = True
    ttft: float | None = None
    total: float | None = None
    status: int = 0
    backend: str = ""
    tag: str = ""  # the prompt's first words (``quiet 17``): the request's name in every process's stamps
    sent: float = 0.0  # time.monotonic() when sending began (one clock for the machine's processes)
    first: float | None = None  # ... and when the first content-bearing chunk was read


@dataclass
class Summary:
    requests: int
    ok: int
    ttft_p50: float
    ttft_p99: float
    throughput: float
    by_tenant: dict[str, tuple[float, float, int]] = field(default_factory=dict)  # p50, p99, ok


async def _one(http: httpx.AsyncClient, request: Request, key: str, outcome: Outcome, model: str) -> None:
    body = {
        "model": model,
        "messages": [{"role": r, "content": c} for r, c in request.messages],
        "stream": True,
        "max_tokens": 16,
    }
    outcome.sent = sent = time.monotonic()
    try:
        async with http.stream("POST", "/v1/chat/completions", content=orjson.dumps(body),
                               headers={"authorization": f"Bearer {key}"}) as response:  # fmt: skip
            outcome.status = response.status_code
            outcome.backend = response.headers.get("x-interlock-backend", "")
            if response.status_code != 200:
                await response.aread()
                return
            # Raw bytes, not lines: the load generator shares two cores with the gateway and the engines, so it
            # spends as little as it can per chunk. Every SSE data line but [DONE] is a JSON object, so the first
            # '"content":"' (searched across chunk boundaries) is the first data line with content.
            tail = b""
            async for chunk in response.aiter_raw():
                if outcome.ttft is None:
                    seen = tail + chunk
                    if b'"content":"' in seen:
                        outcome.first = time.monotonic()
                        outcome.ttft = outcome.first - sent
                    tail = seen[-16:]
            outcome.total = time.monotonic() - sent
    except httpx.HTTPError:
        outcome.status = -1


async def run_load(
    root: str,
    requests: list[Request],
    keys: Mapping[str, str],
    models: Mapping[str, str] | None = None,
    *,
    start: float | None = None,
) -> tuple[list[Outcome], float]:
    """Send ``requests`` on their schedule; the outcomes and the seconds until the last one finished. ``models``:
    tenant -> the model it asks for (default ``chat``); ``start``: when the schedule's 0 is (``time.monotonic()``,
    default now), so that load clients in several processes keep one schedule."""
    models = models or {}
    limits = httpx.Limits(max_connections=2000, max_keepalive_connections=2000)
    async with httpx.AsyncClient(base_url=root, timeout=120, limits=limits) as http:
        outcomes = [Outcome(r.tenant, r.measured, tag=r.tag) for r in requests]
        # The client's first request in a process pays its lazy imports and a connect (a 30 ms stall of the quiet
        # client's own loop at its first request, seen with --timeline): paid here, before the schedule, since a
        # quiet tenant's real client has long been running. The same in every case and policy.
        await http.get("/healthz")
        if start is None:
            start = time.monotonic()
        tasks = []
        for request, outcome in zip(requests, outcomes, strict=True):
            delay = start + request.at - time.monotonic()
            if delay > 0:
                await asyncio.sleep(delay)
            model = models.get(request.tenant, "chat")
            tasks.append(asyncio.create_task(_one(http, request, keys[request.tenant], outcome, model)))
        await asyncio.gather(*tasks)
        return outcomes, time.monotonic() - start


def _q(values: list[float], q: float) -> float:
    if not values:
        return float("nan")
    if len(values) == 1:
        return values[0]
    return statistics.quantiles(values, n=100, method="inclusive")[int(q * 100) - 1]


def summary(outcomes: list[Outcome], elapsed: float) -> Summary:
    """Over the measured requests (those after the warm-up); throughput over the whole run."""
    done = sum(1 for o in outcomes if o.status == 200)
    outcomes = [o for o in outcomes if o.measured]
    ok = [o for o in outcomes if o.status == 200 and o.ttft is not None]
    ttfts = [o.ttft for o in ok if o.ttft is not None]
    result = Summary(len(outcomes), len(ok), _q(ttfts, 0.5), _q(ttfts, 0.99), done / elapsed)
    for tenant in sorted({o.tenant for o in outcomes}):
        mine = [o.ttft for o in ok if o.tenant == tenant and o.ttft is not None]
        result.by_tenant[tenant] = (_q(mine, 0.5), _q(mine, 0.99), len(mine))
    return result
