"""``--timeline``: where each quiet request's time to first token went, across the benchmark's processes.

Every process stamps the requests it sees with ``time.monotonic()`` (one clock for the whole machine,
``CLOCK_MONOTONIC``), keyed by the tag at the start of each prompt (``quiet 17``, ``noisy 203``), so one request's
stamps can be joined across the load generator, the gateway and the engines:

- the load generator: when it began sending, and when the first content-bearing SSE chunk reached it;
- the gateway and the engines (``Stamps``, an ASGI middleware around their apps): when the request reached the
  app, and when the app handed the first content-bearing chunk to the server;
- every process: its event loop's lag (``LoopLag``: how late a 2 ms timer fired), and its threads' time spent
  runnable but waiting for a CPU (``run_delay``, Linux ``/proc/<pid>/task/*/schedstat``).

The time to first token the load generator measures is then six consecutive parts: ``send`` (client, until the
gateway's app has the request), ``queue`` (the gateway: auth, the fair queue, the pick, until it sends upstream),
``connect`` (until the engine's app has it), ``engine`` (slot, prefill lane, prefill, until its first chunk),
``relay`` (the engine's first chunk, until the gateway's app sends it) and ``receive`` (until the client has read
it). Benchmark instrumentation only.
"""

from __future__ import annotations

import asyncio
import bisect
import gc
import re
import statistics
import time
from array import array
from collections.abc import Iterable
from contextvars import ContextVar
from pathlib import Path
from typing import Any

import orjson

__all__ = ["LoopLag", "Stamps", "mark", "parts_report", "run_delay_s", "tag_of"]

_CURRENT: ContextVar[dict[str, Any] | None] = ContextVar("bench_timeline_record", default=None)

_TAG = re.compile(rb"\b(quiet|noisy|app) (\d+) ")
_CONTENT = b'"content":"'


def mark(name: str) -> None:
    """Stamp the request being served by this task (``Stamps``) with ``name``, once."""
    record = _CURRENT.get()
    if record is not None and name not in record:
        record[name] = time.monotonic()


def tag_of(body: bytes) -> str | None:
    """The request's tag (``quiet 17``) from its JSON body, or None."""
    match = _TAG.search(body)
    return None if match is None else f"{match.group(1).decode()} {match.group(2).decode()}"


class Stamps:
    """ASGI middleware: per tagged HTTP request, when it reached the app (``in``), when the app sent its first
    content-bearing body chunk (``first``) and when the app returned (``end``), in ``records``. With ``lag``,
    ``GET /_timeline`` answers the records and the lag samples so far (a process that a signal ends, as uvicorn's
    re-raised SIGTERM ends the gateway, cannot write them on its way out)."""

    def __init__(self, app: Any, records: list[dict[str, Any]], lag: LoopLag | None = None) -> None:
        self.app = app
        self.records = records
        self.lag = lag

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        if self.lag is not None and scope["path"] == "/_timeline":
            body = orjson.dumps({"stamps": self.records, "lag": self.lag.samples.tolist(), "gc": self.lag.collections})
            await send(
                {"type": "http.response.start", "status": 200, "headers": [(b"content-type", b"application/json")]}
            )
            await send({"type": "http.response.body", "body": body})
            return
        record: dict[str, Any] = {"in": time.monotonic()}

        async def receive_tagged() -> Any:
            message = await receive()
            if "tag" not in record and message["type"] == "http.request":
                tag = tag_of(message.get("body", b""))
                if tag is not None:
                    record["tag"] = tag
            return message

        async def send_stamped(message: Any) -> None:
            if (
                "first" not in record
                and message["type"] == "http.response.body"
                and _CONTENT in message.get("body", b"")
            ):
                record["first"] = time.monotonic()
            await send(message)

        token = _CURRENT.set(record)
        try:
            await self.app(scope, receive_tagged, send_stamped)
        finally:
            _CURRENT.reset(token)
            record["end"] = time.monotonic()
            if "tag" in record:
                self.records.append(record)


class LoopLag:
    """How late a ``period`` timer fires on this event loop: (when, lag) pairs, kept in memory; and the
    process's garbage collections of the oldest generation: (when, seconds) pairs in ``collections``."""

    def __init__(self, period: float = 0.002) -> None:
        self.period = period
        self.samples = array("d")
        self.collections: list[tuple[float, float]] = []
        self._gc_start = 0.0
        self._task: asyncio.Task[None] | None = None

    def start(self) -> None:
        self._task = asyncio.get_running_loop().create_task(self._run())
        gc.callbacks.append(self._gc)

    def _gc(self, phase: str, info: dict[str, Any]) -> None:
        if info.get("generation") != 2:
            return
        now = time.monotonic()
        if phase == "start":
            self._gc_start = now
        else:
            self.collections.append((self._gc_start, now - self._gc_start))

    async def _run(self) -> None:
        while True:
            before = time.monotonic()
            await asyncio.sleep(self.period)
            now = time.monotonic()
            self.samples.extend((now, now - before - self.period))

    def stop(self) -> list[tuple[float, float]]:
        if self._task is not None:
            self._task.cancel()
        if self._gc in gc.callbacks:
            gc.callbacks.remove(self._gc)
        values = self.samples
        return [(values[i], values[i + 1]) for i in range(0, len(values), 2)]


def run_delay_s(pid: int) -> float:
    """Seconds the process's threads have spent runnable but waiting for a CPU (Linux schedstat)."""
    total = 0
    for task in Path(f"/proc/{pid}/task").iterdir():
        try:
            total += int((task / "schedstat").read_text().split()[1])
        except (FileNotFoundError, ProcessLookupError, IndexError):
            continue
    return total / 1e9


def write(path: Path, stamps: list[dict[str, Any]], lag: LoopLag) -> None:
    samples = lag.stop()
    path.write_bytes(orjson.dumps({"stamps": stamps, "lag": samples, "gc": lag.collections}))


Pauses = list[tuple[float, float]]


def read(path: Path) -> tuple[dict[str, dict[str, Any]], Pauses, Pauses]:
    """A process's stamps by tag, its loop's lag samples and its oldest-generation collections."""
    data = orjson.loads(path.read_bytes())
    lag = data["lag"]
    if lag and not isinstance(lag[0], list):  # flat, from ``GET /_timeline``
        lag = list(zip(lag[::2], lag[1::2], strict=True))
    collections = [(t, d) for t, d in data.get("gc", [])]
    return {s["tag"]: s for s in data["stamps"]}, [(t, v) for t, v in lag], collections


def _max_lag(lag: list[tuple[float, float]], start: float, end: float) -> float:
    """The largest lag of a timer that fired between ``start`` and ``end`` (a loop blocked over the interval
    shows as a late timer firing after it; so the window reaches one period past ``end``)."""
    i = bisect.bisect_left(lag, (start, -1.0))
    most = 0.0
    while i < len(lag) and lag[i][0] <= end + 0.003:
        most = max(most, lag[i][1])
        i += 1
    return most


def _lag_summary(lag: list[tuple[float, float]]) -> str:
    if not lag:
        return "no samples"
    values = sorted(v for _t, v in lag)
    p99 = values[min(len(values) - 1, int(len(values) * 0.99))]
    late = sum(1 for v in values if v > 0.010)
    p50 = values[len(values) // 2]
    return f"p50 {p50 * 1000:.1f} p99 {p99 * 1000:.1f} max {values[-1] * 1000:.0f} ms, {late} > 10 ms"


PARTS = ("send", "queue", "connect", "engine", "relay", "receive")


def parts_report(
    client: Iterable[dict[str, Any]],
    gateway: Path,
    engines: Path,
    lags: dict[str, Pauses],
    collections: dict[str, Pauses],
    tenant: str = "quiet",
    share: float = 0.02,
) -> str:
    """The load generator's time to first token of ``tenant``'s requests, split into ``PARTS``: p50 and p99 of each
    part, the mean of each over the slowest ``share`` of requests, and those requests one by one with each process's
    largest event-loop lag while they were under way. ``client``: the load generator's records (``tag``, ``sent``,
    ``first``); ``lags`` and ``collections``: process name -> its ``LoopLag`` samples and collections."""
    gw, gw_lag, gw_gc = read(gateway)
    en, en_lag, en_gc = read(engines)
    lags = {**lags, "gateway": gw_lag, "engines": en_lag}
    collections = {**collections, "gateway": gw_gc, "engines": en_gc}
    rows = []
    for c in client:
        if not c["tag"].startswith(tenant + " ") or c.get("first") is None:
            continue
        g, e = gw.get(c["tag"]), en.get(c["tag"])
        if g is None or e is None or "first" not in g or "first" not in e or "upstream" not in g:
            continue
        rows.append({
            "tag": c["tag"], "sent": c["sent"], "ttft": c["first"] - c["sent"],
            "send": g["in"] - c["sent"], "queue": g["upstream"] - g["in"], "connect": e["in"] - g["upstream"],
            "engine": e["first"] - e["in"], "relay": g["first"] - e["first"], "receive": c["first"] - g["first"],
            "lag": {name: _max_lag(samples, c["sent"], c["first"]) for name, samples in lags.items()},
        })  # fmt: skip
    if not rows:
        return "    (no joined requests)"
    rows.sort(key=lambda r: r["ttft"])

    def q(values: list[float], p: float) -> float:
        if len(values) < 2:
            return values[0]
        return statistics.quantiles(values, n=100, method="inclusive")[int(p * 100) - 1]

    lines = [f"    {tenant}'s TTFT split by process ({len(rows)} requests joined), ms:"]
    lines.append("      " + f"{'':<14}" + "".join(f"{p:>9}" for p in ("ttft", *PARTS)))
    for label, p in (("p50", 0.5), ("p99", 0.99)):
        values = [q([r[k] for r in rows], p) * 1000 for k in ("ttft", *PARTS)]
        lines.append(f"      {label + ' of each':<14}" + "".join(f"{v:>9.1f}" for v in values))
    n = max(1, round(len(rows) * share))
    slow = rows[-n:]
    means = [sum(r[k] for r in slow) / n * 1000 for k in ("ttft", *PARTS)]
    lines.append(f"      {'slowest ' + str(n) + ' mean':<14}" + "".join(f"{v:>9.1f}" for v in means))
    for r in rows[-n:]:
        parts = " ".join(f"{k} {r[k] * 1000:.0f}" for k in PARTS)
        lag = ", ".join(f"{k} {v * 1000:.0f}" for k, v in r["lag"].items())
        lines.append(f"      {r['tag']:<10} ttft {r['ttft'] * 1000:4.0f} = {parts}; largest loop lag meanwhile: {lag}")
    start = min(r["sent"] for r in rows)
    for name, samples in lags.items():
        stalls = [f"{t - start:+.1f}s {v * 1000:.0f}" for t, v in samples if v > 0.010][:8]
        more = f"; stalls > 10 ms at (s after the first {tenant} request, ms): {', '.join(stalls)}" if stalls else ""
        lines.append(f"    event-loop lag, {name}: {_lag_summary(samples)}{more}")
    for name, pauses in collections.items():
        if pauses:
            longest = sorted(pauses, key=lambda p: -p[1])[:4]
            at = ", ".join(f"{t - start:+.1f}s {d * 1000:.0f}" for t, d in longest)
            lines.append(f"    oldest-generation GC, {name}: {len(pauses)}, longest (s, ms): {at}")
    return "\n".join(lines)
