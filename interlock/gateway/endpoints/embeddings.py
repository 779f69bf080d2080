"""``POST /v1/embeddings``: routed like chat, relayed as bytes; only OpenAI-compatible backends embed."""

from __future__ import annotations

from interlock.gateway.context import RequestContext, parse_json_object, require
from interlock.gateway.dispatch.apis import API
from interlock.gateway.dispatch.exchange import Exchange

__all__ = ["embeddings"]


async def embeddings(ctx: RequestContext) -> None:
    payload = parse_json_object(ctx.body)
    model = require(payload, "model", str, "a string")
    require(payload, "input", (str, list), "a string or an array")
    await Exchange(ctx, ctx.route(model), API.CHAT, payload, path=("/embeddings", API.CHAT)).unary()
