"""``POST /v1/chat/completions``: validate only what routing needs; the exchange does the rest."""

from __future__ import annotations

from interlock.gateway.context import RequestContext, optional, parse_json_object, require
from interlock.gateway.dispatch.apis import API
from interlock.gateway.dispatch.exchange import Exchange
from interlock.gateway.errors import InvalidRequestError

__all__ = ["chat_completions"]


async def chat_completions(ctx: RequestContext) -> None:
    payload = parse_json_object(ctx.body)
    model = require(payload, "model", str, "a string")
    if not require(payload, "messages", list, "an array"):
        raise InvalidRequestError("'messages' must contain at least one message.", param="messages")
    stream = optional(payload, "stream", bool, "a boolean") or False
    stream_options = optional(payload, "stream_options", dict, "an object")
    exchange = Exchange(
        ctx,
        ctx.route(model),
        API.CHAT,
        payload,
        wants_usage=bool(stream and stream_options and stream_options.get("include_usage") is True),
    )
    await (exchange.stream() if stream else exchange.unary())
