"""One client request served along a route, whatever API the client and each upstream speak.

Per attempt, the target's backend decides the crossing (``apis.CROSSINGS``): the upstream body is the client's
body with ``model`` rewritten (passthrough) or its translation; the answer is relayed as bytes or translated.
Until the first byte reaches the client, ``dispatch`` may retry and fall back, even across APIs.
"""

from __future__ import annotations

import asyncio
from typing import Any

import orjson

from interlock.gateway.context import RequestContext
from interlock.gateway.dispatch.apis import API, CROSSINGS, UPSTREAM_PATH, Crossing
from interlock.gateway.dispatch.attempts import Opened, dispatch
from interlock.gateway.dispatch.plan import RoutePlan, Target
from interlock.gateway.dispatch.structured import (
    CONSTRAINED_DECODING,
    SchemaBudgetExceeded,
    ValidatingRelay,
    content_of,
    schema_check,
    with_hint,
)
from interlock.gateway.errors import (
    AttemptFailure,
    GatewayError,
    GatewayTimeoutError,
    InvalidRequestError,
    UpstreamError,
    anthropic_error_body,
    anthropic_error_type,
    openai_error_from_upstream,
    upstream_message,
)
from interlock.gateway.http.asgi import send_bytes
from interlock.gateway.http.guard import RequestGuard
from interlock.gateway.http.streaming import EventStreamWriter
from interlock.gateway.tenancy.reservation import input_bound, output_cap
from interlock.gateway.translate.base import Event
from interlock.gateway.upstream.relay import AnthropicStreamRelay, OpenAIStreamRelay, StreamRelay, TranslatingRelay
from interlock.gateway.upstream.sse import DONE
from interlock.gateway.usage.calibration import PromptShape
from interlock.gateway.usage.estimate import StreamTally, answer_tokens, estimated, prompt_estimate
from interlock.gateway.usage.metering import Usage, add_usage, cost_usd, usage_from_anthropic, usage_from_openai

__all__ = ["Exchange", "format_cost"]

_JSON = b"application/json"
_NO_USAGE = Usage()


def _missing(usage: Usage | None) -> bool:
    """No usage, or one without prompt tokens (a translator's zeros): no chat request has an empty prompt."""
    return usage is None or usage.input_tokens == 0


def format_cost(cost: float) -> bytes:
    """USD as a plain decimal, to 10 places without trailing zeros (``0.00042``, ``0``)."""
    return (b"%.10f" % cost).rstrip(b"0").rstrip(b".")


def _usage_of(api: API, answer: dict[str, Any]) -> Usage | None:
    usage = answer.get("usage")
    return usage_from_anthropic(usage) if api is API.MESSAGES else usage_from_openai(usage)


def _upstream_error_event(api: API, error: GatewayError) -> Event:
    """A gateway error as the upstream would have sent it mid-stream, for a translator to carry over."""
    if api is API.MESSAGES:
        body = {"type": "error", "error": {"type": anthropic_error_type(error.status), "message": error.message}}
        return Event(body, "error")
    return Event({"error": {"message": error.message, "type": error.type, "param": None, "code": error.code}})


class Exchange:
    """Serves one request: ``await Exchange(...).unary()`` or ``.stream()``."""

    def __init__(
        self,
        ctx: RequestContext,
        plan: RoutePlan,
        inbound: API,
        payload: dict[str, Any],
        *,
        wants_usage: bool = False,
        path: tuple[str, API] | None = None,
    ) -> None:
        self.ctx = ctx
        self.plan = plan
        self.inbound = inbound
        self.payload = payload
        self.wants_usage = wants_usage
        self.fixed_path = path
        self.deadline = ctx.started + plan.config.timeouts.request_s
        settings = ctx.services.settings
        self.check = schema_check(
            inbound,
            payload,
            ctx.services.schemas,
            max_schema_bytes=settings.max_schema_bytes,
            max_document_bytes=settings.max_structured_output_bytes,
            owner=ctx.tenant,
        )
        self._bodies: dict[tuple[str, API], bytes] = {}

    # --- per attempt ----------------------------------------------------------------------------------

    def crossing(self, target: Target) -> Crossing:
        return CROSSINGS[(self.inbound, target.backend.api)]

    def path_for(self, target: Target) -> str:
        if self.fixed_path is not None:
            path, api = self.fixed_path
            if target.backend.api is not api:
                raise AttemptFailure("rejected", f"backend {target.backend.name!r} has no {path} endpoint")
            return path
        return UPSTREAM_PATH[target.backend.api]

    def body_for(self, target: Target) -> bytes:
        key = (target.model, target.backend.api)
        body = self._bodies.get(key)
        if body is not None:
            return body
        request = {**self.payload, "model": target.model}
        crossing = self.crossing(target)
        if crossing.translate_request is not None:
            try:
                request = crossing.translate_request(request)
            except ValueError as exc:
                raise InvalidRequestError(str(exc)) from None
        elif request.get("stream") is True and crossing.upstream is API.CHAT:
            request["stream_options"] = {**(request.get("stream_options") or {}), "include_usage": True}
        body = self._bodies[key] = orjson.dumps(request)
        return body

    async def _dispatch(self, *, stream: bool, writer: EventStreamWriter | None = None) -> Opened:
        def on_attempt(target: Target) -> None:
            self.ctx.attempting(target)
            if writer is not None:
                writer.backend = target.backend.name

        opened = await dispatch(
            self.plan,
            path_for=self.path_for,
            body_for=self.body_for,
            stream=stream,
            deadline=self.deadline,
            metrics=self.ctx.services.metrics,
            committed=(lambda: writer.committed) if writer is not None else None,
            on_attempt=on_attempt,
            on_attempt_done=self.ctx.attempt_done,
            extra_head=self.ctx.trace_head,
            body_limit=self.ctx.services.settings.max_upstream_body_bytes,
            tenant=self.ctx.tenant,
            tenant_priority=self.ctx.principal.limits.priority if self.ctx.principal is not None else "standard",
            on_queued=self.ctx.queue_waited,
        )
        if opened.spilled:
            self.ctx.spilled = True
            self.ctx.services.metrics.spillover(self.ctx.tenant, self.plan.name, opened.target.backend.name)
        return opened

    # --- answers ----------------------------------------------------------------------------------------

    def client_error_body(self, opened: Opened) -> bytes:
        """An upstream's refusal of the request itself (4xx), in the client's envelope."""
        if self.inbound is API.MESSAGES:
            if opened.target.backend.api is API.MESSAGES and b'"type":"error"' in opened.body.replace(b" ", b""):
                return opened.body
            return anthropic_error_body(upstream_message(opened.body), anthropic_error_type(opened.status))
        return openai_error_from_upstream(opened.body, opened.status)

    def translate_answer(self, opened: Opened) -> tuple[bytes, Usage | None]:
        crossing = self.crossing(opened.target)
        try:
            answer = orjson.loads(opened.body)
        except orjson.JSONDecodeError:
            raise UpstreamError(f"backend {opened.target.backend.name!r} answered with invalid JSON") from None
        if not isinstance(answer, dict):
            raise UpstreamError(f"backend {opened.target.backend.name!r} answered with a non-object JSON body")
        usage = _usage_of(crossing.upstream, answer)
        if _missing(usage) and crossing.upstream is API.CHAT:
            usage = self.estimate(opened.target, answer_tokens(answer))
            if crossing.translate_response is not None:  # the client's API has usage: it shows what is billed
                answer["usage"] = {
                    "prompt_tokens": usage.input_tokens,
                    "completion_tokens": usage.output_tokens,
                    "total_tokens": usage.input_tokens + usage.output_tokens,
                }
        if crossing.translate_response is None:
            return opened.body, usage
        return orjson.dumps(crossing.translate_response(answer, self.payload)), usage

    def reserve(self) -> None:
        """The request's worst case in tokens, for admission to reserve (``tenancy.reservation``)."""
        ctx = self.ctx
        ctx.reserve_input = input_bound(ctx.body)
        if self.fixed_path is None:  # embeddings and token counting answer no tokens
            default = self.plan.output_cap(ctx.services.settings.default_max_output_tokens)
            ctx.reserve_output = output_cap(self.payload, default)
        if self.check is not None:  # a structured answer may take a corrective second attempt
            ctx.reserve_input *= 2
            ctx.reserve_output *= 2

    async def unary(self) -> None:
        ctx = self.ctx
        if self.check is not None:
            await self.check.admit()
        self.reserve()
        await ctx.admit(self.plan)
        spent: Usage | None = None  # what a rejected structured-output answer cost: it is metered too
        while True:
            try:
                with RequestGuard(ctx.services.clock, ctx.receive, self.deadline):
                    opened = await self._dispatch(stream=False)
            except TimeoutError:
                raise self._timeout() from None
            usage = None
            content_type = _JSON
            if opened.status >= 300:
                body = self.client_error_body(opened)
                break
            body, usage = self.translate_answer(opened)
            if self.crossing(opened.target).passthrough:
                content_type = opened.content_type.encode()
            try:
                problem = await self._schema_problem(body)
            except SchemaBudgetExceeded:
                assert self.check is not None  # only a check validates
                self.record(opened.target, InvalidRequestError.status, add_usage(spent, usage))
                raise self.check.too_complex() from None
            if problem is None:
                break
            assert self.check is not None  # only a check finds problems
            retried = spent is not None
            spent = add_usage(spent, usage)
            if retried or opened.target.backend.config.provider in CONSTRAINED_DECODING:
                self.record(opened.target, UpstreamError.status, spent)
                raise self.check.failure(problem)
            content = content_of(self.inbound, orjson.loads(body))
            self.payload = with_hint(self.inbound, self.payload, content, problem)
            self._bodies.clear()
        usage = add_usage(spent, usage)
        cost = cost_usd(usage, ctx.services.price(opened.target)) if usage is not None else 0.0
        headers = [
            *ctx.response_headers,
            (b"x-interlock-backend", ctx.backend.encode()),
            (b"x-interlock-cost-usd", format_cost(cost)),
        ]
        self.record(opened.target, opened.status, usage, cost=cost)
        # the usage event goes into the kernel right before the answer's bytes: a kill -9 after it cannot lose it
        await send_bytes(
            ctx.send, opened.status, body, content_type=content_type, headers=headers, before_body=ctx.record_usage
        )
        if opened.status < 300 and spent is None:  # one attempt's report (a corrected answer's sums two)
            self.calibrate(opened.target, usage)

    def estimate(self, target: Target, completion_tokens: int) -> Usage:
        """Usage the upstream did not report, counted by the gateway (``usage.estimate``), marked estimated. The
        prompt is counted in the request the upstream got (after any translation: what the model read), corrected
        by what this backend's template costs (``usage.calibration``)."""
        prompt, shape = self._prompt_estimate(target)
        if not self._embeddings:
            prompt += target.backend.calibration.correction(target.model, shape)
        return estimated(max(prompt, 1), completion_tokens)

    @property
    def _embeddings(self) -> bool:
        return self.fixed_path is not None and self.fixed_path[0] == "/embeddings"

    def _prompt_estimate(self, target: Target) -> tuple[int, PromptShape]:
        try:
            sent = orjson.loads(self.body_for(target))
        except (orjson.JSONDecodeError, GatewayError):
            sent = self.payload
        api = target.backend.api if isinstance(sent, dict) and sent is not self.payload else self.inbound
        return prompt_estimate(api, sent, embeddings=self._embeddings)

    def calibrate(self, target: Target, usage: Usage | None) -> None:
        """Teach the backend's calibration from a report of its prompt tokens (a sample of them; after the answer
        has gone out, so the client never waits for this count)."""
        if (
            usage is None
            or usage.estimated
            or usage.input_tokens <= 0
            or self._embeddings
            or self.crossing(target).upstream is not API.CHAT
        ):
            return
        calibration = target.backend.calibration
        if calibration.wants_sample(target.model):
            prompt, shape = self._prompt_estimate(target)
            calibration.add(target.model, shape, prompt, usage.input_tokens)

    async def _schema_problem(self, body: bytes) -> str | None:
        if self.check is None:
            return None
        return await self.check.problem(content_of(self.inbound, orjson.loads(body)))

    # --- streams ----------------------------------------------------------------------------------------

    def relay_for(self, target: Target) -> StreamRelay:
        crossing = self.crossing(target)
        limit = self.ctx.services.settings.max_sse_event_bytes
        if crossing.stream_translator is not None:
            translator = crossing.stream_translator(self.payload)
            upstream = crossing.upstream
            return TranslatingRelay(
                translator, upstream_error=lambda e: _upstream_error_event(upstream, e), max_event_bytes=limit
            )
        if crossing.upstream is API.MESSAGES:
            return AnthropicStreamRelay(max_event_bytes=limit)
        return OpenAIStreamRelay(client_wants_usage=self.wants_usage, max_event_bytes=limit)

    def stream_error(self, error: GatewayError) -> bytes:
        """An in-stream error before any upstream answered (a keepalive had committed the stream): any target's
        relay speaks the client's API, which is all that matters here."""
        return self.relay_for(self.plan.targets[0]).error(error)

    async def stream(self) -> None:
        """Relay a stream. Its cost cannot travel in a header (they are sent before the usage is known) nor in
        the OpenAI stream format: it is in the request's usage event and ``interlock_cost_usd_total``."""
        ctx = self.ctx
        if self.check is not None:
            await self.check.admit()
        self.reserve()
        await ctx.admit(self.plan)
        loop = asyncio.get_running_loop()
        writer = EventStreamWriter(ctx.send, keepalive_s=ctx.services.settings.keepalive_interval_s)
        writer.extra_headers = ctx.response_headers
        opened: Opened | None = None
        relay: StreamRelay | None = None
        validating: ValidatingRelay | None = None
        status = 200
        first_at: float | None = None
        clean = metered = False
        tally: StreamTally | None = None

        def usage_now() -> Usage | None:
            usage = relay.usage if relay is not None else None
            if _missing(usage) and tally is not None and opened is not None:
                usage = self.estimate(opened.target, tally.completion_tokens())
            return usage

        def meter(usage: Usage | None = None) -> None:
            """Meter the request and write its usage event: before the stream's last byte leaves."""
            nonlocal metered
            if opened is not None and not metered:
                metered = True
                usage = usage or usage_now()
                self.record(opened.target, status, usage, first_at - ctx.started if first_at is not None else None)
            if not ctx.status:
                ctx.status = status
            ctx.record_usage()

        writer.start_keepalive()
        try:
            with RequestGuard(ctx.services.clock, ctx.receive, self.deadline):
                try:
                    opened = await self._dispatch(stream=True, writer=writer)
                except GatewayError as exc:
                    if not writer.committed:
                        raise
                    status = exc.status
                    meter()
                    await writer.close(self.stream_error(exc))
                    return
                if opened.chunks is None:  # the upstream refused the request itself (4xx)
                    status = opened.status
                    writer.cancel()
                    headers = [*ctx.response_headers, (b"x-interlock-backend", ctx.backend.encode())]
                    body = self.client_error_body(opened)
                    meter()
                    await send_bytes(ctx.send, status, body, headers=headers)
                    return
                relay = self.relay_for(opened.target)
                passthrough = relay
                if self.check is not None:
                    relay = validating = ValidatingRelay(relay, self.inbound, self.check)
                if self.crossing(opened.target).upstream is API.CHAT:
                    tally = StreamTally()  # counted only if the upstream sends no usage
                    tally.feed(opened.body)
                data = relay.feed(opened.body)
                if data:
                    first_at = loop.time()
                    await writer.write(data)
                async for chunk in opened.chunks:
                    if tally is not None:
                        tally.feed(chunk)
                    data = relay.feed(chunk)
                    if data:
                        if first_at is None:
                            first_at = loop.time()
                        await writer.write(data)
                tail = relay.finish()
                verdict = await validating.verdict() if validating is not None else b""
                usage = usage_now()
                if isinstance(passthrough, OpenAIStreamRelay) and passthrough.held_done and not verdict:
                    # [DONE] came without usage for a client that asked for it (and the content is valid, when
                    # checked): the estimate's usage chunk goes first
                    assert tally is not None  # held only when usage was missing: then there is an estimate
                    assert usage is not None
                    tail += tally.usage_chunk(usage) + DONE
                else:
                    tail += verdict
                meter(usage)
                await writer.close(tail)
                clean = True
                self.calibrate(opened.target, usage)
        except TimeoutError:
            timeout = self._timeout()
            if not writer.committed:
                raise timeout from None
            status = timeout.status
            tail = relay.error(timeout) if relay is not None else self.stream_error(timeout)
            meter()
            await writer.close(tail)
        except AttemptFailure as failure:  # the upstream broke the stream after it had started
            broken = UpstreamError(failure.message)
            status = broken.status
            ctx.services.metrics.upstream_error(ctx.backend, failure.kind)
            if failure.limit is not None:
                ctx.services.metrics.limit_trip(failure.limit)
            tail = relay.error(broken) if relay is not None else self.stream_error(broken)
            meter()
            await writer.close(tail)
        finally:
            writer.cancel()
            if opened is not None:
                opened.finish(clean=clean)
                if not metered:  # cut short (the client went away): the app writes the event afterwards
                    metered = True
                    self.record(
                        opened.target, status, usage_now(), first_at - ctx.started if first_at is not None else None
                    )

    # --- bookkeeping ------------------------------------------------------------------------------------

    def _timeout(self) -> GatewayTimeoutError:
        limit = self.plan.config.timeouts.request_s
        return GatewayTimeoutError(f"Route {self.plan.config.model!r} exceeded its request timeout of {limit:g}s.")

    def record(
        self,
        target: Target,
        status: int,
        usage: Usage | None,
        first_token_s: float | None = None,
        *,
        cost: float | None = None,
    ) -> None:
        """Meter the finished request: metrics, and what its usage event says (``ctx.record_usage`` then settles its
        reservations and writes the event)."""
        ctx = self.ctx
        services = ctx.services
        labels = (ctx.tenant, self.plan.config.model, target.backend.name, target.model)
        metrics = services.metrics
        if first_token_s is not None:
            metrics.first_token(labels, first_token_s)
        counted = usage or _NO_USAGE
        if cost is None:
            cost = cost_usd(counted, services.price(target)) if usage is not None else 0.0
        ctx.status = status
        ctx.usage = usage
        ctx.cost_usd = cost
        ctx.first_token_s = first_token_s
        metrics.request_done(
            labels,
            status,
            ctx.elapsed(),
            input_tokens=counted.input_tokens,
            output_tokens=counted.output_tokens,
            cached_tokens=counted.cached_tokens,
            cost_usd=cost,
        )
