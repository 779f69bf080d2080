"""vLLM's own Prometheus metrics, measured on the mock's generation requests (``MockSettings.engine_metrics``).

With them the mock stands in for a self-hosted vLLM engine behind the gateway: ``GET /metrics`` exposes the
``vllm:*`` series the latency dashboard reads, with vLLM's names, types, help, buckets and labels (``model_name``,
``engine``; ``finished_reason`` on ``vllm:request_success_total``). Each model name behaves as one vLLM engine
(vLLM serves one model per engine, ``engine="0"``). The models the mock lists have their series, at zero, from the
start, as vLLM's served model does (so Prometheus sees the first requests as an increase); any other name the mock
is asked for gets them with its first request.

The values follow the mock's real traffic. A chat or Messages request that passed validation *waits* until one of
the engine's ``max_num_seqs`` slots is free, then *runs* until its answer is sent or its client leaves. Its prompt
tokens count when it starts running; each streamed chunk that reaches the client is one engine step, and counts
one generated token until the answer's count is reached (a completed answer credits the rest; a unary answer is
one step). Time to first token, inter-token latency and end-to-end latency are measured from its arrival with
``time.monotonic``. KV-cache usage is the running requests' prompt and generated tokens over ``kv_cache_tokens``,
capped at 1. The mock never evicts a running request, so ``vllm:num_preemptions_total`` stays 0. Counters live as
long as the app: ``/_mock/reset`` forgets the stats, not these (a Prometheus counter only resets on restart).
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Iterable
from contextlib import asynccontextmanager

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest

__all__ = ["FINISH_REASONS", "METRIC_NAMES", "EngineMetrics", "EngineRequest", "engine_request"]

FINISH_REASONS = ("stop", "length", "abort")  # vLLM's FinishReason, as its label values
ENGINE = "0"

# vLLM's buckets (vllm/v1/metrics/loggers.py).
_TTFT_BUCKETS = (
    *(0.001, 0.005, 0.01, 0.02, 0.04, 0.06, 0.08, 0.1, 0.25, 0.5, 0.75, 1.0),
    *(2.5, 5.0, 7.5, 10.0, 20.0, 40.0, 80.0, 160.0, 640.0, 2560.0),
)
_ITL_BUCKETS = (
    *(0.01, 0.025, 0.05, 0.075, 0.1, 0.15, 0.2, 0.3, 0.4, 0.5, 0.75, 1.0),
    *(2.5, 5.0, 7.5, 10.0, 20.0, 40.0, 80.0),
)
_E2E_BUCKETS = (
    *(0.3, 0.5, 0.8, 1.0, 1.5, 2.0, 2.5, 5.0, 10.0, 15.0, 20.0, 30.0, 40.0),
    *(50.0, 60.0, 120.0, 240.0, 480.0, 960.0, 1920.0, 7680.0),
)

# The exposed series names (counters with ``_total``, histograms by their ``_bucket``/``_sum``/``_count``).
METRIC_NAMES = (
    "vllm:num_requests_running",
    "vllm:num_requests_waiting",
    "vllm:kv_cache_usage_perc",
    "vllm:num_preemptions_total",
    "vllm:prompt_tokens_total",
    "vllm:generation_tokens_total",
    "vllm:request_success_total",
    "vllm:time_to_first_token_seconds",
    "vllm:inter_token_latency_seconds",
    "vllm:e2e_request_latency_seconds",
)


class _Engine:
    """One model name's engine: its slots, its running requests' tokens and its labelled series."""

    def __init__(self, metrics: EngineMetrics, model: str) -> None:
        labels = (model, ENGINE)
        self.running = metrics.running.labels(*labels)
        self.waiting = metrics.waiting.labels(*labels)
        self.kv_usage = metrics.kv_usage.labels(*labels)
        self.preemptions = metrics.preemptions.labels(*labels)
        self.prompt_tokens = metrics.prompt_tokens.labels(*labels)
        self.generation_tokens = metrics.generation_tokens.labels(*labels)
        self.success = {reason: metrics.success.labels(*labels, reason) for reason in FINISH_REASONS}
        self.ttft = metrics.ttft.labels(*labels)
        self.itl = metrics.itl.labels(*labels)
        self.e2e = metrics.e2e.labels(*labels)
        self.slots = asyncio.Semaphore(metrics.max_num_seqs)
        self.capacity = metrics.kv_cache_tokens
        self.kv_tokens = 0

    def hold(self, tokens: int) -> None:
        self.kv_tokens += tokens
        self.kv_usage.set(min(1.0, self.kv_tokens / self.capacity))


class EngineMetrics:
    """The ``vllm:*`` families in a registry of this app's own (never the global one), and the engines by model."""

    def __init__(self, *, models: Iterable[str] = (), kv_cache_tokens: int, max_num_seqs: int) -> None:
        self.kv_cache_tokens = kv_cache_tokens
        self.max_num_seqs = max_num_seqs
        self.registry = CollectorRegistry()
        labels = ("model_name", "engine")
        reg = self.registry
        self.running = Gauge(
            "vllm:num_requests_running", "Number of requests in model execution batches.", labels, registry=reg
        )
        self.waiting = Gauge(
            "vllm:num_requests_waiting", "Number of requests waiting to be processed.", labels, registry=reg
        )
        self.kv_usage = Gauge(
            "vllm:kv_cache_usage_perc", "KV-cache usage. 1 means 100 percent usage.", labels, registry=reg
        )
        self.preemptions = Counter(
            "vllm:num_preemptions", "Cumulative number of preemption from the engine.", labels, registry=reg
        )
        self.prompt_tokens = Counter("vllm:prompt_tokens", "Number of prefill tokens processed.", labels, registry=reg)
        self.generation_tokens = Counter(
            "vllm:generation_tokens", "Number of generation tokens processed.", labels, registry=reg
        )
        self.success = Counter(
            "vllm:request_success",
            "Count of successfully processed requests.",
            (*labels, "finished_reason"),
            registry=reg,
        )
        self.ttft = Histogram(
            "vllm:time_to_first_token_seconds",
            "Histogram of time to first token in seconds.",
            labels,
            registry=reg,
            buckets=_TTFT_BUCKETS,
        )
        self.itl = Histogram(
            "vllm:inter_token_latency_seconds",
            "Histogram of inter-token latency in seconds.",
            labels,
            registry=reg,
            buckets=_ITL_BUCKETS,
        )
        self.e2e = Histogram(
            "vllm:e2e_request_latency_seconds",
            "Histogram of e2e request latency in seconds.",
            labels,
            registry=reg,
            buckets=_E2E_BUCKETS,
        )
        self._engines: dict[str, _Engine] = {}
        for model in models:
            self.engine(model)

    def exposition(self) -> bytes:
        """The text format Prometheus scrapes."""
        return generate_latest(self.registry)

    def engine(self, model: str) -> _Engine:
        engine = self._engines.get(model)
        if engine is None:
            engine = self._engines[model] = _Engine(self, model)
        return engine

    async def admit(self, model: str, prompt_tokens: int, output_tokens: int, reason: str) -> EngineRequest:
        """Wait for a free slot of ``model``'s engine (counted as waiting), then run: prefill counted, KV held.

        ``output_tokens`` and ``reason`` (``stop`` or ``length``) describe the answer, should it complete.
        """
        arrived = time.monotonic()
        engine = self.engine(model)
        engine.waiting.inc()
        try:
            await engine.slots.acquire()
        finally:
            engine.waiting.dec()
        engine.running.inc()
        engine.prompt_tokens.inc(prompt_tokens)
        engine.hold(prompt_tokens)
        return EngineRequest(engine, arrived, prompt_tokens, output_tokens, reason)


class EngineRequest:
    """One running request: ``step()`` per output that reaches the client, then ``complete()`` or ``abort()``."""

    __slots__ = ("_arrived", "_engine", "_generated", "_last", "_output", "_prompt", "_reason", "finished")

    def __init__(self, engine: _Engine, arrived: float, prompt: int, output: int, reason: str) -> None:
        self._engine = engine
        self._arrived = arrived
        self._prompt = prompt
        self._output = output
        self._reason = reason
        self._generated = 0
        self._last: float | None = None
        self.finished: str | None = None

    def step(self) -> None:
        """Output reached the client: the first is the first token, later ones an inter-token interval."""
        if self.finished is not None:
            return
        now = time.monotonic()
        if self._last is None:
            self._engine.ttft.observe(now - self._arrived)
        else:
            self._engine.itl.observe(now - self._last)
        self._last = now
        if self._generated < self._output:
            self._generate(1)

    def complete(self) -> None:
        """The whole answer was sent: credit the rest of its tokens and finish with its reason."""
        if self.finished is None:
            self._generate(self._output - self._generated)
            self._finish(self._reason)

    def abort(self) -> None:
        """The client left, or the stream was cut or ended in an error; no-op once finished."""
        if self.finished is None:
            self._finish("abort")

    def _generate(self, tokens: int) -> None:
        if tokens > 0:
            self._generated += tokens
            self._engine.generation_tokens.inc(tokens)
            self._engine.hold(tokens)

    def _finish(self, reason: str) -> None:
        self.finished = reason
        engine = self._engine
        engine.e2e.observe(time.monotonic() - self._arrived)
        engine.success[reason].inc()
        engine.running.dec()
        engine.hold(-(self._prompt + self._generated))
        engine.slots.release()


@asynccontextmanager
async def engine_request(
    metrics: EngineMetrics | None, model: str, prompt_tokens: int, output_tokens: int, reason: str
) -> AsyncIterator[EngineRequest | None]:
    """The request's run on its engine (None without engine metrics); aborted on exit unless completed."""
    if metrics is None:
        yield None
        return
    request = await metrics.admit(model, prompt_tokens, output_tokens, reason)
    try:
        yield request
    finally:
        request.abort()
