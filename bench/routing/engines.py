"""``python -m bench.routing.engines --ports 9001,9002 [engine settings]``: N simulated engines in one process.

Each is the mock provider with its engine model (``--engine-metrics``): batch slots, a paged KV cache with prefix
reuse, prefill per uncached token, decode per output token, vLLM's metrics. One process, one event loop, so that
the benchmark's three processes (engines, gateway, load) fit a 2-core machine.
"""

from __future__ import annotations

import argparse
import asyncio
import itertools
import signal
import time
from pathlib import Path
from typing import Any

import orjson
import uvloop

from bench.routing import timeline
from interlock import tokenizer
from interlock.asgiserver import EmbeddedServer
from interlock.mockprovider import MockSettings, create_app
from interlock.mockprovider.engine_metrics import EngineMetrics, EngineRequest

_TRACE: dict[int, dict[str, Any]] = {}
_DONE: list[dict[str, Any]] = []


def trace_requests() -> None:
    """Record, per request, where its time to first token went on the engine: waiting for a batch slot and KV
    blocks, waiting for the prefill lane, its prefill, and how much of its prompt the prefix cache had.
    Benchmark instrumentation only (``--trace``): wraps the engine model's methods in this process."""
    numbers = itertools.count()
    init, admit, step = EngineMetrics.__init__, EngineMetrics.admit, EngineRequest.step

    def traced_init(self: EngineMetrics, *args: Any, **kwargs: Any) -> None:
        init(self, *args, **kwargs)
        self.bench_index = next(numbers)  # type: ignore[attr-defined]

    async def traced_admit(self: EngineMetrics, model: str, prompt_tokens: int, *args: Any, **kw: Any) -> Any:
        arrived = time.monotonic()
        engine = self.engine(model)
        state = {"running_at": engine._running, "queued_at": len(engine._queue), "lane_busy_at": engine.lane.locked()}
        request = await admit(self, model, prompt_tokens, *args, **kw)
        _TRACE[id(request)] = {
            "engine": self.bench_index,  # type: ignore[attr-defined]
            "arrived": arrived,
            "admitted": time.monotonic(),
            "prompt": prompt_tokens,
            "uncached": request._uncached,
            **state,
        }
        return request

    async def traced_prefill(self: EngineRequest, sleep: Any) -> bool:
        record = _TRACE.get(id(self))
        if record is not None:
            record["lane_free"] = not self._engine.lane.locked()
        start = time.monotonic()
        seconds = self._uncached * self._engine.model.prefill_s_per_token
        if seconds > 0:
            async with self._engine.lane:
                if record is not None:
                    record["lane_at"] = time.monotonic()
                ok = await sleep(seconds)
        else:
            ok = True
        if record is not None:
            record["prefill_start"] = record.get("lane_at", start)
            record["prefill_end"] = time.monotonic()
        return ok

    def traced_step(self: EngineRequest) -> None:
        record = _TRACE.pop(id(self), None)
        if record is not None:
            record["first_step"] = time.monotonic()
            _DONE.append(record)
        step(self)

    EngineMetrics.__init__ = traced_init  # type: ignore[method-assign]
    EngineMetrics.admit = traced_admit  # type: ignore[method-assign]
    EngineRequest.prefill = traced_prefill  # type: ignore[method-assign]
    EngineRequest.step = traced_step  # type: ignore[method-assign]


async def serve(
    ports: list[int], settings: MockSettings, trace: Path | None = None, stamps_to: Path | None = None
) -> None:
    stamps: list[dict[str, Any]] = []
    lag = timeline.LoopLag()
    if stamps_to is not None:
        lag.start()
    servers = [
        EmbeddedServer(
            timeline.Stamps(create_app(settings), stamps) if stamps_to is not None else create_app(settings),
            port=port,
            lifespan="off",
        )
        for port in ports
    ]
    for server in servers:
        await server.start()
    # The mock counts tokens with a real tokenizer, built on first use (~0.15 s on the loop): build it before the
    # first request, as an engine that has been serving for a while has, so it stalls no measured request.
    tokenizer.encoding()
    print("ready", flush=True)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    await stop.wait()
    for server in servers:
        await server.stop()
    if trace is not None:
        with trace.open("wb") as out:
            out.write(b"\n".join(orjson.dumps(r) for r in _DONE))
    if stamps_to is not None:
        timeline.write(stamps_to, stamps, lag)


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.routing.engines")
    parser.add_argument("--ports", required=True)
    parser.add_argument("--settings", required=True, help="MockSettings as JSON")
    parser.add_argument("--trace", type=Path, help="write each request's engine-side times here (JSON lines)")
    parser.add_argument("--timeline", type=Path, help="write each tagged request's stamps and the loop's lag here")
    args = parser.parse_args()
    settings = MockSettings.model_validate_json(args.settings)
    if args.trace is not None:
        trace_requests()
    uvloop.run(serve([int(p) for p in args.ports.split(",")], settings, args.trace, args.timeline))


if __name__ == "__main__":
    main()
