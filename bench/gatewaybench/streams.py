"""Concurrent streams: N clients each run streaming chat completions back to back; streams/s and time to first token."""

from __future__ import annotations

import asyncio
import time
from collections import Counter
from dataclasses import dataclass, field

import aiohttp
import orjson
import uvloop

from gatewaybench.procs import cpu_seconds
from gatewaybench.stats import percentile
from gatewaybench.targets import Target

__all__ = ["StreamResult", "concurrent_streams"]

_DONE = b"data: [DONE]"


@dataclass(frozen=True)
class StreamResult:
    concurrency: int
    duration_s: float
    completed: int  # streams that ended inside the measured window, each with `data: [DONE]`
    failures: dict[str, int]  # over the whole run, by kind: error status, transport error, no `data: [DONE]`
    unfinished: int  # streams still open when the grace period after the window ran out (cut off, not failed)
    ttfts_ms: tuple[float, ...] = field(repr=False)  # of the streams started inside the window
    cpu_s: float | None = None  # CPU time the measured process (``cpu_pid``) used inside the window

    @property
    def cpu_per_stream_us(self) -> float | None:
        """CPU of the measured process per stream completed in the window (steady state: the two counts match)."""
        return self.cpu_s / self.completed * 1e6 if self.cpu_s is not None and self.completed else None

    @property
    def failed(self) -> int:
        return sum(self.failures.values())

    @property
    def streams_per_s(self) -> float:
        return self.completed / self.duration_s

    @property
    def ttft_p50_ms(self) -> float:
        return percentile(self.ttfts_ms, 50)

    @property
    def ttft_p99_ms(self) -> float:
        return percentile(self.ttfts_ms, 99)

    def merge(self, other: StreamResult) -> StreamResult:
        """Both rounds together: their windows add up, their samples pool."""
        return StreamResult(
            concurrency=self.concurrency,
            duration_s=self.duration_s + other.duration_s,
            completed=self.completed + other.completed,
            failures=dict(Counter(self.failures) + Counter(other.failures)),
            unfinished=self.unfinished + other.unfinished,
            ttfts_ms=self.ttfts_ms + other.ttfts_ms,
            cpu_s=None if self.cpu_s is None or other.cpu_s is None else self.cpu_s + other.cpu_s,
        )


@dataclass
class _Tally:
    start: float
    end: float
    ttfts: list[float] = field(default_factory=list)
    completed: int = 0
    failures: Counter[str] = field(default_factory=Counter)
    cpu_s: float | None = None


async def _window_cpu(pid: int, tally: _Tally) -> None:
    """CPU seconds ``pid`` uses between the window's start and end, into ``tally.cpu_s``."""
    await asyncio.sleep(max(0.0, tally.start - time.perf_counter()))
    before = cpu_seconds(pid)
    await asyncio.sleep(max(0.0, tally.end - time.perf_counter()))
    tally.cpu_s = cpu_seconds(pid) - before


def _has_content(line: bytes) -> bool:
    """Whether an SSE line is a chunk whose delta carries text (not the role-only first chunk)."""
    if not line.startswith(b"data:") or line == _DONE:
        return False
    try:
        event = orjson.loads(line[5:])
    except orjson.JSONDecodeError:
        return False
    choices = event.get("choices") if isinstance(event, dict) else None
    return any(isinstance(c, dict) and (c.get("delta") or {}).get("content") for c in choices or [])


class _StreamFailed(Exception):
    """A stream that did not deliver content and end with ``data: [DONE]``; the message says how."""


async def _stream_once(session: aiohttp.ClientSession, target: Target) -> float:
    """Seconds to the first content-bearing event; raises ``_StreamFailed`` when the stream is not complete."""
    started = time.perf_counter()
    ttft: float | None = None
    last = b""
    async with session.post(target.chat_url, data=target.body(stream=True), headers=target.headers) as resp:
        if resp.status != 200:
            await resp.read()
            raise _StreamFailed(f"status {resp.status}")
        async for raw in resp.content:
            line = raw.strip()
            if not line:
                continue
            last = line
            if ttft is None and _has_content(line):
                ttft = time.perf_counter() - started
    if ttft is None:
        raise _StreamFailed("no content")
    if last != _DONE:
        raise _StreamFailed("no [DONE]")
    return ttft


async def _client(session: aiohttp.ClientSession, target: Target, tally: _Tally, first_at: float) -> None:
    await asyncio.sleep(max(0.0, first_at - time.perf_counter()))
    while (started := time.perf_counter()) < tally.end:
        try:
            ttft = await _stream_once(session, target)
        except (_StreamFailed, aiohttp.ClientError, TimeoutError) as exc:
            tally.failures[str(exc) if isinstance(exc, _StreamFailed) else type(exc).__name__] += 1
            await asyncio.sleep(0.01)  # do not spin on a failing target
            continue
        ended = time.perf_counter()
        if started >= tally.start:
            tally.ttfts.append(ttft)
        if tally.start <= ended <= tally.end:
            tally.completed += 1


async def _measure(
    target: Target, concurrency: int, duration_s: float, warmup_s: float, grace_s: float, cpu_pid: int | None
) -> StreamResult:
    now = time.perf_counter()
    tally = _Tally(start=now + warmup_s, end=now + warmup_s + duration_s)
    connector = aiohttp.TCPConnector(limit=concurrency, keepalive_timeout=60)
    timeout = aiohttp.ClientTimeout(total=None, sock_read=grace_s)
    meter = asyncio.create_task(_window_cpu(cpu_pid, tally)) if cpu_pid is not None else None
    async with aiohttp.ClientSession(connector=connector, timeout=timeout) as session:
        # Stagger the first streams over half the warm-up so the clients do not move in lockstep.
        clients = [
            asyncio.create_task(_client(session, target, tally, now + i * warmup_s / 2 / concurrency))
            for i in range(concurrency)
        ]
        _, pending = await asyncio.wait(clients, timeout=warmup_s + duration_s + grace_s)
        for task in pending:
            task.cancel()
        await asyncio.gather(*pending, return_exceptions=True)
    if meter is not None:
        await meter
    return StreamResult(
        concurrency=concurrency,
        duration_s=duration_s,
        completed=tally.completed,
        failures=dict(tally.failures),
        unfinished=len(pending),
        ttfts_ms=tuple(x * 1e3 for x in tally.ttfts),
        cpu_s=tally.cpu_s,
    )


def concurrent_streams(
    target: Target,
    *,
    concurrency: int,
    duration_s: float,
    warmup_s: float,
    grace_s: float = 15.0,
    cpu_pid: int | None = None,
) -> StreamResult:
    """``concurrency`` clients stream back to back for ``warmup_s + duration_s``; only the second part is counted.

    A stream counts when it ends inside the window; its time to first token counts when it started inside it.
    With ``cpu_pid``, the CPU time that process used inside the window is measured too.
    """
    return uvloop.run(_measure(target, concurrency, duration_s, warmup_s, grace_s, cpu_pid))
