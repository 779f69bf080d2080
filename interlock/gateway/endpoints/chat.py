"""``POST /v1/chat/completions``: validate only what routing needs, dispatch, relay the answer as bytes."""

from __future__ import annotations

import asyncio
from typing import Any

from interlock.gateway.asgi import send_bytes
from interlock.gateway.context import RequestContext, optional, parse_json_object, require
from interlock.gateway.dispatch import Opened, dispatch
from interlock.gateway.errors import (
    AttemptFailure,
    GatewayError,
    GatewayTimeoutError,
    InvalidRequestError,
    UpstreamError,
    openai_error_from_upstream,
)
from interlock.gateway.guard import RequestGuard
from interlock.gateway.metering import usage_from_openai_body
from interlock.gateway.relay import OpenAIStreamRelay
from interlock.gateway.routing import RoutePlan, Target
from interlock.gateway.sse import DONE, encode_data
from interlock.gateway.streaming import EventStreamWriter
from interlock.gateway.unary import body_builder, record, relay_unary

__all__ = ["chat_completions"]

PATH = "/chat/completions"


async def chat_completions(ctx: RequestContext) -> None:
    payload = parse_json_object(ctx.body)
    model = require(payload, "model", str, "a string")
    messages = require(payload, "messages", list, "an array")
    if not messages:
        raise InvalidRequestError("'messages' must contain at least one message.", param="messages")
    stream = optional(payload, "stream", bool, "a boolean") or False
    stream_options = optional(payload, "stream_options", dict, "an object")
    plan = ctx.route(model)
    if not stream:
        await relay_unary(ctx, plan, payload, PATH, usage_of=usage_from_openai_body)
        return
    wants_usage = bool(stream_options and stream_options.get("include_usage") is True)
    payload["stream_options"] = {**(stream_options or {}), "include_usage": True}
    await _stream(ctx, plan, payload, wants_usage)


def _in_stream_error(error: GatewayError) -> bytes:
    return encode_data(error.openai_body()) + DONE


async def _stream(ctx: RequestContext, plan: RoutePlan, payload: dict[str, Any], wants_usage: bool) -> None:
    """Relay a stream. Until the first byte reaches the client, failures are retried and reported with an HTTP
    status; afterwards they become one in-stream error event followed by ``[DONE]``."""
    loop = asyncio.get_running_loop()
    deadline = ctx.started + plan.config.timeouts.request_s
    writer = EventStreamWriter(ctx.send, keepalive_s=ctx.services.settings.keepalive_interval_s)
    writer.extra_headers = ctx.response_headers

    def on_attempt(target: Target) -> None:
        ctx.attempting(target)
        writer.backend = target.backend.name

    relay = OpenAIStreamRelay(client_wants_usage=wants_usage)
    opened: Opened | None = None
    status = 200
    first_at: float | None = None
    clean = False
    writer.start_keepalive()
    try:
        with RequestGuard(ctx.receive, deadline):
            try:
                opened = await dispatch(
                    plan,
                    path=PATH,
                    body_for=body_builder(payload),
                    stream=True,
                    deadline=deadline,
                    metrics=ctx.services.metrics,
                    committed=lambda: writer.committed,
                    on_attempt=on_attempt,
                )
            except GatewayError as exc:
                if not writer.committed:
                    raise
                status = exc.status
                await writer.close(_in_stream_error(exc))
                return
            if opened.chunks is None:  # the upstream refused the request itself (4xx): relay its error
                status = opened.status
                writer.cancel()
                headers = [*ctx.response_headers, (b"x-interlock-backend", ctx.backend.encode())]
                await send_bytes(ctx.send, status, openai_error_from_upstream(opened.body, status), headers=headers)
                return
            data = relay.feed(opened.body)
            if data:
                first_at = loop.time()
                await writer.write(data)
            async for chunk in opened.chunks:
                data = relay.feed(chunk)
                if data:
                    if first_at is None:
                        first_at = loop.time()
                    await writer.write(data)
            await writer.close(relay.finish())
            clean = True
    except TimeoutError:
        error = GatewayTimeoutError(
            f"Route {plan.config.model!r} exceeded its request timeout of {plan.config.timeouts.request_s:g}s."
        )
        if not writer.committed:
            raise error from None
        status = error.status
        await writer.close(_in_stream_error(error))
    except AttemptFailure as failure:  # the upstream broke the stream after it had started
        status = UpstreamError.status
        ctx.services.metrics.upstream_error(ctx.backend, failure.kind)
        await writer.close(_in_stream_error(UpstreamError(failure.message)))
    finally:
        writer.cancel()
        if opened is not None:
            opened.finish(clean=clean)
            first_token_s = first_at - ctx.started if first_at is not None else None
            record(ctx, plan, opened.target, status, relay.usage, first_token_s)
