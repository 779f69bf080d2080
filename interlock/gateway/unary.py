"""Relay a non-streaming call (chat completion, embeddings): dispatch, then send the upstream's bytes back."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import orjson

from interlock.gateway.asgi import send_bytes
from interlock.gateway.context import RequestContext
from interlock.gateway.dispatch import dispatch
from interlock.gateway.errors import GatewayTimeoutError, openai_error_from_upstream
from interlock.gateway.guard import RequestGuard
from interlock.gateway.metering import Usage, cost_usd
from interlock.gateway.routing import RoutePlan, Target

__all__ = ["body_builder", "relay_unary"]


def body_builder(payload: dict[str, Any]) -> Callable[[Target], bytes]:
    """Serialise the upstream body per target model, reusing the bytes when the model repeats.

    Only ``model`` changes between targets; ``payload`` is the gateway's own parse of the request, so writing
    into it is safe.
    """
    cache: dict[str, bytes] = {}

    def body_for(target: Target) -> bytes:
        body = cache.get(target.model)
        if body is None:
            payload["model"] = target.model
            body = cache[target.model] = orjson.dumps(payload)
        return body

    return body_for


def record(
    ctx: RequestContext,
    plan: RoutePlan,
    target: Target,
    status: int,
    usage: Usage | None,
    first_token_s: float | None = None,
) -> None:
    labels = (ctx.tenant, plan.config.model, target.backend.name, target.model)
    metrics = ctx.services.metrics
    if first_token_s is not None:
        metrics.first_token(labels, first_token_s)
    usage = usage or Usage()
    metrics.request_done(
        labels,
        status,
        ctx.elapsed(),
        input_tokens=usage.input_tokens,
        output_tokens=usage.output_tokens,
        cached_tokens=usage.cached_tokens,
        cost_usd=cost_usd(usage, target.price),
    )


async def relay_unary(
    ctx: RequestContext,
    plan: RoutePlan,
    payload: dict[str, Any],
    path: str,
    *,
    usage_of: Callable[[bytes], Usage | None],
) -> None:
    deadline = ctx.started + plan.config.timeouts.request_s

    try:
        with RequestGuard(ctx.receive, deadline):
            opened = await dispatch(
                plan,
                path=path,
                body_for=body_builder(payload),
                stream=False,
                deadline=deadline,
                metrics=ctx.services.metrics,
                on_attempt=ctx.attempting,
            )
    except TimeoutError:
        raise GatewayTimeoutError(
            f"Route {plan.config.model!r} exceeded its request timeout of {plan.config.timeouts.request_s:g}s."
        ) from None
    body = opened.body
    usage = None
    if opened.status < 300:
        usage = usage_of(body)
        content_type = opened.content_type.encode()
    else:
        body = openai_error_from_upstream(body, opened.status)
        content_type = b"application/json"
    headers = [*ctx.response_headers, (b"x-interlock-backend", ctx.backend.encode())]
    await send_bytes(ctx.send, opened.status, body, content_type=content_type, headers=headers)
    record(ctx, plan, opened.target, opened.status, usage)
