"""Send one request along a route: weighted targets, then fallbacks; retries with backoff; breakers; deadlines.

``dispatch`` returns once an upstream has answered well enough to relay: a full body for unary calls, or the
first chunk of a stream. Everything that can still be retried happens in here, before the client has seen a
byte; after that the caller owns the response.
"""

from __future__ import annotations

import asyncio
import logging
import random
import time
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass

from interlock.gateway.dispatch.plan import RoutePlan, Target
from interlock.gateway.errors import (
    AttemptFailure,
    FailureKind,
    GatewayError,
    GatewayTimeoutError,
    RateLimitError,
    ServiceUnavailableError,
    UpstreamError,
    UpstreamOverloadedError,
    upstream_message,
)
from interlock.gateway.pool import Endpoint
from interlock.gateway.pool.fairqueue import Priority, QueueRejected
from interlock.gateway.upstream.client import UpstreamResponse, parse_retry_after
from interlock.telemetry.metrics import GatewayMetrics

__all__ = ["Opened", "backoff_delay", "dispatch"]

log = logging.getLogger("interlock.gateway")

_ERROR_BODY_LIMIT = 64 * 1024
_REJECTED = frozenset({401, 403, 404})
# Which ``retryOn`` entry allows retrying each failure class.
_RETRY_CLASS: dict[FailureKind, str] = {
    "connect": "connect",
    "timeout": "timeout",
    "429": "429",
    "5xx": "5xx",
    "protocol": "5xx",
}


@dataclass(slots=True)
class Opened:
    """An upstream answer ready to relay. For streams, ``chunks`` continues after ``first_chunk``."""

    target: Target
    status: int
    content_type: str
    body: bytes
    response: UpstreamResponse | None = None
    chunks: AsyncIterator[bytes] | None = None
    fell_back: bool = False
    endpoint: Endpoint | None = None
    """The endpoint of a backend with several that answered (None: the backend's one ``url``)."""
    started: float = 0.0
    """When the attempt took its slot (``time.monotonic``), for the backend queue's service times."""
    spilled: bool = False
    """Sent to the route's spill-over target because the pool would have answered too late."""
    tenant: str | None = None
    """Whose slot this is in the backend's queue (None: the backend has no queue)."""

    def finish(self, *, clean: bool = True) -> None:
        """Return the connection to the pool (or drop it) and free the backend's concurrency slot."""
        if self.response is not None:
            if clean:
                self.response.release()
            else:
                self.response.close()
            self.response = None
            _done(self.target, self.endpoint, self.started, self.tenant)


def _done(target: Target, endpoint: Endpoint | None, started: float, tenant: str | None = None) -> None:
    """The attempt no longer occupies the backend (and its endpoint); a queue learns the time it was held and
    (``tenant``, when the queue counted it with ``hold``) whose slot came free."""
    backend = target.backend
    backend.inflight -= 1
    if endpoint is not None:
        endpoint.inflight -= 1
    queue = backend.queue
    if queue is not None:
        queue.finished(time.monotonic() - started, tenant)


async def _attempt(
    target: Target,
    path: str,
    body: bytes,
    *,
    stream: bool,
    first_token_at: float | None,
    extra_head: bytes,
    body_limit: int,
    from_queue: bool = False,
    tenant_head: bytes = b"",
    tenant: str = "",
) -> Opened:
    """One attempt. ``from_queue``: the backend's queue let this request in (it calls ``taken()`` once the slot is
    held, before anything is awaited). ``tenant_head``: the fairness header, sent to a pool's endpoints only."""
    backend = target.backend
    endpoint = None
    pool = backend.pool
    if pool is not None:
        endpoint = pool.pick(pool.prefix(body))
        endpoint.inflight += 1
        extra_head += tenant_head
    backend.inflight += 1
    started = time.monotonic()
    queue = backend.queue
    slot_tenant: str | None = None  # whose slot the backend's queue counts this as (None: no queue)
    if queue is not None:
        slot_tenant = tenant
        queue.hold(tenant)
        if from_queue:
            queue.taken()
    try:
        exchange = _exchange(
            target,
            endpoint,
            started,
            path,
            body,
            stream=stream,
            extra_head=extra_head,
            body_limit=body_limit,
            slot_tenant=slot_tenant,
        )
        if first_token_at is None:
            return await exchange
        try:
            async with asyncio.timeout_at(first_token_at):
                return await exchange
        except TimeoutError:
            raise AttemptFailure("timeout", f"backend {backend.name!r} sent no first token in time") from None
    except BaseException as exc:
        _done(target, endpoint, started, slot_tenant)
        if endpoint is not None and isinstance(exc, AttemptFailure) and exc.kind == "connect":
            assert pool is not None
            pool.mark_down(endpoint)
        raise


async def _exchange(
    target: Target,
    endpoint: Endpoint | None,
    started: float,
    path: str,
    body: bytes,
    *,
    stream: bool,
    extra_head: bytes,
    body_limit: int,
    slot_tenant: str | None = None,
) -> Opened:
    """Send the request; return the whole body (unary) or the first chunk (stream). The caller owns the
    backend's in-flight slot: a unary answer gives it back here, a stream when the caller finishes it."""
    backend = target.backend
    client = endpoint.client if endpoint is not None else backend.client
    assert client is not None  # unavailable_reason() is checked first
    response = await client.post(path, body, extra_head)
    try:
        status = response.status
        if status >= 400:
            return await _error_answer(target, endpoint, started, response, slot_tenant)
        if status >= 300:
            raise AttemptFailure(
                "redirect",
                f"backend {backend.name!r} answered HTTP {status}, a redirect, which the gateway never follows "
                "nor relays: check the backend's url",
                status=status,
            )
        content_type = response.content_type
        if not stream:
            data = await response.read_capped(body_limit)
            if data is None:
                raise AttemptFailure(
                    "protocol",
                    f"backend {backend.name!r} answered with a body over the limit of {body_limit} bytes",
                    limit="upstream_body_bytes",
                )
            response.release()
            _done(target, endpoint, started, slot_tenant)
            return Opened(target, status, content_type, data, endpoint=endpoint, tenant=slot_tenant)
        chunks = aiter(response.chunks())
        try:
            first = await anext(chunks)
        except StopAsyncIteration:
            raise AttemptFailure("protocol", f"backend {backend.name!r} sent an empty stream") from None
        return Opened(
            target,
            status,
            content_type,
            first,
            response=response,
            chunks=chunks,
            endpoint=endpoint,
            started=started,
            tenant=slot_tenant,
        )
    except BaseException:
        response.close()
        raise


async def _error_answer(
    target: Target, endpoint: Endpoint | None, started: float, response: UpstreamResponse, slot_tenant: str | None
) -> Opened:
    """Turn an upstream 4xx/5xx into a failure to retry or fall back from, or an answer for the client."""
    backend = target.backend
    status = response.status
    data = await response.read(_ERROR_BODY_LIMIT)
    retry_after = parse_retry_after(response.headers)
    response.release()
    detail = f"backend {backend.name!r} answered HTTP {status}: {upstream_message(data)}"
    if status == 429:
        raise AttemptFailure("429", detail, status=status, retry_after=retry_after)
    if status >= 500:
        raise AttemptFailure("5xx", detail, status=status, retry_after=retry_after)
    if status in _REJECTED:
        raise AttemptFailure("rejected", detail, status=status)
    # The client's own mistake (400, 413, 422, ...): relay it, the backend is healthy.
    _done(target, endpoint, started, slot_tenant)
    return Opened(target, status, response.content_type, data, endpoint=endpoint, tenant=slot_tenant)


def backoff_delay(base_s: float, retry: int, retry_after: float | None) -> float:
    """Exponential backoff with equal jitter; never shorter than the upstream's Retry-After."""
    ceiling = base_s * 2.0 ** (retry - 1)
    delay = ceiling / 2 + random.random() * ceiling / 2
    return delay if retry_after is None else max(delay, retry_after)


async def dispatch(
    plan: RoutePlan,
    *,
    path_for: Callable[[Target], str],
    body_for: Callable[[Target], bytes],
    stream: bool,
    deadline: float,
    metrics: GatewayMetrics,
    committed: Callable[[], bool] | None = None,
    on_attempt: Callable[[Target], None] | None = None,
    on_attempt_done: Callable[[int, str | None], None] | None = None,
    extra_head: bytes = b"",
    body_limit: int = 64 * 1024 * 1024,
    tenant: str = "",
    tenant_priority: Priority = "standard",
    on_queued: Callable[[str, float, str | None], None] | None = None,
    spill_allowed: bool = True,
) -> Opened:
    """Try the route's candidates until one answers; raise the client-facing error when none does.

    ``deadline`` is on the event loop's clock. ``committed`` tells whether the client has already received bytes
    (a stream's keepalive), after which nothing is retried. ``on_attempt`` and ``on_attempt_done`` (status,
    failure kind) bracket each upstream attempt. ``extra_head`` goes upstream with every attempt (trace context).
    ``body_limit``: the largest unary answer read from an upstream.

    A backend with a queue (``queueing``) makes the request wait its tenant's turn while every endpoint is
    saturated, in the Route's priority class, else ``tenant_priority`` (the tenant's quota);
    ``on_queued(backend, seconds waited, refusal or None)`` reports each wait. A route with
    ``spillover`` sends the request to its spill-over target instead when the pool's predicted wait is above the
    objective, or when the wait reaches the objective plus one service time (``Opened.spilled``).
    """
    loop = asyncio.get_running_loop()
    tenant_head = _fairness_head(tenant)
    spill = plan.spill_plan if spill_allowed else None
    refused: QueueRejected | None = None
    retry = plan.config.retry
    first_token_s = plan.config.timeouts.first_token_s
    skipped: list[str] = []
    failures: list[str] = []
    last: AttemptFailure | None = None
    kinds: set[str] = set()
    tried = 0
    for target in plan.candidates():
        backend = target.backend
        reason = backend.unavailable_reason(time.monotonic())
        if reason is not None:
            skipped.append(reason)
            continue
        try:
            path = path_for(target)
        except AttemptFailure as failure:
            last = failure
            kinds.add(failure.kind)
            failures.append(failure.message)
            continue
        body = body_for(target)
        for attempt in range(retry.attempts):
            if attempt:
                delay = backoff_delay(retry.backoff_s, attempt, last.retry_after if last else None)
                if loop.time() + delay >= deadline:
                    break
                await asyncio.sleep(delay)
                if backend.unavailable_reason(time.monotonic()) is not None:
                    break
            if committed is not None and committed():
                break
            queue = backend.queue
            from_queue = False
            if queue is not None and not queue.room(tenant):
                if spill is not None and queue.predicted_wait_s() > plan.spill_after_s:
                    return await _spill_over(spill, path_for, body_for, stream, deadline, metrics, on_attempt,
                                             on_attempt_done, extra_head, body_limit)  # fmt: skip
                limit = deadline if spill is None else min(deadline, loop.time() + plan.spill_after_s + queue.service_s)
                start = loop.time()
                try:
                    waited = await queue.wait(tenant, plan.config.priority or tenant_priority, deadline=limit)
                except QueueRejected as rejected:
                    if on_queued is not None:
                        on_queued(backend.name, loop.time() - start, rejected.reason)
                    if spill is not None and rejected.reason == "timeout":
                        return await _spill_over(spill, path_for, body_for, stream, deadline, metrics, on_attempt,
                                                 on_attempt_done, extra_head, body_limit)  # fmt: skip
                    refused = rejected
                    skipped.append(str(rejected))
                    break
                if waited is not None:
                    from_queue = True
                    if on_queued is not None:
                        on_queued(backend.name, waited, None)
            if on_attempt is not None:
                on_attempt(target)
            tried += 1
            first_token_at = None
            if stream and loop.time() + first_token_s < deadline:
                first_token_at = loop.time() + first_token_s
            try:
                opened = await _attempt(
                    target,
                    path,
                    body,
                    stream=stream,
                    first_token_at=first_token_at,
                    extra_head=extra_head,
                    body_limit=body_limit,
                    from_queue=from_queue,
                    tenant_head=tenant_head,
                    tenant=tenant,
                )
            except AttemptFailure as failure:
                if on_attempt_done is not None:
                    on_attempt_done(failure.status or 0, failure.kind)
                last = failure
                kinds.add(failure.kind)
                failures.append(failure.message)
                log.warning("route %r: %s", plan.config.model, failure.detail)
                metrics.upstream_error(backend.name, failure.kind)
                if failure.limit is not None:
                    metrics.limit_trip(failure.limit)
                if failure.kind != "rejected":
                    backend.record_failure()
                retry_class = _RETRY_CLASS.get(failure.kind)
                if retry_class is None or retry_class not in plan.retry_on:
                    break
                continue
            if on_attempt_done is not None:
                on_attempt_done(opened.status, None)
            backend.record_success()
            if tried > 1 or skipped:
                opened.fell_back = True
                metrics.fallback(plan.name, backend.name)
            return opened
        if committed is not None and committed():
            break
    if last is None:
        message = f"No backend of route {plan.config.model!r} can take the request now: {'; '.join(skipped)}."
        if refused is not None:
            retry_after = {"retry-after": str(max(1, round(refused.retry_after_s)))}
            if refused.reason == "tenant_queue_full":
                raise RateLimitError(message, code="tenant_queue_full", headers=retry_after)
            raise ServiceUnavailableError(message, code=f"pool_{refused.reason}", headers=retry_after)
        raise ServiceUnavailableError(message, headers={"retry-after": "1"})
    summary = f"Route {plan.config.model!r} failed after {tried} attempt(s): {'; '.join(failures)}"
    if skipped:
        summary += f"; skipped: {'; '.join(skipped)}"
    raise _final_error(summary, last, kinds)


def _final_error(summary: str, last: AttemptFailure, kinds: set[str]) -> GatewayError:
    """The client-facing error once every candidate failed, as specific as the failures allow: a route that
    is only rate limited answers 429, an overloaded one 503 (529 to Anthropic clients), a slow one 504."""
    if kinds == {"429"}:
        retry_after = last.retry_after
        headers = {"retry-after": str(max(1, round(retry_after)))} if retry_after is not None else None
        return RateLimitError(summary, code="upstream_rate_limited", headers=headers)
    if last.status in (503, 529):
        return UpstreamOverloadedError(summary)
    if last.kind == "timeout":
        return GatewayTimeoutError(summary)
    return UpstreamError(summary)


def _fairness_head(tenant: str) -> bytes:
    """The header that tells a fairness-aware engine (llm-d's flow control) whose request it is."""
    if not tenant or not tenant.isascii() or not tenant.isprintable():
        return b""
    return b"x-gateway-inference-fairness-id: %s\r\n" % tenant.encode()


async def _spill_over(
    plan: RoutePlan,
    path_for: Callable[[Target], str],
    body_for: Callable[[Target], bytes],
    stream: bool,
    deadline: float,
    metrics: GatewayMetrics,
    on_attempt: Callable[[Target], None] | None,
    on_attempt_done: Callable[[int, str | None], None] | None,
    extra_head: bytes,
    body_limit: int,
) -> Opened:
    """Serve the request from the route's spill-over target (through the usual translation), marked as spilled."""
    opened = await dispatch(
        plan,
        path_for=path_for,
        body_for=body_for,
        stream=stream,
        deadline=deadline,
        metrics=metrics,
        on_attempt=on_attempt,
        on_attempt_done=on_attempt_done,
        extra_head=extra_head,
        body_limit=body_limit,
        spill_allowed=False,
    )
    opened.spilled = True
    return opened
