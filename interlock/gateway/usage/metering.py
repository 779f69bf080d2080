"""Usage and cost of one request: read from the upstream's answer, priced with the compiled price table."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import orjson

from interlock.gatewayconfig.model import ModelPrice

__all__ = ["Usage", "add_usage", "cost_usd", "usage_from_anthropic", "usage_from_openai", "usage_from_openai_body"]


@dataclass(slots=True)
class Usage:
    """Token counts of one request, normalised across APIs.

    ``input_tokens`` counts every prompt token (OpenAI's ``prompt_tokens``; for Anthropic the sum of
    ``input_tokens``, ``cache_read_input_tokens`` and ``cache_creation_input_tokens``). ``cached_tokens`` is
    the part read from a prompt cache, ``cache_creation_tokens`` the part written to one.
    """

    input_tokens: int = 0
    output_tokens: int = 0
    cached_tokens: int = 0
    cache_creation_tokens: int = 0
    estimated: bool = False


def _int(value: Any) -> int:
    return value if isinstance(value, int) and value >= 0 else 0


def usage_from_openai(usage: Any) -> Usage | None:
    """Read an OpenAI ``usage`` object (chat completions or embeddings); None when absent or malformed."""
    if not isinstance(usage, dict):
        return None
    details = usage.get("prompt_tokens_details")
    cached = _int(details.get("cached_tokens")) if isinstance(details, dict) else 0
    return Usage(
        input_tokens=_int(usage.get("prompt_tokens")),
        output_tokens=_int(usage.get("completion_tokens")),
        cached_tokens=cached,
    )


def usage_from_anthropic(usage: Any, into: Usage | None = None) -> Usage | None:
    """Read an Anthropic ``usage`` object, from a message, ``message_start`` or ``message_delta``.

    Anthropic reports uncached input, cache reads and cache writes apart, and a stream splits them between
    ``message_start`` and ``message_delta``; fields present here update ``into`` (a new Usage by default).
    """
    if not isinstance(usage, dict):
        return into
    out = into if into is not None else Usage()
    uncached = out.input_tokens - out.cached_tokens - out.cache_creation_tokens
    if usage.get("input_tokens") is not None:
        uncached = _int(usage["input_tokens"])
    if usage.get("cache_read_input_tokens") is not None:
        out.cached_tokens = _int(usage["cache_read_input_tokens"])
    if usage.get("cache_creation_input_tokens") is not None:
        out.cache_creation_tokens = _int(usage["cache_creation_input_tokens"])
    out.input_tokens = uncached + out.cached_tokens + out.cache_creation_tokens
    if usage.get("output_tokens") is not None:
        out.output_tokens = _int(usage["output_tokens"])
    return out


def add_usage(total: Usage | None, more: Usage | None) -> Usage | None:
    """The sum of two usages (either may be unknown); estimated when either part was."""
    if total is None or more is None:
        return more if total is None else total
    return Usage(
        input_tokens=total.input_tokens + more.input_tokens,
        output_tokens=total.output_tokens + more.output_tokens,
        cached_tokens=total.cached_tokens + more.cached_tokens,
        cache_creation_tokens=total.cache_creation_tokens + more.cache_creation_tokens,
        estimated=total.estimated or more.estimated,
    )


def cost_usd(usage: Usage, price: ModelPrice | None) -> float:
    """USD for the usage: uncached input, cached input and output at their own prices."""
    if price is None:
        return 0.0
    uncached = max(0, usage.input_tokens - usage.cached_tokens)
    return (
        uncached * price.input_per_million
        + usage.cached_tokens * price.cached_input_per_million
        + usage.output_tokens * price.output_per_million
    ) / 1_000_000


def usage_from_openai_body(body: bytes) -> Usage | None:
    """Usage of a unary OpenAI response body (chat completion or embeddings)."""
    try:
        data = orjson.loads(body)
    except orjson.JSONDecodeError:
        return None
    return usage_from_openai(data.get("usage")) if isinstance(data, dict) else None
