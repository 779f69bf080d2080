"""``python -m bench.hostile.schema_stall [--seconds 3] [--rounds 10] [--rate 100] [--kinds unique,regex,big]``

Does one client's pathological JSON Schema slow down everybody else? A gateway process serves two clients: **B**
sends ordinary chat requests in an open loop at ``--rate`` per second and measures each one's latency; **A**
keeps one request of each ``--kinds`` in flight (each at most 4 per second) whose strict ``json_schema`` is
pathological:

- ``unique``: ``uniqueItems`` over an answer of 3,000 objects (quadratic in jsonschema: seconds; the worker is
  killed at the budget and replaced);
- ``regex``: a ``pattern`` that backtracks exponentially in Python's ``re`` (``^(a+)+$`` on 40 a's and a "!"),
  matched by RE2;
- ``big``: a fresh 200 KB schema each time (checked on arrival, ~1 s of metaschema validation).

Rounds alternate between B alone, B beside A, and B beside A's same requests without ``strict`` (the control:
what A's traffic costs without any schema work), so the machine's drift falls on all alike. Printed: B's p50 and
p99 in each condition, the growth of p99 (the acceptance is under 5 ms) pooled and as the median over rounds of
each round's growth (which a burst of noise on a shared machine cannot move), and what A got.
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import tempfile
import time
from collections import Counter
from pathlib import Path
from typing import Any

import aiohttp
import orjson

from bench.hostile.procs import CLIENT_KEY, gateway, rss_mb, upstream

__all__ = ["main"]

HELLO = [{"role": "user", "content": "Hi"}]
A_RATE = 4.0  # requests per second of each of A's loops, at most
HEADERS = {"authorization": f"Bearer {CLIENT_KEY}", "content-type": "application/json"}


KINDS = ("unique", "regex", "big")


def _hostile_body(kind: str, n: int, strict: bool) -> dict[str, Any]:
    if kind == "unique":
        model, schema = "unique", {"type": "array", "uniqueItems": True}
    elif kind == "regex":
        model, schema = "regex", {"type": "string", "pattern": "^(a+)+$"}
    else:
        props = {f"p{n}_{i}": {"type": "string", "maxLength": 100, "description": "x" * 20} for i in range(2500)}
        model, schema = "fast", {"type": "object", "properties": props}
    response_format = {"type": "json_schema", "json_schema": {"name": "x", "schema": schema, "strict": strict}}
    return {"model": model, "messages": HELLO, "response_format": response_format}


async def _b_round(session: aiohttp.ClientSession, url: str, rate: float, seconds: float) -> list[float]:
    """Open loop: a request every 1/rate s, whatever the previous ones do; returns their latencies."""
    latencies: list[float] = []
    body = orjson.dumps({"model": "fast", "messages": HELLO})

    async def one() -> None:
        started = time.perf_counter()
        async with session.post(url, data=body, headers=HEADERS) as response:
            await response.read()
            if response.status != 200:
                raise RuntimeError(f"B got {response.status}")
        latencies.append(time.perf_counter() - started)

    tasks = []
    begin = time.perf_counter()
    n = 0
    while (elapsed := time.perf_counter() - begin) < seconds:
        tasks.append(asyncio.create_task(one()))
        n += 1
        await asyncio.sleep(max(0.0, n / rate - elapsed))
    await asyncio.gather(*tasks)
    return latencies


async def _a_loop(
    session: aiohttp.ClientSession, url: str, stop: asyncio.Event, got: Counter[str], kind: str, strict: bool
) -> None:
    n = 0
    while not stop.is_set():
        paced = asyncio.create_task(asyncio.sleep(1 / A_RATE))  # A is no flood: that is rate limiting's job
        body = orjson.dumps(_hostile_body(kind, n, strict))
        async with session.post(url, data=body, headers=HEADERS) as response:
            answer = await response.read()
        await paced
        code = orjson.loads(answer).get("error", {}).get("code") if response.status != 200 else None
        if strict:
            got[f"{response.status} {code or ''}".strip()] += 1
        n += 1


def _p(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))] * 1000


async def main() -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.hostile.schema_stall", description=__doc__)
    parser.add_argument("--seconds", type=float, default=3.0, help="length of each round")
    parser.add_argument("--rounds", type=int, default=10, help="rounds of each condition")
    parser.add_argument("--rate", type=float, default=100.0, help="B's requests per second")
    parser.add_argument(
        "--kinds", type=lambda v: v.split(","), default=list(KINDS), help=f"A's loops, one per kind: {','.join(KINDS)}"
    )
    args = parser.parse_args()
    work = Path(tempfile.mkdtemp(prefix="interlock-schema-stall-"))
    unique = orjson.dumps([{"a": i} for i in range(3000)]).decode()
    catastrophic = orjson.dumps("a" * 40 + "!").decode()
    async with (
        upstream(work, "fast") as fast,
        upstream(work, "unique", unique) as slow,
        upstream(work, "regex", catastrophic) as regex,
    ):
        ups = {"fast": fast.url, "slow": slow.url, "regex": regex.url}
        routes = {"fast": ("fast", "ok"), "unique": ("slow", "ok"), "regex": ("regex", "ok")}
        async with (
            gateway(work, ups, routes) as gw,
            aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=0)) as session,
        ):
            url = f"{gw.url}/v1/chat/completions"
            await _b_round(session, url, args.rate, 1.0)  # warm-up
            samples: dict[str, list[float]] = {"B alone": [], "B beside A": [], "B beside A, not strict": []}
            rounds: dict[str, list[float]] = {name: [] for name in samples}
            got: Counter[str] = Counter()
            for _ in range(args.rounds):
                alone = await _b_round(session, url, args.rate, args.seconds)
                samples["B alone"] += alone
                rounds["B alone"].append(_p(alone, 0.99))
                for name, strict in (("B beside A", True), ("B beside A, not strict", False)):
                    stop = asyncio.Event()
                    hostile = [
                        asyncio.create_task(_a_loop(session, url, stop, got, kind, strict)) for kind in args.kinds
                    ]
                    await asyncio.sleep(1.0)  # A's requests are under way
                    measured = await _b_round(session, url, args.rate, args.seconds)
                    samples[name] += measured
                    rounds[name].append(_p(measured, 0.99))
                    stop.set()
                    await asyncio.gather(*hostile)
            metrics = await (await session.get(f"{gw.ops_url}/metrics")).text()
            rss = rss_mb(gw.proc.pid)
    trips = [line for line in metrics.splitlines() if line.startswith("interlock_limit_trips_total")]
    print(f"B: {args.rate:g} requests/s, {args.rounds} rounds of {args.seconds:g}s per condition")
    print(f"{'condition':<24} {'requests':>8} {'p50 ms':>8} {'p99 ms':>8} {'max ms':>8}")
    for name, values in samples.items():
        p50, p99, top = statistics.median(values) * 1000, _p(values, 0.99), max(values) * 1000
        print(f"{name:<24} {len(values):>8} {p50:>8.2f} {p99:>8.2f} {top:>8.2f}")
    alone, loaded, control = samples.values()
    print(f"p99 growth beside A: {_p(loaded, 0.99) - _p(alone, 0.99):+.2f} ms (acceptance: < 5 ms)")
    print(f"p99 growth beside A's requests without strict: {_p(control, 0.99) - _p(alone, 0.99):+.2f} ms")
    # A shared machine's noise comes in bursts of seconds: the median over rounds of each round's growth (against
    # the B-alone round just before it) is the figure a burst cannot move.
    for name in ("B beside A", "B beside A, not strict"):
        paired = [b - a for a, b in zip(rounds["B alone"], rounds[name], strict=True)]
        print(f"median per-round p99 growth, {name}: {statistics.median(paired):+.2f} ms over {len(paired)} rounds")
    print(f"A got: {dict(got)}; {'; '.join(trips) or 'no limit trips'}; gateway RSS {rss:.0f} MiB")
    return 0


if __name__ == "__main__":
    raise SystemExit(asyncio.run(main()))
