"""``GET /v1/models`` (the public model names the caller may use) and ``GET /v1/models/{id}`` (one of them)."""

from __future__ import annotations

from interlock.gateway.context import RequestContext
from interlock.gateway.errors import ModelNotFoundError
from interlock.gateway.http.asgi import send_bytes

__all__ = ["MODEL_PREFIX", "list_models", "retrieve_model"]

MODEL_PREFIX = "/v1/models/"


async def list_models(ctx: RequestContext) -> None:
    await send_bytes(ctx.send, 200, ctx.runtime.models_for(ctx.tenant), headers=ctx.response_headers)


async def retrieve_model(ctx: RequestContext) -> None:
    """The model object of a route the caller may use; any other name is 404, as if it did not exist. The id is
    the rest of the path, so names with ``/`` work (the scope's path is already percent-decoded)."""
    model = ctx.scope["path"][len(MODEL_PREFIX) :]
    plan = ctx.runtime.routes.get(model)
    if plan is None or not plan.allows(ctx.tenant):
        raise ModelNotFoundError(f"The model {model!r} does not exist or you do not have access to it.", param="model")
    await send_bytes(ctx.send, 200, plan.model_body, headers=ctx.response_headers)
