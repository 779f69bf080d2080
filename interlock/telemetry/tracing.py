"""OpenTelemetry traces of gateway requests, with the GenAI semantic conventions.

One SERVER span per request (``chat <route model>``), continuing the client's W3C ``traceparent`` when it sends
one, and one CLIENT child span per upstream attempt (``chat <upstream model>``). The request span's context goes
upstream as ``traceparent``, so an instrumented engine (vLLM) joins the same trace. Attributes follow the GenAI
conventions (``gen_ai.operation.name``, ``gen_ai.request.model``, ``gen_ai.response.model``, ``gen_ai.usage.*``,
``gen_ai.provider.name``) plus ``interlock.tenant``, ``interlock.route`` and ``interlock.backend``.

Everything is configured by the standard variables, read by the SDK itself: ``OTEL_TRACES_EXPORTER`` (``otlp``,
``console`` or ``none``), ``OTEL_EXPORTER_OTLP_ENDPOINT`` / ``OTEL_EXPORTER_OTLP_TRACES_ENDPOINT`` (OTLP over
HTTP), ``OTEL_TRACES_SAMPLER`` and ``OTEL_TRACES_SAMPLER_ARG``, ``OTEL_SERVICE_NAME``, ``OTEL_SDK_DISABLED``.
Tracing is off unless an exporter is asked for, and then the gateway pays nothing for it: the request path checks
one ``None``. Prompts and completions are never recorded: the gateway records sizes and counts, not content.

Sampling is decided here, once per request and before any OpenTelemetry object exists (``Sampling``): an unsampled
request costs a header scan and a random number, under a microsecond. A sampled request's spans do not go through
the SDK's ``Tracer``, whose live spans (locks, bounded attribute maps, a context per call) cost about 70 µs of CPU
for a request's two spans, against about 170 µs for the whole request. The gateway knows every timestamp and
attribute when the request ends, so it writes the finished spans then, as the SDK's own ``ReadableSpan`` objects,
straight into the configured ``SpanProcessor`` (the SDK's batch processor, or a test's in-memory exporter):
about 10 µs. The OTLP exporter encodes them with ``interlock.telemetry.otlp``: about 6 µs a span instead of 40.
"""

from __future__ import annotations

import os
import random
import time
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from opentelemetry.sdk.resources import SERVICE_NAME, Resource
from opentelemetry.sdk.trace import ReadableSpan, SpanProcessor
from opentelemetry.sdk.trace.export import BatchSpanProcessor, ConsoleSpanExporter, SpanExporter
from opentelemetry.sdk.util.instrumentation import InstrumentationScope
from opentelemetry.trace import SpanContext, SpanKind, Status, StatusCode, TraceFlags, TraceState

from interlock.telemetry import names

__all__ = ["RequestSpan", "Sampling", "Tracing", "configure_tracing", "parse_traceparent"]

_SCOPE = InstrumentationScope("interlock.gateway")
_SAMPLED = TraceFlags(TraceFlags.SAMPLED)
_UNSET = Status(StatusCode.UNSET)
_HEX = frozenset(b"0123456789abcdef")


def parse_traceparent(value: bytes | None) -> tuple[int, int, bool] | None:
    """A W3C ``traceparent`` header as (trace id, parent span id, sampled), or None when it is absent or invalid."""
    if value is None or len(value) < 55 or value[2:3] != b"-" or value[35:36] != b"-" or value[52:53] != b"-":
        return None
    version = value[:2]
    if version == b"ff" or (version == b"00" and len(value) != 55) or (len(value) > 55 and value[55:56] != b"-"):
        return None
    if not _HEX.issuperset(value[:55].replace(b"-", b"")):
        return None
    trace_id, span_id = int(value[3:35], 16), int(value[36:52], 16)
    if not trace_id or not span_id:
        return None
    return trace_id, span_id, bool(int(value[53:55], 16) & 1)


@dataclass(frozen=True, slots=True)
class Sampling:
    """``OTEL_TRACES_SAMPLER`` / ``OTEL_TRACES_SAMPLER_ARG`` as a decision: follow a client's sampled flag
    (the ``parentbased_*`` samplers, the SDK's default), else keep ``ratio`` of the traces."""

    ratio: float = 1.0
    parent_based: bool = True

    @classmethod
    def from_env(cls, environ: Mapping[str, str]) -> Sampling:
        name = environ.get("OTEL_TRACES_SAMPLER", "parentbased_always_on").strip().lower()
        parent_based = name.startswith("parentbased_")
        kind = name.removeprefix("parentbased_")
        if kind == "always_on":
            return cls(1.0, parent_based)
        if kind == "always_off":
            return cls(0.0, parent_based)
        if kind == "traceidratio":
            try:
                ratio = float(environ.get("OTEL_TRACES_SAMPLER_ARG", "1.0"))
            except ValueError:
                raise ValueError("OTEL_TRACES_SAMPLER_ARG must be a number between 0 and 1") from None
            if not 0.0 <= ratio <= 1.0:
                raise ValueError("OTEL_TRACES_SAMPLER_ARG must be a number between 0 and 1")
            return cls(ratio, parent_based)
        raise ValueError(f"OTEL_TRACES_SAMPLER={name!r} is not supported")

    def decide(self, parent: tuple[int, int, bool] | None) -> bool:
        """Whether to trace a request whose client sent ``parent`` (a parsed ``traceparent``) or none."""
        if self.parent_based and parent is not None:
            return parent[2]
        return self.ratio >= 1.0 or (self.ratio > 0.0 and random.random() < self.ratio)


def _exporter_from_env(environ: Mapping[str, str]) -> SpanExporter | None:
    names_ = [n.strip() for n in environ.get("OTEL_TRACES_EXPORTER", "").split(",") if n.strip()]
    if not names_ and (environ.get("OTEL_EXPORTER_OTLP_ENDPOINT") or environ.get("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT")):
        names_ = ["otlp"]
    if not names_ or names_ == ["none"]:
        return None
    if names_[0] == "console":
        return ConsoleSpanExporter()
    if names_[0] in ("otlp", "otlp_proto_http"):
        from interlock.telemetry.otlp import FastOTLPSpanExporter

        return FastOTLPSpanExporter()
    raise ValueError(f"OTEL_TRACES_EXPORTER={names_[0]!r} is not supported (use otlp, console or none)")


def configure_tracing(
    service_name: str, *, processor: SpanProcessor | None = None, environ: Mapping[str, str] | None = None
) -> Tracing | None:
    """The gateway's tracing as the ``OTEL_*`` variables ask, or None when they ask for none.

    ``processor`` replaces the exporter from the environment (tests pass an in-memory one). The SDK's batch
    processor reads its own ``OTEL_BSP_*`` variables (queue size, batch size, delay).
    """
    env = os.environ if environ is None else environ
    if env.get("OTEL_SDK_DISABLED", "").lower() == "true":
        return None
    if processor is None:
        exporter = _exporter_from_env(env)
        if exporter is None:
            return None
        processor = BatchSpanProcessor(exporter)
    resource = Resource.create({SERVICE_NAME: env.get("OTEL_SERVICE_NAME") or service_name})
    return Tracing(processor, resource, Sampling.from_env(env))


class Tracing:
    """The span processor finished spans go to; ``start_request`` opens a request's span, or returns None when it
    is not sampled."""

    def __init__(self, processor: SpanProcessor, resource: Resource, sampling: Sampling | None = None) -> None:
        self.processor = processor
        self.resource = resource
        self.sampling = sampling or Sampling()

    def start_request(
        self, operation: str, path: str, traceparent: bytes | None = None, tracestate: bytes | None = None
    ) -> RequestSpan | None:
        """The request's span, or None when it is not sampled; ``traceparent`` and ``tracestate`` are the client's
        headers (the gateway picks them out in the header scan it makes anyway)."""
        parent = parse_traceparent(traceparent)
        if not self.sampling.decide(parent):
            return None
        parent_context = None
        if parent is not None:
            parent_context = SpanContext(
                parent[0],
                parent[1],
                is_remote=True,
                trace_flags=_SAMPLED,
                trace_state=TraceState.from_header([tracestate.decode("latin-1")]) if tracestate else None,
            )
        return RequestSpan(self, operation, path, parent_context)

    def shutdown(self) -> None:
        """Export what is still batched and stop the processor."""
        self.processor.shutdown()


class RequestSpan:
    """A sampled request's SERVER span, written when the request ends (``end``) with a CLIENT child per upstream
    attempt (``record_attempt``), from the timestamps the gateway keeps anyway: nothing on the hot path. Its
    context goes upstream from the start (``head``)."""

    __slots__ = ("_context", "_operation", "_parent", "_path", "_tracing", "head", "start_ns")

    def __init__(self, tracing: Tracing, operation: str, path: str, parent: SpanContext | None) -> None:
        self._tracing = tracing
        self._operation = operation
        self._path = path
        self._parent = parent
        trace_id = parent.trace_id if parent is not None else random.getrandbits(128) or 1
        span_id = random.getrandbits(64) or 1
        self._context = SpanContext(
            trace_id, span_id, is_remote=False, trace_flags=_SAMPLED, trace_state=parent.trace_state if parent else None
        )
        self.start_ns = time.time_ns()
        head = f"traceparent: 00-{trace_id:032x}-{span_id:016x}-01\r\n"
        if parent is not None and parent.trace_state:
            head += f"tracestate: {parent.trace_state.to_header()}\r\n"
        self.head = head.encode("latin-1")
        """Header lines (CRLF-terminated) that carry this span's context to the upstream."""

    @property
    def trace_id(self) -> str:
        return format(self._context.trace_id, "032x")

    def record_queue(self, *, backend: str, start_ns: int, end_ns: int, refusal: str | None) -> None:
        """A wait in a saturated backend's fair queue, as its own span (``gateway.queue``)."""
        attributes: dict[str, Any] = {names.BACKEND: backend}
        outcome = _UNSET
        if refusal is not None:
            attributes[names.ERROR_TYPE] = refusal
            outcome = Status(StatusCode.ERROR, refusal)
        context = SpanContext(self._context.trace_id, random.getrandbits(64) or 1, False, _SAMPLED)
        tracing = self._tracing
        tracing.processor.on_end(
            ReadableSpan(
                names.QUEUE_SPAN,
                context,
                self._context,
                tracing.resource,
                attributes,
                kind=SpanKind.INTERNAL,
                status=outcome,
                start_time=start_ns,
                end_time=end_ns,
                instrumentation_scope=_SCOPE,
            )
        )

    def record_attempt(
        self,
        *,
        backend: str,
        provider: str,
        model: str,
        attempt: int,
        start_ns: int,
        end_ns: int,
        status: int,
        failure: str | None,
    ) -> None:
        attributes: dict[str, Any] = {
            names.GEN_AI_OPERATION: self._operation,
            names.GEN_AI_PROVIDER: provider,
            names.GEN_AI_REQUEST_MODEL: model,
            names.BACKEND: backend,
            names.ATTEMPT: attempt,
            names.HTTP_STATUS: status,
        }
        outcome = _UNSET
        if failure is not None or status >= 400 or status == 0:
            error = failure or str(status)
            attributes[names.ERROR_TYPE] = error
            outcome = Status(StatusCode.ERROR, error)
        context = SpanContext(self._context.trace_id, random.getrandbits(64) or 1, False, _SAMPLED)
        tracing = self._tracing
        tracing.processor.on_end(
            ReadableSpan(
                f"{self._operation} {model}",
                context,
                self._context,
                tracing.resource,
                attributes,
                kind=SpanKind.CLIENT,
                status=outcome,
                start_time=start_ns,
                end_time=end_ns,
                instrumentation_scope=_SCOPE,
            )
        )

    def end(
        self,
        *,
        status: int,
        end_ns: int | None = None,
        route: str = "",
        tenant: str = "",
        backend: str = "",
        response_model: str = "",
        input_tokens: int | None = None,
        output_tokens: int | None = None,
        cached_tokens: int | None = None,
        error: str | None = None,
    ) -> None:
        attributes: dict[str, Any] = {
            names.GEN_AI_OPERATION: self._operation,
            names.URL_PATH: self._path,
            names.HTTP_STATUS: status,
        }
        if route:
            attributes[names.GEN_AI_REQUEST_MODEL] = attributes[names.ROUTE] = route
        if tenant:
            attributes[names.TENANT] = tenant
        if backend:
            attributes[names.BACKEND] = backend
        if response_model:
            attributes[names.GEN_AI_RESPONSE_MODEL] = response_model
        if input_tokens is not None:
            attributes[names.GEN_AI_INPUT_TOKENS] = input_tokens
        if output_tokens is not None:
            attributes[names.GEN_AI_OUTPUT_TOKENS] = output_tokens
        if cached_tokens:
            attributes[names.GEN_AI_CACHED_TOKENS] = cached_tokens
        outcome = _UNSET
        if status >= 500 or error is not None:
            attributes[names.ERROR_TYPE] = error or str(status)
            outcome = Status(StatusCode.ERROR, error)
        tracing = self._tracing
        tracing.processor.on_end(
            ReadableSpan(
                f"{self._operation} {route or self._path}",
                self._context,
                self._parent,
                tracing.resource,
                attributes,
                kind=SpanKind.SERVER,
                status=outcome,
                start_time=self.start_ns,
                end_time=end_ns if end_ns is not None else time.time_ns(),
                instrumentation_scope=_SCOPE,
            )
        )
