"""A traced request's spans, written when it ends from the timestamps the request kept anyway.

The request's SERVER span was opened at arrival (its context went upstream); here its upstream attempts become
CLIENT children with their real start and end times, and the span gets the GenAI usage attributes and ends.
"""

from __future__ import annotations

import time

from interlock.gateway.context import RequestContext

__all__ = ["end_trace"]


def end_trace(ctx: RequestContext, finished: float) -> None:
    """End ``ctx.trace``; ``finished`` is ``time.perf_counter()`` at the end of the request."""
    trace = ctx.trace
    if trace is None:
        return
    now_ns, now = time.time_ns(), time.perf_counter()

    def wall_ns(offset_s: float) -> int:
        """Unix nanoseconds of a moment given in seconds after arrival."""
        return now_ns - int((now - ctx.clock - offset_s) * 1e9)

    for backend, start, end, refusal in ctx.queued:
        trace.record_queue(backend=backend, start_ns=wall_ns(start), end_ns=wall_ns(end), refusal=refusal)
    backends = ctx.runtime.backends
    for number, (backend, model, start, end, status, failure) in enumerate(ctx.attempts, start=1):
        runtime = backends.get(backend)
        trace.record_attempt(
            backend=backend,
            provider=runtime.config.provider if runtime is not None else "",
            model=model,
            attempt=number,
            start_ns=wall_ns(start),
            end_ns=wall_ns(end or finished - ctx.clock),  # an attempt cut short ends with the request
            status=status,
            failure=failure,
        )
    usage = ctx.usage
    trace.end(
        status=ctx.status or 200,
        end_ns=wall_ns(finished - ctx.clock),
        route=ctx.route_model,
        tenant=ctx.tenant,
        backend=ctx.backend,
        response_model=ctx.upstream_model,
        input_tokens=usage.input_tokens if usage is not None else None,
        output_tokens=usage.output_tokens if usage is not None else None,
        cached_tokens=usage.cached_tokens if usage is not None else None,
    )
