"""Reading an engine's own Prometheus metrics into the numbers the picker uses.

vLLM: ``vllm:num_requests_running``, ``vllm:num_requests_waiting``, ``vllm:kv_cache_usage_perc`` (V1; V0's
``vllm:gpu_cache_usage_perc`` too), ``vllm:prefix_cache_hits_total`` / ``_queries_total``. TGI: ``tgi_queue_size``
and ``tgi_batch_current_size``. llama.cpp (``--metrics``): ``llamacpp:requests_processing``,
``llamacpp:requests_deferred`` and ``llamacpp:kv_cache_usage_ratio``. Series of several models are summed.

Only the names above are read, line by line, from a body capped in size: an engine's metrics are untrusted input.
"""

from __future__ import annotations

from dataclasses import dataclass

__all__ = ["EngineSample", "parse_engine_metrics"]

_RUNNING = {"vllm:num_requests_running", "tgi_batch_current_size", "llamacpp:requests_processing"}
_WAITING = {"vllm:num_requests_waiting", "tgi_queue_size", "llamacpp:requests_deferred"}
_KV = {"vllm:kv_cache_usage_perc", "vllm:gpu_cache_usage_perc", "llamacpp:kv_cache_usage_ratio"}
_HITS = {"vllm:prefix_cache_hits_total", "vllm:gpu_prefix_cache_hits_total"}
_QUERIES = {"vllm:prefix_cache_queries_total", "vllm:gpu_prefix_cache_queries_total"}
_NAMES = _RUNNING | _WAITING | _KV | _HITS | _QUERIES


@dataclass(frozen=True, slots=True)
class EngineSample:
    running: float
    waiting: float
    kv_usage: float
    prefix_hits: float | None
    prefix_queries: float | None


def parse_engine_metrics(text: str) -> EngineSample | None:
    """The sample, or None when the text has none of the load series (not an engine we know)."""
    running = waiting = kv = 0.0
    hits = queries = None
    seen = False
    for line in text.splitlines():
        if not line or line[0] == "#":
            continue
        brace = line.find("{")
        if brace >= 0:
            name, rest = line[:brace], line[line.rfind("}") + 1 :]
        else:
            name, _, rest = line.partition(" ")
        if name not in _NAMES:
            continue
        try:
            value = float(rest.split()[0])
        except (ValueError, IndexError):
            continue
        if value != value or value < 0:  # NaN or negative: ignore
            continue
        if name in _RUNNING:
            running += value
            seen = True
        elif name in _WAITING:
            waiting += value
            seen = True
        elif name in _KV:
            kv = max(kv, min(1.0, value))
        elif name in _HITS:
            hits = (hits or 0.0) + value
        else:
            queries = (queries or 0.0) + value
    if not seen:
        return None
    return EngineSample(running, waiting, kv, hits, queries)
