"""``POST /v1/responses``: the stateless subset of the OpenAI Responses API, served by any chat upstream."""

from __future__ import annotations

from interlock.gateway.context import RequestContext, optional, parse_json_object, require
from interlock.gateway.dispatch.apis import API
from interlock.gateway.dispatch.exchange import Exchange

__all__ = ["responses"]


async def responses(ctx: RequestContext) -> None:
    payload = parse_json_object(ctx.body)
    model = require(payload, "model", str, "a string")
    require(payload, "input", (str, list), "a string or an array")
    stream = optional(payload, "stream", bool, "a boolean") or False
    exchange = Exchange(ctx, ctx.route(model), API.RESPONSES, payload)
    await (exchange.stream() if stream else exchange.unary())
