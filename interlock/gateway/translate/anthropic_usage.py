"""Token usage between Anthropic's shape, OpenAI's shape and ``metering.Usage``.

Anthropic splits the prompt into ``input_tokens`` (neither read from nor written to the cache),
``cache_read_input_tokens`` and ``cache_creation_input_tokens``; OpenAI's ``prompt_tokens`` counts all of them and
repeats the cache reads in ``prompt_tokens_details.cached_tokens``. OpenAI has no field for cache writes, so in
OpenAI's shape they count as plain prompt tokens (and ``metering.Usage`` keeps them apart). ``Usage`` is the pivot:
``metering.usage_from_openai``/``usage_from_anthropic`` read one side into it; these functions render the other.
"""

from __future__ import annotations

from typing import Any

from interlock.gateway.usage.metering import Usage

__all__ = ["anthropic_usage", "openai_usage"]


def openai_usage(usage: Usage) -> dict[str, Any]:
    """The OpenAI chat-completions ``usage`` object for these counts."""
    return {
        "prompt_tokens": usage.input_tokens,
        "completion_tokens": usage.output_tokens,
        "total_tokens": usage.input_tokens + usage.output_tokens,
        "prompt_tokens_details": {"cached_tokens": usage.cached_tokens},
    }


def anthropic_usage(usage: Usage) -> dict[str, Any]:
    """The Anthropic ``usage`` object for these counts (``input_tokens`` is the uncached remainder)."""
    uncached = max(0, usage.input_tokens - usage.cached_tokens - usage.cache_creation_tokens)
    return {
        "input_tokens": uncached,
        "cache_creation_input_tokens": usage.cache_creation_tokens,
        "cache_read_input_tokens": usage.cached_tokens,
        "output_tokens": usage.output_tokens,
    }
