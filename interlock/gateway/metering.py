"""Usage and cost of one request: read from the upstream's answer, priced with the compiled price table."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import orjson

from interlock.gatewayconfig.model import ModelPrice

__all__ = ["Usage", "cost_usd", "usage_from_openai", "usage_from_openai_body"]


@dataclass(slots=True)
class Usage:
    """Token counts of one request. ``cached_tokens`` is the part of ``input_tokens`` served from cache."""

    input_tokens: int = 0
    output_tokens: int = 0
    cached_tokens: int = 0
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
