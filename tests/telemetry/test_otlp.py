"""The OTLP encoder writes what the SDK's encoder writes, and the exporter delivers it over real HTTP."""

from __future__ import annotations

import time
from collections.abc import Iterator
from typing import Any

import pytest
from opentelemetry.exporter.otlp.proto.common.trace_encoder import encode_spans
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import Event, ReadableSpan, SpanLimits, TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.sdk.util.instrumentation import InstrumentationScope
from opentelemetry.trace import (
    Link,
    SpanContext,
    SpanKind,
    Status,
    StatusCode,
    TraceFlags,
    TraceState,
    set_span_in_context,
)

from interlock.telemetry import otlp
from interlock.telemetry.otlp import FastOTLPSpanExporter, encode_request
from interlock.telemetry.tracing import configure_tracing
from tests.support import Collector, otlp_collector

SAMPLED = TraceFlags(TraceFlags.SAMPLED)
RESOURCE = Resource.create({"service.name": "gw", "deployment.replica": 3, "canary": False})
OTHER_RESOURCE = Resource({"service.name": "other"}, schema_url="https://opentelemetry.io/schemas/1.30.0")
SCOPE = InstrumentationScope("interlock.gateway")
VERSIONED_SCOPE = InstrumentationScope("lib", "1.2.3", "https://example.com/schema", {"scope.attr": "x"})


def _context(trace_id: int = 0x4BF92F3577B34DA6A3CE929D0E0E4736, span_id: int = 0x00F067AA0BA902B7, **kw: Any):
    return SpanContext(trace_id, span_id, is_remote=kw.pop("is_remote", False), trace_flags=SAMPLED, **kw)


def _span(name: str = "chat gpt", **kw: Any) -> ReadableSpan:
    defaults: dict[str, Any] = {
        "context": _context(),
        "resource": RESOURCE,
        "kind": SpanKind.SERVER,
        "start_time": 1_700_000_000_123_456_789,
        "end_time": 1_700_000_000_223_456_789,
        "instrumentation_scope": SCOPE,
    }
    return ReadableSpan(name, **{**defaults, **kw})


def _gateway_spans() -> list[ReadableSpan]:
    """Spans as the gateway writes them: a request continuing a client's trace, with a failed and a good attempt."""
    exporter = InMemorySpanExporter()
    tracing = configure_tracing("gw", processor=SimpleSpanProcessor(exporter), environ={})
    assert tracing is not None
    traceparent = b"00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01"
    request = tracing.start_request("chat", "/v1/chat/completions", traceparent, b"vendor=abc,other=1")
    assert request is not None
    now = time.time_ns()
    for attempt, status in ((1, 503), (2, 200)):
        request.record_attempt(
            backend="primary", provider="openai", model="gpt-4o", attempt=attempt,
            start_ns=now + attempt, end_ns=now + 10 * attempt, status=status, failure=None,
        )  # fmt: skip
    request.end(
        status=200, route="chat", tenant="acmé", backend="primary", response_model="gpt-4o-2024",
        input_tokens=12, output_tokens=300, cached_tokens=2**40,
    )  # fmt: skip
    return list(exporter.get_finished_spans())


def _same_as_the_sdk(spans: list[ReadableSpan]) -> None:
    ours = ExportTraceServiceRequest.FromString(encode_request(spans))
    assert ours == encode_spans(spans)


def test_gateway_spans_encode_as_the_sdk_encodes_them() -> None:
    spans = _gateway_spans()
    assert len(spans) == 3
    for _ in range(2):  # the second time from the caches
        _same_as_the_sdk(spans)
    # And byte for byte: the same fields in the same order.
    assert encode_request(spans) == encode_spans(spans).SerializePartialToString()


@pytest.mark.parametrize(
    "span",
    [
        _span(),
        _span(parent=_context(span_id=7, is_remote=True)),
        _span(parent=_context(span_id=7), kind=SpanKind.CLIENT),
        _span(context=_context(trace_state=TraceState([("a", "1"), ("b", "two")]))),
        _span(status=Status(StatusCode.ERROR, "upstream timed out"), kind=SpanKind.INTERNAL),
        _span(status=Status(StatusCode.OK), kind=SpanKind.PRODUCER),
        _span(status=Status(StatusCode.ERROR), kind=SpanKind.CONSUMER),
        _span(attributes={"s": "", "t": True, "f": False, "zero": 0, "neg": -5, "big": 2**62, "pi": 3.25}),
        _span(attributes={"unicode": "日本語 ✓", "long": "x" * 300}),
        _span(name="", start_time=None, end_time=None),
        _span(instrumentation_scope=None),
        _span(instrumentation_scope=VERSIONED_SCOPE, resource=OTHER_RESOURCE),
    ],
    ids=lambda span: f"{span.name}-{span.kind.name}-{sorted(span.attributes or {})}",
)
def test_every_field_encodes_as_the_sdk_encodes_it(span: ReadableSpan) -> None:
    _same_as_the_sdk([span])


def test_spans_of_the_sdk_tracer_encode_as_the_sdk_encodes_them() -> None:
    """Live SDK spans (a ReadableSpan subclass) go through the public properties; their dropped attributes count."""
    exporter = InMemorySpanExporter()
    provider = TracerProvider(resource=RESOURCE, span_limits=SpanLimits(max_span_attributes=2))
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    tracer = provider.get_tracer("lib", "1.0")
    outer = tracer.start_span("outer", kind=SpanKind.SERVER, attributes={"a": 1, "b": "x", "c": True})
    with tracer.start_as_current_span("inner", context=set_span_in_context(outer)) as inner:
        inner.set_status(Status(StatusCode.ERROR, "boom"))
    outer.end()
    spans = list(exporter.get_finished_spans())
    assert spans[1].dropped_attributes == 1
    _same_as_the_sdk(spans)


def test_a_batch_is_grouped_by_resource_then_scope() -> None:
    batch = [
        _span("a"),
        _span("b", resource=OTHER_RESOURCE),
        _span("c", instrumentation_scope=VERSIONED_SCOPE),
        _span("d"),
        _span("e", resource=OTHER_RESOURCE, instrumentation_scope=None),
    ]
    _same_as_the_sdk(batch)
    _same_as_the_sdk([])


@pytest.mark.parametrize(
    "odd",
    [
        _span(events=[Event("retry", {"n": 1}, timestamp=5)]),
        _span(links=[Link(_context(span_id=9))]),
        _span(attributes={"models": ("a", "b")}),
    ],
)
def test_what_the_encoder_does_not_write_goes_through_the_sdk(odd: ReadableSpan) -> None:
    _same_as_the_sdk([_span("plain"), odd])


def test_the_string_cache_is_bounded(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(otlp, "_MAX_CACHED", 16)
    encoder = otlp._Encoder()
    for n in range(100):
        span = _span(attributes={"tenant": f"t{n}"})
        assert ExportTraceServiceRequest.FromString(encoder.request([span])) == encode_spans([span])
    assert len(encoder._values) <= 16


@pytest.fixture
def collector() -> Iterator[Collector]:
    with otlp_collector() as running:
        yield running


def test_the_exporter_posts_the_batch_to_the_collector(collector: Collector, monkeypatch: pytest.MonkeyPatch) -> None:
    url = collector.url
    monkeypatch.setenv("OTEL_EXPORTER_OTLP_ENDPOINT", url)
    tracing = configure_tracing("interlock-gateway", environ={"OTEL_EXPORTER_OTLP_ENDPOINT": url})
    assert tracing is not None
    exporter = tracing.processor._batch_processor._exporter  # type: ignore[attr-defined]
    assert isinstance(exporter, FastOTLPSpanExporter)
    assert exporter.fast, "the SDK exporter changed: FastOTLPSpanExporter fell back to the SDK's slow encoder"
    for n in range(5):
        request = tracing.start_request("chat", "/v1/chat/completions")
        assert request is not None
        request.end(status=200, route="chat", tenant=f"t{n}", input_tokens=n)
    tracing.shutdown()  # flushes the batch

    spans = [span for _, span in collector.spans()]
    assert sorted(span.name for span in spans) == ["chat chat"] * 5
    tenants = sorted(a.value.string_value for span in spans for a in span.attributes if a.key == "interlock.tenant")
    assert tenants == [f"t{n}" for n in range(5)]


def test_a_refusing_collector_is_a_failed_export() -> None:
    exporter = FastOTLPSpanExporter(endpoint="http://127.0.0.1:9/v1/traces", timeout=0.5)
    assert exporter.export([_span()]).name == "FAILURE"
    exporter.shutdown()
