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

Sampling is decided here, once per request and before any OpenTelemetry object exists (``Sampling``), because the
Python SDK is expensive: about 80 µs of CPU for a request's two recorded spans and still about 15 µs for two
non-recording ones, against a gateway request of about 300 µs. An unsampled request costs a random number and a
header scan; a sampled one builds its spans with an always-on SDK sampler (the decision is already made).
"""

from __future__ import annotations

import os
import random
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from opentelemetry import trace
from opentelemetry.context import Context
from opentelemetry.sdk.resources import SERVICE_NAME, Resource
from opentelemetry.sdk.trace import SpanProcessor, TracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor, ConsoleSpanExporter, SpanExporter
from opentelemetry.sdk.trace.sampling import ALWAYS_ON
from opentelemetry.trace import Span, SpanKind, Status, StatusCode
from opentelemetry.trace.propagation.tracecontext import TraceContextTextMapPropagator

from interlock.telemetry import names

__all__ = ["RequestSpan", "Sampling", "Tracing", "configure_tracing"]

_PROPAGATOR = TraceContextTextMapPropagator()
_TRACEPARENT = b"traceparent"
_TRACESTATE = b"tracestate"


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

    def sampled(self, traceparent: bytes | None) -> bool:
        if self.parent_based and traceparent is not None and len(traceparent) == 55 and traceparent[2:3] == b"-":
            return traceparent[-1:] in b"13579bdf"  # the flags' sampled bit
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
        from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter

        return OTLPSpanExporter()
    raise ValueError(f"OTEL_TRACES_EXPORTER={names_[0]!r} is not supported (use otlp, console or none)")


def configure_tracing(
    service_name: str, *, processor: SpanProcessor | None = None, environ: Mapping[str, str] | None = None
) -> Tracing | None:
    """The gateway's tracing as the ``OTEL_*`` variables ask, or None when they ask for none.

    ``processor`` replaces the exporter from the environment (tests pass an in-memory one).
    """
    env = os.environ if environ is None else environ
    if env.get("OTEL_SDK_DISABLED", "").lower() == "true":
        return None
    if processor is None:
        exporter = _exporter_from_env(env)
        if exporter is None:
            return None
        processor = BatchSpanProcessor(exporter)
    sampling = Sampling.from_env(env)
    resource = Resource.create({SERVICE_NAME: env.get("OTEL_SERVICE_NAME") or service_name})
    provider = TracerProvider(sampler=ALWAYS_ON, resource=resource, shutdown_on_exit=False)
    provider.add_span_processor(processor)
    return Tracing(provider, sampling)


class Tracing:
    """Owns the tracer provider; ``start_request`` opens a request's span, or returns None when it is not sampled."""

    def __init__(self, provider: TracerProvider, sampling: Sampling | None = None) -> None:
        self.provider = provider
        self.sampling = sampling or Sampling()
        self._tracer = provider.get_tracer("interlock.gateway")

    def start_request(self, headers: Sequence[tuple[bytes, bytes]], operation: str, path: str) -> RequestSpan | None:
        traceparent = next((value for name, value in headers if name == _TRACEPARENT), None)
        if not self.sampling.sampled(traceparent):
            return None
        carrier = {
            name.decode("latin-1"): value.decode("latin-1")
            for name, value in headers
            if name in (_TRACEPARENT, _TRACESTATE)
        }
        parent = _PROPAGATOR.extract(carrier) if carrier else None
        span = self._tracer.start_span(
            f"{operation} {path}",  # renamed to "<operation> <route>" once the route is known
            context=parent,
            kind=SpanKind.SERVER,
            attributes={names.GEN_AI_OPERATION: operation, names.URL_PATH: path},
        )
        return RequestSpan(self._tracer, span, operation)

    def shutdown(self) -> None:
        self.provider.shutdown()


class RequestSpan:
    """The request's SERVER span. Its context goes upstream (``head``), and its attempts are recorded as CLIENT
    children when the request ends, from the timestamps the gateway keeps anyway: nothing on the hot path."""

    __slots__ = ("_operation", "_tracer", "head", "span")

    def __init__(self, tracer: trace.Tracer, span: Span, operation: str) -> None:
        self._tracer = tracer
        self.span = span
        self._operation = operation
        carrier: dict[str, str] = {}
        _PROPAGATOR.inject(carrier, context=trace.set_span_in_context(span, Context()))
        self.head = "".join(f"{name}: {value}\r\n" for name, value in carrier.items()).encode("latin-1")
        """Header lines (CRLF-terminated) that carry this span's context to the upstream."""

    @property
    def trace_id(self) -> str:
        return format(self.span.get_span_context().trace_id, "032x")

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
        span = self._tracer.start_span(
            f"{self._operation} {model}",
            context=trace.set_span_in_context(self.span, Context()),
            kind=SpanKind.CLIENT,
            start_time=start_ns,
            attributes={
                names.GEN_AI_OPERATION: self._operation,
                names.GEN_AI_PROVIDER: provider,
                names.GEN_AI_REQUEST_MODEL: model,
                names.BACKEND: backend,
                names.ATTEMPT: attempt,
                names.HTTP_STATUS: status,
            },
        )
        if failure is not None or status >= 400 or status == 0:
            error = failure or str(status)
            span.set_attribute(names.ERROR_TYPE, error)
            span.set_status(Status(StatusCode.ERROR, error))
        span.end(end_time=end_ns)

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
        attributes: dict[str, Any] = {names.HTTP_STATUS: status}
        if route:
            self.span.update_name(f"{self._operation} {route}")
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
        self.span.set_attributes(attributes)
        if status >= 500 or error is not None:
            self.span.set_attribute(names.ERROR_TYPE, error or str(status))
            self.span.set_status(Status(StatusCode.ERROR, error))
        self.span.end(end_time=end_ns)
