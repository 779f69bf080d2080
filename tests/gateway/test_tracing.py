"""Traces of real requests through the gateway: GenAI attributes, the client's trace continued, one child span
per upstream attempt (a failed one included), the trace context sent upstream, and no content recorded."""

from __future__ import annotations

import pytest
from opentelemetry.proto.trace.v1.trace_pb2 import Span
from opentelemetry.sdk.trace import ReadableSpan
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import SpanKind, StatusCode

from interlock.mockprovider import Fault
from interlock.telemetry import names
from interlock.telemetry.tracing import Tracing, configure_tracing
from tests.gateway.harness import backend, config, route
from tests.support import eventually, otlp_collector

CLIENT_TRACE = "0af7651916cd43dd8448eb211c80319c"
CLIENT_SPAN = "b7ad6b7169203331"
HELLO = [{"role": "user", "content": "Tell me a secret"}]


@pytest.fixture
def exported() -> tuple[Tracing, InMemorySpanExporter]:
    exporter = InMemorySpanExporter()
    tracing = configure_tracing("interlock-gateway", processor=SimpleSpanProcessor(exporter), environ={})
    assert tracing is not None
    return tracing, exporter


def _by_kind(spans: tuple[ReadableSpan, ...], kind: SpanKind) -> list[ReadableSpan]:
    return sorted((s for s in spans if s.kind is kind), key=lambda s: s.start_time or 0)


async def test_a_streamed_request_with_a_retried_attempt(upstream, gateway, exported):
    tracing, exporter = exported
    up = await upstream(stream_chunks=5)
    gw = await gateway(
        config(backend("a", up.url), route("chat", [("a", "m1")], retry={"attempts": 2, "backoff": "1ms"})),
        tracing=tracing,
    )
    up.provider.push_faults([Fault(status=503)])
    traceparent = f"00-{CLIENT_TRACE}-{CLIENT_SPAN}-01"

    stream = await gw.client.chat.completions.create(
        model="chat",
        messages=HELLO,
        stream=True,
        stream_options={"include_usage": True},
        extra_headers={"traceparent": traceparent},
    )
    chunks = [chunk async for chunk in stream]
    usage = chunks[-1].usage
    assert usage is not None

    await eventually(lambda: len(exporter.get_finished_spans()) == 3, within=5, what="the request's three spans")
    spans = exporter.get_finished_spans()
    (server,) = _by_kind(spans, SpanKind.SERVER)
    failed, succeeded = _by_kind(spans, SpanKind.CLIENT)

    assert server.name == "chat chat"
    assert format(server.context.trace_id, "032x") == CLIENT_TRACE
    assert server.parent is not None
    assert format(server.parent.span_id, "016x") == CLIENT_SPAN
    attributes = server.attributes or {}
    assert attributes[names.GEN_AI_OPERATION] == "chat"
    assert attributes[names.GEN_AI_REQUEST_MODEL] == "chat"
    assert attributes[names.GEN_AI_RESPONSE_MODEL] == "m1"
    assert attributes[names.GEN_AI_INPUT_TOKENS] == usage.prompt_tokens
    assert attributes[names.GEN_AI_OUTPUT_TOKENS] == usage.completion_tokens
    assert attributes[names.BACKEND] == "a"
    assert attributes[names.HTTP_STATUS] == 200
    assert server.status.status_code is not StatusCode.ERROR

    for attempt, number in ((failed, 1), (succeeded, 2)):
        assert attempt.parent is not None
        assert attempt.parent.span_id == server.context.span_id
        assert (attempt.attributes or {})[names.ATTEMPT] == number
        assert (attempt.attributes or {})[names.GEN_AI_PROVIDER] == "openai"
        assert server.start_time <= attempt.start_time <= attempt.end_time <= server.end_time
    assert failed.end_time <= succeeded.start_time
    assert (failed.attributes or {})[names.HTTP_STATUS] == 503
    assert failed.status.status_code is StatusCode.ERROR
    assert (succeeded.attributes or {})[names.HTTP_STATUS] == 200

    # Both attempts carried the trace context upstream, in the client's trace.
    sent = [request.headers.get("traceparent", "") for request in up.provider.stats.recent]
    assert len(sent) == 2
    assert all(value.startswith(f"00-{CLIENT_TRACE}-") for value in sent)
    assert {value.split("-")[2] for value in sent} == {format(server.context.span_id, "016x")}

    # Nothing of the conversation is recorded.
    for span in spans:
        assert not any("secret" in str(value).lower() for value in (span.attributes or {}).values())


async def test_untraced_gateway_sends_no_trace_context(upstream, gateway):
    up = await upstream()
    gw = await gateway(config(backend("a", up.url), route("chat", [("a", "m1")])))
    await gw.client.chat.completions.create(model="chat", messages=HELLO)
    assert "traceparent" not in up.provider.stats.last.headers


async def test_an_upstream_failure_marks_the_request_span(upstream, gateway, exported):
    tracing, exporter = exported
    up = await upstream()
    gw = await gateway(config(backend("a", up.url), route("chat", [("a", "m1")])), tracing=tracing)
    up.provider.push_faults([Fault(status=500)] * 10)
    response = await gw.http.post("/v1/chat/completions", json={"model": "chat", "messages": HELLO})
    assert response.status_code == 502
    await eventually(
        lambda: _by_kind(exporter.get_finished_spans(), SpanKind.SERVER), within=5, what="the request's span"
    )
    (server,) = _by_kind(exporter.get_finished_spans(), SpanKind.SERVER)
    attempts = _by_kind(exporter.get_finished_spans(), SpanKind.CLIENT)
    assert len(attempts) == up.requests
    assert all(attempt.status.status_code is StatusCode.ERROR for attempt in attempts)
    assert server.status.status_code is StatusCode.ERROR
    assert (server.attributes or {})[names.HTTP_STATUS] == 502


async def test_a_request_reaches_an_otlp_collector(upstream, gateway, monkeypatch):
    """The production path: OTEL_* variables, the batch span processor, our encoder, a real HTTP collector."""
    with otlp_collector() as collector:
        monkeypatch.setenv("OTEL_EXPORTER_OTLP_ENDPOINT", collector.url)
        monkeypatch.setenv("OTEL_BSP_SCHEDULE_DELAY", "20")  # milliseconds: export at once, not after 5 s
        monkeypatch.setenv("OTEL_SERVICE_NAME", "edge-gateway")
        tracing = configure_tracing("interlock-gateway")
        assert tracing is not None
        try:
            up = await upstream()
            gw = await gateway(config(backend("a", up.url), route("chat", [("a", "m1")])), tracing=tracing)
            traceparent = f"00-{CLIENT_TRACE}-{CLIENT_SPAN}-01"
            answer = await gw.client.chat.completions.create(
                model="chat", messages=HELLO, extra_headers={"traceparent": traceparent}
            )
            assert answer.usage is not None
            spans = await eventually(lambda: len(collector.spans()) == 2 and collector.spans(), within=10)
        finally:
            tracing.shutdown()

    by_kind = {span.kind: (export, span) for export, span in spans}
    export, server = by_kind[Span.SpanKind.SPAN_KIND_SERVER]
    _, attempt = by_kind[Span.SpanKind.SPAN_KIND_CLIENT]
    resource = {kv.key: kv.value.string_value for kv in export.resource_spans[0].resource.attributes}
    assert resource["service.name"] == "edge-gateway"
    assert export.resource_spans[0].scope_spans[0].scope.name == "interlock.gateway"
    assert server.trace_id.hex() == attempt.trace_id.hex() == CLIENT_TRACE
    assert server.parent_span_id.hex() == CLIENT_SPAN
    assert attempt.parent_span_id == server.span_id
    assert server.name == "chat chat"
    attributes = {kv.key: kv.value for kv in server.attributes}
    assert attributes[names.GEN_AI_INPUT_TOKENS].int_value == answer.usage.prompt_tokens
    assert attributes[names.GEN_AI_RESPONSE_MODEL].string_value == "m1"
    assert attributes[names.HTTP_STATUS].int_value == 200
    assert server.start_time_unix_nano <= attempt.start_time_unix_nano < attempt.end_time_unix_nano
    assert attempt.end_time_unix_nano <= server.end_time_unix_nano
