"""What a request reserves at admission: its worst case in tokens and in USD, known before any upstream answers.

- Input: the request body's size in bytes, plus ``IMAGE_TOKENS`` for every image part. A byte-level BPE token
  is at least one byte of text, and the JSON around the text (quotes, keys, braces: at least 25 bytes a message)
  outweighs the chat template's few tokens a message, so the body's bytes bound the prompt's tokens from above
  without tokenizing anything (no per-request tokenizer work on the hot path; measured in bench/RESULTS.md). Images
  are the exception (a short URL can cost a thousand tokens), hence the allowance per image.
- Output: the request's own cap (``max_completion_tokens``, ``max_tokens`` or ``max_output_tokens``, times ``n``),
  else the largest ``maxOutputTokens`` among the route's targets and fallbacks (each model's, or the gateway's
  ``default_max_output_tokens`` where a model has none). Embeddings answer no tokens.
- USD: those tokens at the highest input and output prices among the route's targets and fallbacks (the request
  may end up on any of them; the snapshot's price overrides count).

The reservation is an upper bound of what the request will cost, except when its answer is longer than the output
reserved (no cap in the request and the model's ``maxOutputTokens`` unset or wrong): then that request alone can
cost more than it reserved.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from interlock.gateway.context import Services
    from interlock.gateway.dispatch.plan import RoutePlan

__all__ = ["IMAGE_TOKENS", "input_bound", "output_cap", "reserve_usd"]

IMAGE_TOKENS = 1600
"""Tokens reserved per image part: above what OpenAI (high detail) and Anthropic charge for the largest image."""

_CAP_FIELDS = ("max_completion_tokens", "max_tokens", "max_output_tokens")


def input_bound(body: bytes) -> int:
    """An upper bound of the request's input tokens (see the module docstring)."""
    return len(body) + IMAGE_TOKENS * body.count(b'"image')


def output_cap(payload: dict[str, Any], default: int) -> int:
    """The most output tokens the request can be answered with."""
    cap = default
    for name in _CAP_FIELDS:
        value = payload.get(name)
        if isinstance(value, int) and not isinstance(value, bool) and value > 0:
            cap = value
            break
    choices = payload.get("n")
    if isinstance(choices, int) and not isinstance(choices, bool) and choices > 1:
        cap *= min(choices, 128)
    return cap


def reserve_usd(plan: RoutePlan, services: Services, input_tokens: int, output_tokens: int) -> float:
    """The tokens at the highest prices among the route's targets and fallbacks."""
    input_price = output_price = 0.0
    for target in (*plan.targets, *plan.fallbacks):
        price = services.price(target)
        if price is not None:
            input_price = max(input_price, price.input_per_million, price.cached_input_per_million)
            output_price = max(output_price, price.output_per_million)
    return (input_tokens * input_price + output_tokens * output_price) / 1_000_000
