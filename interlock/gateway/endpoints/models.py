"""``GET /v1/models``: the public model names the caller may use."""

from __future__ import annotations

from interlock.gateway.context import RequestContext
from interlock.gateway.http.asgi import send_bytes

__all__ = ["list_models"]


async def list_models(ctx: RequestContext) -> None:
    await send_bytes(ctx.send, 200, ctx.runtime.models_for(ctx.tenant), headers=ctx.response_headers)
