"""Reading an engine's own Prometheus metrics into the numbers the picker uses.

vLLM: ``vllm:num_requests_running``, ``vllm:num_requests_waiting``, ``vllm:kv_cache_usage_perc`` (V1; V0's
``vllm:gpu_cache_usage_perc`` too), ``vllm:prefix_cache_hits_total`` / ``_queries_total``, and, for the size of
its KV cache in tokens, ``vllm:prompt_tokens_total`` and ``vllm:cache_config_info``'s ``num_gpu_blocks`` and
``block_size`` labels. TGI: ``tgi_queue_size`` and ``tgi_batch_current_size``. llama.cpp (``--metrics``):
``llamacpp:requests_processing``, ``llamacpp:requests_deferred``, ``llamacpp:kv_cache_usage_ratio`` and
``llamacpp:prompt_tokens_total``. Series of several models are summed.

Only the names above are read, line by line, from a body capped in size: an engine's metrics are untrusted input.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass

__all__ = ["EngineSample", "parse_engine_metrics"]

_RUNNING = {"vllm:num_requests_running", "tgi_batch_current_size", "llamacpp:requests_processing"}
_WAITING = {"vllm:num_requests_waiting", "tgi_queue_size", "llamacpp:requests_deferred"}
_KV = {"vllm:kv_cache_usage_perc", "vllm:gpu_cache_usage_perc", "llamacpp:kv_cache_usage_ratio"}
_HITS = {"vllm:prefix_cache_hits_total", "vllm:gpu_prefix_cache_hits_total"}
_QUERIES = {"vllm:prefix_cache_queries_total", "vllm:gpu_prefix_cache_queries_total"}
_PROMPT_TOKENS = {"vllm:prompt_tokens_total", "llamacpp:prompt_tokens_total"}
_CACHE_CONFIG = "vllm:cache_config_info"
_NAMES = _RUNNING | _WAITING | _KV | _HITS | _QUERIES | _PROMPT_TOKENS | {_CACHE_CONFIG}
_BLOCKS = re.compile(r'[{,]\s*num_gpu_blocks="(\d{1,12})"')
_BLOCK_SIZE = re.compile(r'[{,]\s*block_size="(\d{1,9})"')
MAX_KV_TOKENS = 1 << 40  # more than any engine holds: a bigger claim is ignored


@dataclass(frozen=True, slots=True)
class EngineSample:
    running: float
    waiting: float
    kv_usage: float
    prefix_hits: float | None
    prefix_queries: float | None
    prompt_tokens: float | None = None
    """Prompt tokens the engine has processed since it started (a counter)."""
    kv_capacity_tokens: float | None = None
    """The engine's KV cache in tokens (``num_gpu_blocks x block_size``), where it says."""


def parse_engine_metrics(text: str) -> EngineSample | None:
    """The sample, or None when the text has none of the load series (not an engine we know)."""
    running = waiting = kv = 0.0
    hits = queries = prompt = capacity = None
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
        if name == _CACHE_CONFIG:
            capacity = _kv_capacity(line[brace:] if brace >= 0 else "", capacity)
            continue
        try:
            value = float(rest.split()[0])
        except (ValueError, IndexError):
            continue
        if not math.isfinite(value) or value < 0:  # NaN, infinite or negative: ignore
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
        elif name in _QUERIES:
            queries = (queries or 0.0) + value
        else:
            prompt = (prompt or 0.0) + value
    if not seen:
        return None
    return EngineSample(running, waiting, kv, hits, queries, prompt, capacity)


def _kv_capacity(labels: str, total: float | None) -> float | None:
    """Add one ``cache_config_info`` series' ``num_gpu_blocks x block_size`` to ``total`` (one per engine)."""
    blocks, size = _BLOCKS.search(labels), _BLOCK_SIZE.search(labels)
    if blocks is None or size is None:
        return total
    tokens = float(blocks.group(1)) * float(size.group(1))
    if not 0 < tokens <= MAX_KV_TOKENS:
        return total
    return (total or 0.0) + tokens
