"""Open-loop latency: requests start on a fixed schedule whether or not earlier ones have finished."""

from __future__ import annotations

import asyncio
import time
from collections import Counter
from dataclasses import dataclass, field

import aiohttp
import uvloop

from gatewaybench.stats import percentile
from gatewaybench.targets import Target

__all__ = ["LatencyResult", "fixed_rate_latency"]


@dataclass(frozen=True)
class LatencyResult:
    rate: float
    sent: int
    latencies_ms: tuple[float, ...] = field(repr=False)  # of the requests answered with 200
    max_start_lag_ms: float  # how late the generator started a request against its schedule
    failures: dict[str, int]  # by kind: error status, transport error, timeout

    @property
    def ok(self) -> int:
        return len(self.latencies_ms)

    @property
    def failed(self) -> int:
        return self.sent - self.ok

    @property
    def p50_ms(self) -> float:
        return percentile(self.latencies_ms, 50)

    @property
    def p99_ms(self) -> float:
        return percentile(self.latencies_ms, 99)

    def merge(self, other: LatencyResult) -> LatencyResult:
        """Both rounds' samples together (the phase alternates short rounds between targets)."""
        return LatencyResult(
            rate=self.rate,
            sent=self.sent + other.sent,
            latencies_ms=self.latencies_ms + other.latencies_ms,
            max_start_lag_ms=max(self.max_start_lag_ms, other.max_start_lag_ms),
            failures=dict(Counter(self.failures) + Counter(other.failures)),
        )


@dataclass
class _Tally:
    latencies: list[float]
    max_lag: float = 0.0
    failures: Counter[str] = field(default_factory=Counter)


async def _one(session: aiohttp.ClientSession, target: Target, tally: _Tally) -> None:
    started = time.perf_counter()
    try:
        async with session.post(target.chat_url, data=target.body(), headers=target.headers) as resp:
            await resp.read()
            if resp.status != 200:
                tally.failures[f"status {resp.status}"] += 1
                return
    except TimeoutError:
        tally.failures["timeout"] += 1
        return
    except aiohttp.ClientError as exc:
        tally.failures[type(exc).__name__] += 1
        return
    tally.latencies.append(time.perf_counter() - started)


async def _schedule(
    session: aiohttp.ClientSession, target: Target, rate: float, duration_s: float, grace_s: float
) -> tuple[int, _Tally]:
    count = max(1, round(rate * duration_s))
    tally = _Tally(latencies=[])
    tasks: list[asyncio.Task[None]] = []
    start = time.perf_counter()
    for i in range(count):
        due = start + i / rate
        delay = due - time.perf_counter()
        if delay > 0:
            await asyncio.sleep(delay)
        tally.max_lag = max(tally.max_lag, time.perf_counter() - due)
        tasks.append(asyncio.create_task(_one(session, target, tally)))
    _, pending = await asyncio.wait(tasks, timeout=grace_s)
    for task in pending:
        task.cancel()
    await asyncio.gather(*pending, return_exceptions=True)
    if pending:
        tally.failures["still open after the grace period"] += len(pending)
    return count, tally


async def _measure(target: Target, rate: float, duration_s: float, warmup_s: float, timeout_s: float) -> LatencyResult:
    connector = aiohttp.TCPConnector(limit=256, keepalive_timeout=60)
    async with aiohttp.ClientSession(connector=connector, timeout=aiohttp.ClientTimeout(total=timeout_s)) as session:
        if warmup_s > 0:
            await _schedule(session, target, rate, warmup_s, timeout_s)
        sent, tally = await _schedule(session, target, rate, duration_s, timeout_s)
    return LatencyResult(
        rate=rate,
        sent=sent,
        latencies_ms=tuple(x * 1e3 for x in tally.latencies),
        max_start_lag_ms=tally.max_lag * 1e3,
        failures=dict(tally.failures),
    )


def fixed_rate_latency(
    target: Target, *, rate: float, duration_s: float, warmup_s: float, timeout_s: float = 10.0
) -> LatencyResult:
    """Send ``rate`` non-streaming requests per second for ``duration_s`` (after a discarded warm-up).

    Latency runs from sending a request to reading the last byte of its response, over keep-alive connections;
    requests still open ``timeout_s`` after the last one was sent count as failed.
    """
    return uvloop.run(_measure(target, rate, duration_s, warmup_s, timeout_s))
