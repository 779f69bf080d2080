"""vLLM's own Prometheus metrics, measured on the mock's generation requests (``MockSettings.engine_metrics``).

With them the mock stands in for a self-hosted vLLM engine behind the gateway: ``GET /metrics`` exposes the
``vllm:*`` series the latency dashboard reads, with vLLM's names, types, help, buckets and labels (``model_name``,
``engine``; ``finished_reason`` on ``vllm:request_success_total``). Each model name behaves as one vLLM engine
(vLLM serves one model per engine, ``engine="0"``). The models the mock lists have their series, at zero, from the
start, as vLLM's served model does (so Prometheus sees the first requests as an increase); any other name the mock
is asked for gets them with its first request.

The values follow the mock's real traffic, scheduled as an engine would schedule it (the engine model; its
parameters and their real-world sizes are in docs/routing.md). A chat or Messages request that passed validation
*waits*, first come first served, until one of the engine's ``max_num_seqs`` batch slots is free and the KV cache
(``kv_cache.KVCache``: ``kv_cache_tokens`` in blocks of ``block_size``) has the blocks its prompt and answer need
beyond the prefix it already caches, evicting least recently used cached blocks; a request larger than the whole
cache runs alone. Then it *runs* until its answer is sent or its client leaves: first its prefill, which takes
``prefill_s_per_token`` per prompt token not found in the prefix cache and holds the engine's one prefill lane
(prefill is compute-bound, so prompts are computed one after another), then one engine step of
``decode_s_per_token`` per output token, in parallel with the rest of the batch (decode is memory-bound). With both
at 0 (the default) the mock answers at full speed, paced only by ``chunk_delay_s``.

Its prompt tokens count when it starts running, and the prefix cache's queries and hits (in tokens, like vLLM's
``vllm:prefix_cache_queries``/``_hits``) then too; at least the prompt's last token is always computed. Each streamed
chunk that reaches the client is one engine step, and counts one generated token until the answer's count is
reached (a completed answer credits the rest; a unary answer is one step). Time to first token, inter-token latency
and end-to-end latency are measured from its arrival with ``time.monotonic``. KV-cache usage is the fraction of
blocks held by running requests. The mock reserves a request's answer blocks when it admits it and never evicts a
running request, so ``vllm:num_preemptions_total`` stays 0. Counters live as long as the app: ``/_mock/reset``
forgets the stats, not these (a Prometheus counter only resets on restart).
"""

from __future__ import annotations

import asyncio
import math
import time
from collections import deque
from collections.abc import AsyncIterator, Awaitable, Callable, Iterable, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest

from interlock.mockprovider.kv_cache import Allocation, KVCache, block_hashes

__all__ = ["FINISH_REASONS", "METRIC_NAMES", "EngineMetrics", "EngineModel", "EngineRequest", "engine_request"]

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
    "vllm:prefix_cache_queries_total",
    "vllm:prefix_cache_hits_total",
    "vllm:cache_config_info",
)

Sleep = Callable[[float], Awaitable[bool]]  # waits, or returns False at once when the client has left


@dataclass(frozen=True, slots=True)
class EngineModel:
    """The engine's shape and speed (``MockSettings``' fields of the same names)."""

    max_num_seqs: int = 256
    kv_cache_tokens: int = 16384
    block_size: int = 16
    prefix_caching: bool = True
    prefill_s_per_token: float = 0.0
    decode_s_per_token: float = 0.0


@dataclass(slots=True)
class _Waiter:
    hashes: list[int]
    private: int
    admitted: asyncio.Future[Allocation]


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
        self.prefix_queries = metrics.prefix_queries.labels(*labels)
        self.prefix_hits = metrics.prefix_hits.labels(*labels)
        self.model = metrics.model
        self.cache = KVCache(self.model.kv_cache_tokens // self.model.block_size, self.model.block_size)
        cache_labels = (str(self.model.block_size), str(self.cache.blocks), str(self.model.prefix_caching))
        metrics.cache_config.labels(*labels, *cache_labels).set(1)
        self.lane = asyncio.Lock()  # the prefill lane; asyncio's lock is first come first served
        self._running = 0
        self._queue: deque[_Waiter] = deque()

    async def enter(self, hashes: list[int], private: int) -> Allocation:
        """Wait (first come first served) for a batch slot and the blocks the request needs, then take them."""
        if not self._queue and self._admissible(hashes, private):
            return self._take(hashes, private)
        waiter = _Waiter(hashes, private, asyncio.get_running_loop().create_future())
        self._queue.append(waiter)
        try:
            return await waiter.admitted
        except asyncio.CancelledError:
            if waiter.admitted.done() and not waiter.admitted.cancelled():
                self.leave(waiter.admitted.result())
            else:
                self._queue.remove(waiter)
                self._admit_waiting()
            raise

    def leave(self, allocation: Allocation) -> None:
        self._running -= 1
        self.cache.release(allocation)
        self.kv_usage.set(self.cache.usage)
        self._admit_waiting()

    def _admissible(self, hashes: list[int], private: int) -> bool:
        if self._running >= self.model.max_num_seqs:
            return False
        return self._running == 0 or self.cache.fits(hashes, private)

    def _take(self, hashes: list[int], private: int) -> Allocation:
        self._running += 1
        allocation = self.cache.allocate(hashes, private)
        self.kv_usage.set(self.cache.usage)
        return allocation

    def _admit_waiting(self) -> None:
        while self._queue and self._admissible(self._queue[0].hashes, self._queue[0].private):
            waiter = self._queue.popleft()
            waiter.admitted.set_result(self._take(waiter.hashes, waiter.private))


class EngineMetrics:
    """The ``vllm:*`` families in a registry of this app's own (never the global one), and the engines by model."""

    def __init__(self, *, models: Iterable[str] = (), model: EngineModel | None = None) -> None:
        self.model = model or EngineModel()
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
        self.prefix_queries = Counter(
            "vllm:prefix_cache_queries",
            "Prefix cache queries, in terms of number of queried tokens.",
            labels,
            registry=reg,
        )
        self.prefix_hits = Counter(
            "vllm:prefix_cache_hits", "Prefix cache hits, in terms of number of cached tokens.", labels, registry=reg
        )
        self.cache_config = Gauge(
            "vllm:cache_config_info",
            "Information of the LLMEngine CacheConfig",
            (*labels, "block_size", "num_gpu_blocks", "enable_prefix_caching"),
            registry=reg,
        )
        self._engines: dict[str, _Engine] = {}
        for name in models:
            self.engine(name)

    def exposition(self) -> bytes:
        """The text format Prometheus scrapes."""
        return generate_latest(self.registry)

    def engine(self, model: str) -> _Engine:
        engine = self._engines.get(model)
        if engine is None:
            engine = self._engines[model] = _Engine(self, model)
        return engine

    async def admit(
        self, model: str, prompt_tokens: int, output_tokens: int, reason: str, prompt_ids: Sequence[int] = ()
    ) -> EngineRequest:
        """Wait for a slot and KV blocks of ``model``'s engine (counted as waiting), then run: prefill counted.

        ``output_tokens`` and ``reason`` (``stop`` or ``length``) describe the answer, should it complete;
        ``prompt_ids`` are the prompt's tokens as far as they are known, for the prefix cache.
        """
        arrived = time.monotonic()
        engine = self.engine(model)
        size = self.model.block_size
        hashes = block_hashes(prompt_ids[:prompt_tokens], size) if self.model.prefix_caching else []
        private = max(0, math.ceil((prompt_tokens + output_tokens) / size) - len(hashes))
        engine.waiting.inc()
        try:
            allocation = await engine.enter(hashes, private)
        finally:
            engine.waiting.dec()
        engine.running.inc()
        engine.prompt_tokens.inc(prompt_tokens)
        hit = min(allocation.hit_blocks * size, max(0, prompt_tokens - 1))
        engine.prefix_queries.inc(prompt_tokens)
        engine.prefix_hits.inc(hit)
        return EngineRequest(engine, allocation, arrived, prompt_tokens - hit, output_tokens, reason)


class EngineRequest:
    """One running request: ``step()`` per output that reaches the client, then ``complete()`` or ``abort()``."""

    __slots__ = (
        "_allocation",
        "_arrived",
        "_engine",
        "_generated",
        "_last",
        "_output",
        "_reason",
        "_uncached",
        "finished",
    )

    def __init__(
        self, engine: _Engine, allocation: Allocation, arrived: float, uncached: int, output: int, reason: str
    ) -> None:
        self._engine = engine
        self._allocation = allocation
        self._arrived = arrived
        self._uncached = uncached
        self._output = output
        self._reason = reason
        self._generated = 0
        self._last: float | None = None
        self.finished: str | None = None

    @property
    def decode_s(self) -> float:
        """One engine step: the pause between two output tokens."""
        return self._engine.model.decode_s_per_token

    async def prefill(self, sleep: Sleep) -> bool:
        """Compute the prompt's uncached tokens in the engine's prefill lane; False when the client left."""
        seconds = self._uncached * self._engine.model.prefill_s_per_token
        if seconds <= 0:
            return True
        async with self._engine.lane:
            return await sleep(seconds)

    async def run_unary(self, sleep: Sleep) -> bool:
        """A unary answer's whole run before it is sent: prefill, then every decode step; False when the client left."""
        return await self.prefill(sleep) and await sleep(self._output * self.decode_s)

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

    def _finish(self, reason: str) -> None:
        self.finished = reason
        engine = self._engine
        engine.e2e.observe(time.monotonic() - self._arrived)
        engine.success[reason].inc()
        engine.running.dec()
        engine.leave(self._allocation)


@asynccontextmanager
async def engine_request(
    metrics: EngineMetrics | None,
    model: str,
    prompt_tokens: int,
    output_tokens: int,
    reason: str,
    prompt_ids: Callable[[], Sequence[int]] = tuple,
) -> AsyncIterator[EngineRequest | None]:
    """The request's run on its engine (None without engine metrics); aborted on exit unless completed.

    ``prompt_ids`` is called only when the engine caches prefixes (tokenizing a prompt is not free).
    """
    if metrics is None:
        yield None
        return
    ids = prompt_ids() if metrics.model.prefix_caching else ()
    request = await metrics.admit(model, prompt_tokens, output_tokens, reason, ids)
    try:
        yield request
    finally:
        request.abort()
