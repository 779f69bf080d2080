"""``POST /v1/messages`` (Anthropic Messages) and ``POST /v1/messages/count_tokens``."""

from __future__ import annotations

from interlock.gateway.context import RequestContext, optional, parse_json_object, require
from interlock.gateway.dispatch.apis import API
from interlock.gateway.dispatch.exchange import Exchange
from interlock.gateway.errors import InvalidRequestError, UnsupportedEndpointError

__all__ = ["count_tokens", "messages"]


async def messages(ctx: RequestContext) -> None:
    payload = parse_json_object(ctx.body)
    model = require(payload, "model", str, "a string")
    require(payload, "max_tokens", int, "an integer")
    if not require(payload, "messages", list, "an array"):
        raise InvalidRequestError("messages: at least one message is required", param="messages")
    stream = optional(payload, "stream", bool, "a boolean") or False
    exchange = Exchange(ctx, ctx.route(model), API.MESSAGES, payload)
    await (exchange.stream() if stream else exchange.unary())


async def count_tokens(ctx: RequestContext) -> None:
    """Counted by the route's Anthropic backends; OpenAI-compatible APIs have no such endpoint, and a guess
    from a tokenizer that is not the model's would be a number without a meaning."""
    payload = parse_json_object(ctx.body)
    model = require(payload, "model", str, "a string")
    require(payload, "messages", list, "an array")
    plan = ctx.route(model)
    if not any(t.backend.api is API.MESSAGES for t in (*plan.targets, *plan.fallbacks)):
        raise UnsupportedEndpointError(
            f"Token counting needs an Anthropic backend, and no backend of route {model!r} is one; "
            "the usage of a real request reports the exact count."
        )
    await Exchange(ctx, plan, API.MESSAGES, payload, path=("/messages/count_tokens", API.MESSAGES)).unary()
