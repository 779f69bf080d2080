"""``POST /v1/embeddings``: routed like chat, relayed as bytes."""

from __future__ import annotations

from interlock.gateway.context import RequestContext, parse_json_object, require
from interlock.gateway.metering import usage_from_openai_body
from interlock.gateway.unary import relay_unary

__all__ = ["embeddings"]


async def embeddings(ctx: RequestContext) -> None:
    payload = parse_json_object(ctx.body)
    model = require(payload, "model", str, "a string")
    require(payload, "input", (str, list), "a string or an array")
    plan = ctx.route(model)
    await relay_unary(ctx, plan, payload, "/embeddings", usage_of=usage_from_openai_body)
