"""The tracing module on its own: span shapes, W3C context in and out, configuration from OTEL_* variables."""

from __future__ import annotations

import time

import pytest
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import SpanKind, StatusCode

from interlock.telemetry import names
from interlock.telemetry.tracing import Sampling, Tracing, configure_tracing, parse_traceparent

CLIENT_TRACE = "4bf92f3577b34da6a3ce929d0e0e4736"
CLIENT_PARENT = "00f067aa0ba902b7"


@pytest.fixture
def exported() -> tuple[Tracing, InMemorySpanExporter]:
    exporter = InMemorySpanExporter()
    tracing = configure_tracing("test", processor=SimpleSpanProcessor(exporter), environ={})
    assert tracing is not None
    return tracing, exporter


def test_request_continues_the_clients_trace_and_passes_it_upstream(
    exported: tuple[Tracing, InMemorySpanExporter],
) -> None:
    tracing, exporter = exported
    traceparent = f"00-{CLIENT_TRACE}-{CLIENT_PARENT}-01".encode()
    request = tracing.start_request("chat", "/v1/chat/completions", traceparent)
    assert request is not None
    start = server_start = time.time_ns()
    request.record_attempt(
        backend="primary",
        provider="openai",
        model="gpt-x",
        attempt=1,
        start_ns=start + 1000,
        end_ns=start + 2000,
        status=503,
        failure=None,
    )
    request.record_attempt(
        backend="primary",
        provider="openai",
        model="gpt-x",
        attempt=2,
        start_ns=start + 3000,
        end_ns=start + 4000,
        status=200,
        failure=None,
    )
    request.end(
        status=200, route="chat-default", tenant="acme", backend="primary", response_model="gpt-x-2025",
        input_tokens=12, output_tokens=30, end_ns=server_start + 5000,
    )  # fmt: skip

    spans = {
        (span.name, span.attributes[names.ATTEMPT] if span.kind is SpanKind.CLIENT else 0): span
        for span in exporter.get_finished_spans()
    }
    server = spans[("chat chat-default", 0)]
    assert format(server.context.trace_id, "032x") == CLIENT_TRACE == request.trace_id
    assert server.parent is not None
    assert format(server.parent.span_id, "016x") == CLIENT_PARENT
    assert server.kind is SpanKind.SERVER
    assert server.attributes[names.GEN_AI_OPERATION] == "chat"
    assert server.attributes[names.GEN_AI_REQUEST_MODEL] == "chat-default"
    assert server.attributes[names.GEN_AI_RESPONSE_MODEL] == "gpt-x-2025"
    assert server.attributes[names.GEN_AI_INPUT_TOKENS] == 12
    assert server.attributes[names.GEN_AI_OUTPUT_TOKENS] == 30
    assert server.attributes[names.TENANT] == "acme"

    first, second = spans[("chat gpt-x", 1)], spans[("chat gpt-x", 2)]
    for attempt in (first, second):
        assert attempt.kind is SpanKind.CLIENT
        assert attempt.parent is not None
        assert attempt.parent.span_id == server.context.span_id
        assert attempt.attributes[names.GEN_AI_PROVIDER] == "openai"
    assert first.status.status_code is StatusCode.ERROR
    assert first.attributes[names.ERROR_TYPE] == "503"
    assert second.status.status_code is not StatusCode.ERROR
    assert (first.start_time, first.end_time) == (start + 1000, start + 2000)
    # What goes upstream names the request's span, in the client's trace.
    assert request.head == f"traceparent: 00-{CLIENT_TRACE}-{format(server.context.span_id, '016x')}-01\r\n".encode()


def test_no_content_is_recorded(exported: tuple[Tracing, InMemorySpanExporter]) -> None:
    tracing, exporter = exported
    request = tracing.start_request("chat", "/v1/chat/completions")
    assert request is not None
    now = time.time_ns()
    request.record_attempt(
        backend="b", provider="mock", model="m", attempt=1, start_ns=now, end_ns=now + 1, status=200, failure=None
    )
    request.end(status=200, route="m")
    for span in exporter.get_finished_spans():
        assert not [key for key in span.attributes if "prompt" in key or "completion" in key or "content" in key]


def test_a_new_trace_without_traceparent(exported: tuple[Tracing, InMemorySpanExporter]) -> None:
    tracing, exporter = exported
    request = tracing.start_request("chat", "m", b"garbage")
    assert request is not None
    request.end(status=502, error="upstream_error")
    (span,) = exporter.get_finished_spans()
    assert span.parent is None
    assert span.status.status_code is StatusCode.ERROR
    assert span.attributes[names.ERROR_TYPE] == "upstream_error"


def test_configuration_from_the_standard_variables() -> None:
    assert configure_tracing("gw", environ={}) is None
    assert configure_tracing("gw", environ={"OTEL_TRACES_EXPORTER": "none"}) is None
    assert configure_tracing("gw", environ={"OTEL_SDK_DISABLED": "true", "OTEL_TRACES_EXPORTER": "console"}) is None
    console = configure_tracing("gw", environ={"OTEL_TRACES_EXPORTER": "console", "OTEL_SERVICE_NAME": "edge"})
    assert console is not None
    assert console.resource.attributes["service.name"] == "edge"
    console.shutdown()
    otlp = configure_tracing("gw", environ={"OTEL_EXPORTER_OTLP_ENDPOINT": "http://127.0.0.1:4318"})
    assert otlp is not None
    otlp.shutdown()
    with pytest.raises(ValueError, match="zipkin"):
        configure_tracing("gw", environ={"OTEL_TRACES_EXPORTER": "zipkin"})


def test_sampling_follows_otel_traces_sampler() -> None:
    exporter = InMemorySpanExporter()
    environ = {"OTEL_TRACES_SAMPLER": "parentbased_always_off"}
    tracing = configure_tracing("gw", processor=SimpleSpanProcessor(exporter), environ=environ)
    assert tracing is not None
    assert tracing.start_request("chat", "m") is None
    sampled_parent = f"00-{CLIENT_TRACE}-{CLIENT_PARENT}-01".encode()
    request = tracing.start_request("chat", "m", sampled_parent)
    assert request is not None  # the client's sampled flag wins over the root sampler
    request.end(status=200)
    assert len(exporter.get_finished_spans()) == 1


@pytest.mark.parametrize(
    ("environ", "expected"),
    [
        ({}, Sampling(1.0, True)),
        ({"OTEL_TRACES_SAMPLER": "always_off"}, Sampling(0.0, False)),
        ({"OTEL_TRACES_SAMPLER": "parentbased_traceidratio", "OTEL_TRACES_SAMPLER_ARG": "0.25"}, Sampling(0.25, True)),
    ],
)
def test_sampler_variables(environ: dict[str, str], expected: Sampling) -> None:
    assert Sampling.from_env(environ) == expected


def test_ratio_sampling_keeps_about_that_share() -> None:
    sampling = Sampling(0.25, parent_based=False)
    kept = sum(sampling.decide(None) for _ in range(4000))
    assert 800 < kept < 1200
    unsampled_parent = f"00-{CLIENT_TRACE}-{CLIENT_PARENT}-00".encode()
    assert not Sampling(1.0, parent_based=True).decide(parse_traceparent(unsampled_parent))


@pytest.mark.parametrize(
    "bad",
    [{"OTEL_TRACES_SAMPLER": "jaeger_remote"}, {"OTEL_TRACES_SAMPLER": "traceidratio", "OTEL_TRACES_SAMPLER_ARG": "2"}],
)
def test_bad_sampler_variables_are_refused(bad: dict[str, str]) -> None:
    with pytest.raises(ValueError, match="OTEL_TRACES_SAMPLER"):
        Sampling.from_env(bad)


@pytest.mark.parametrize(
    ("header", "expected"),
    [
        (f"00-{CLIENT_TRACE}-{CLIENT_PARENT}-01", (int(CLIENT_TRACE, 16), int(CLIENT_PARENT, 16), True)),
        (f"00-{CLIENT_TRACE}-{CLIENT_PARENT}-00", (int(CLIENT_TRACE, 16), int(CLIENT_PARENT, 16), False)),
        (f"00-{CLIENT_TRACE}-{CLIENT_PARENT}-03", (int(CLIENT_TRACE, 16), int(CLIENT_PARENT, 16), True)),
        (f"01-{CLIENT_TRACE}-{CLIENT_PARENT}-01-future", (int(CLIENT_TRACE, 16), int(CLIENT_PARENT, 16), True)),
        (f"00-{CLIENT_TRACE}-{CLIENT_PARENT}-01-extra", None),  # version 00 has exactly four fields
        (f"ff-{CLIENT_TRACE}-{CLIENT_PARENT}-01", None),
        (f"00-{'0' * 32}-{CLIENT_PARENT}-01", None),
        (f"00-{CLIENT_TRACE}-{'0' * 16}-01", None),
        (f"00-{CLIENT_TRACE.upper()}-{CLIENT_PARENT}-01", None),
        (f"00-{CLIENT_TRACE}-{CLIENT_PARENT}-0g", None),
        (f"00_{CLIENT_TRACE}_{CLIENT_PARENT}_01", None),
        ("", None),
    ],
)
def test_traceparent_parsing(header: str, expected: tuple[int, int, bool] | None) -> None:
    assert parse_traceparent(header.encode()) == expected


def test_tracestate_is_kept_and_passed_upstream(exported: tuple[Tracing, InMemorySpanExporter]) -> None:
    tracing, exporter = exported
    traceparent = f"00-{CLIENT_TRACE}-{CLIENT_PARENT}-01".encode()
    request = tracing.start_request("chat", "/v1/chat/completions", traceparent, b"vendor=abc,other=1")
    assert request is not None
    assert request.head.endswith(b"\r\ntracestate: vendor=abc,other=1\r\n")
    request.end(status=200)
    (span,) = exporter.get_finished_spans()
    assert span.context.trace_state.to_header() == "vendor=abc,other=1"
    assert span.parent is not None
    assert span.parent.is_remote
