"""Pure pieces of the data plane, without servers."""

from __future__ import annotations

import email.utils
import time
from collections import Counter

import orjson
import pytest
from prometheus_client import generate_latest

from interlock.gateway.dispatch.attempts import backoff_delay
from interlock.gateway.dispatch.plan import BackendRuntime, RoutePlan, Target
from interlock.gateway.errors import AuthenticationError
from interlock.gateway.tenancy.auth import StaticKeyAuthenticator, extract_key
from interlock.gateway.upstream.client import parse_retry_after
from interlock.gateway.upstream.relay import OpenAIStreamRelay
from interlock.gateway.upstream.sse import EventSplitter, event_data, event_name, parse_event, split_events
from interlock.gatewayconfig import BackendConfig, CircuitBreakerConfig, RouteConfig, TargetConfig
from interlock.telemetry.metrics import GatewayMetrics


def chunk(content: str | None = None, *, usage: dict | None = None, choices: bool = True, null_usage: bool = True):
    body: dict = {"id": "c", "object": "chat.completion.chunk", "choices": []}
    if choices:
        body["choices"] = [{"index": 0, "delta": {"content": content}, "finish_reason": None}]
    if usage is not None:
        body["usage"] = usage
    elif null_usage:
        body["usage"] = None
    return b"data: " + orjson.dumps(body) + b"\n\n"


USAGE = {"prompt_tokens": 7, "completion_tokens": 2, "total_tokens": 9, "prompt_tokens_details": {"cached_tokens": 3}}
STREAM = chunk("a") + chunk("b") + chunk(choices=False, usage=USAGE) + b"data: [DONE]\n\n"


@pytest.mark.parametrize("size", [1, 3, 17, len(STREAM)])
@pytest.mark.parametrize("wants_usage", [True, False])
def test_relay_reassembles_events_across_any_chunking(size, wants_usage):
    relay = OpenAIStreamRelay(client_wants_usage=wants_usage)
    out = b"".join(relay.feed(STREAM[i : i + size]) for i in range(0, len(STREAM), size)) + relay.finish()
    assert relay.usage is not None
    assert (relay.usage.input_tokens, relay.usage.output_tokens, relay.usage.cached_tokens) == (7, 2, 3)
    assert relay.saw_done
    if wants_usage:
        assert out == STREAM
    else:
        assert out == chunk("a", null_usage=False) + chunk("b", null_usage=False) + b"data: [DONE]\n\n"


def test_relay_handles_crlf_and_spaced_json():
    raw = b'data: {"choices": [], "usage": {"prompt_tokens": 1, "completion_tokens": 1}}\r\n\r\ndata: [DONE]\r\n\r\n'
    relay = OpenAIStreamRelay(client_wants_usage=False)
    assert relay.feed(raw) == b"data: [DONE]\n\n"
    assert relay.usage is not None
    assert relay.usage.input_tokens == 1


def test_relay_keeps_usage_on_a_chunk_that_also_has_choices():
    raw = chunk("last", usage=USAGE)
    relay = OpenAIStreamRelay(client_wants_usage=False)
    assert relay.feed(raw) == raw
    assert relay.usage is not None


def test_relay_passes_unterminated_tail_on_finish():
    relay = OpenAIStreamRelay(client_wants_usage=False)
    assert relay.feed(b"data: [DONE]") == b""
    assert relay.finish() == b"data: [DONE]\n\n"


def test_relay_holds_done_back_when_the_client_asked_for_usage_that_never_came():
    relay = OpenAIStreamRelay(client_wants_usage=True)
    assert relay.feed(b"data: [DONE]\n\n") == b""
    assert relay.held_done  # the gateway sends its estimate's usage chunk, then [DONE]


@pytest.mark.parametrize(
    "event",
    [
        b'event: message_start\ndata: {"a":1}\n\n',
        b"event:  spaced \ndata: {}\n\n",
        b'data: {"x":1}\n\n',
        b"event: e\ndata: a\ndata:b\n\n",
        b"data: a\nevent: late\n\n",
        b": keepalive\n\n",
        b"event: only-a-name\n\n",
        b"event: x\ndata: one\nid: 7\n\n",
    ],
)
def test_parse_event_agrees_with_the_line_by_line_helpers(event):
    assert parse_event(event) == (event_name(event), event_data(event))


def test_sse_helpers():
    splitter = EventSplitter()
    assert splitter.feed(b"data: 1\n\nda") == b"data: 1\n\n"
    assert splitter.feed(b"ta: 2\n\n: comment\n\n") == b"data: 2\n\n: comment\n\n"
    assert split_events(b"data: 1\n\n: c\n\n") == [b"data: 1\n\n", b": c\n\n"]
    assert event_data(b"event: x\ndata: a\ndata:b\n\n") == b"a\nb"
    assert event_data(b": comment\n\n") is None


def backend_runtime(name: str, failures: int = 2, cooldown: float = 60.0, cap: int = 0) -> BackendRuntime:
    config = BackendConfig(
        name=name,
        provider="openai",
        url="http://x",
        models={},
        max_concurrency=cap,
        circuit_breaker=CircuitBreakerConfig(consecutive_failures=failures, cooldown_s=cooldown),
    )
    return BackendRuntime(config, None)


def plan(weights: dict[str, int], fallbacks: list[str] = ()) -> RoutePlan:
    targets = tuple(Target(backend_runtime(n), "m", w, None) for n, w in weights.items())
    spares = tuple(Target(backend_runtime(n), "m", 1, None) for n in fallbacks)
    config = RouteConfig(name="r", model="r", targets=(TargetConfig(backend="x", model="m"),))
    return RoutePlan(config=config, targets=targets, fallbacks=spares)


def test_candidates_are_weighted_then_fallbacks_in_order():
    route = plan({"a": 70, "b": 20, "c": 10, "off": 0}, fallbacks=["f1", "f2"])
    firsts = Counter()
    for _ in range(5000):
        order = [t.backend.name for t in route.candidates()]
        assert sorted(order[:3]) == ["a", "b", "c"]
        assert order[3:] == ["f1", "f2"]
        firsts[order[0]] += 1
    assert 3300 <= firsts["a"] <= 3700
    assert 800 <= firsts["b"] <= 1200
    assert 350 <= firsts["c"] <= 650


def test_breaker_opens_after_consecutive_failures_and_success_resets():
    b = backend_runtime("b", failures=2, cooldown=60)
    b.record_failure()
    b.record_success()
    b.record_failure()
    assert b.unavailable_reason(time.monotonic()) is None
    b.record_failure()
    assert "cooling down" in b.unavailable_reason(time.monotonic())
    assert b.unavailable_reason(time.monotonic() + 61) is None


def test_concurrency_cap_makes_backend_unavailable():
    b = backend_runtime("b", cap=2)
    b.inflight = 2
    assert "concurrency limit" in b.unavailable_reason(time.monotonic())


def test_backoff_grows_with_jitter_and_respects_retry_after():
    for retry in (1, 2, 3):
        ceiling = 0.1 * 2 ** (retry - 1)
        delays = [backoff_delay(0.1, retry, None) for _ in range(200)]
        assert all(ceiling / 2 <= d <= ceiling for d in delays)
        assert len(set(delays)) > 100
    assert backoff_delay(0.1, 1, 5.0) == 5.0


def test_retry_after_forms():
    assert parse_retry_after({"retry-after": "2"}) == 2.0
    assert parse_retry_after({"retry-after-ms": "250", "retry-after": "9"}) == 0.25
    future = email.utils.formatdate(time.time() + 30, usegmt=True)
    assert 28 <= parse_retry_after({"retry-after": future}) <= 31
    assert parse_retry_after({"retry-after": "soon"}) is None
    assert parse_retry_after({}) is None


def test_key_extraction_and_lookup():
    auth = StaticKeyAuthenticator({"sk-a": "team-a"})
    assert auth.authenticate(b"Bearer sk-a", None).tenant == "team-a"
    assert auth.authenticate(None, b"sk-a").tenant == "team-a"
    assert extract_key(b"bearer  sk-x ", None) == "sk-x"
    for authorization, x_api_key in [(None, None), (b"Basic abc", None), (b"Bearer ", None)]:
        with pytest.raises(AuthenticationError):
            extract_key(authorization, x_api_key)
    with pytest.raises(AuthenticationError):
        auth.authenticate(b"Bearer sk-b", None)


def test_histograms_are_cumulative_on_scrape():
    metrics = GatewayMetrics()
    labels = ("t", "r", "b", "m")
    for value in (0.001, 0.02, 0.02, 400.0):
        metrics.request_done(labels, 200, value)
    text = generate_latest(metrics.registry).decode()
    assert (
        'interlock_request_duration_seconds_bucket{backend="b",le="0.005",model="m",route="r",tenant="t"} 1.0' in text
    )
    assert (
        'interlock_request_duration_seconds_bucket{backend="b",le="0.025",model="m",route="r",tenant="t"} 3.0' in text
    )
    assert 'interlock_request_duration_seconds_bucket{backend="b",le="+Inf",model="m",route="r",tenant="t"} 4.0' in text
    assert 'interlock_request_duration_seconds_count{backend="b",model="m",route="r",tenant="t"} 4.0' in text


async def test_error_boundary_turns_a_bug_into_a_500_envelope_without_traceback():
    from interlock.gateway.http.middleware import ErrorBoundaryMiddleware

    async def broken(scope, receive, send):
        raise KeyError("bug")

    sent: list[dict] = []

    async def send(message):
        sent.append(message)

    await ErrorBoundaryMiddleware(broken)({"type": "http", "method": "GET", "path": "/x"}, None, send)
    assert sent[0]["status"] == 500
    assert b"internal error" in sent[1]["body"]
    assert b"Traceback" not in sent[1]["body"]


async def test_error_boundary_after_the_response_started_only_logs():
    from interlock.gateway.http.middleware import ErrorBoundaryMiddleware

    sent: list[dict] = []

    async def send(message):
        if sent and message["type"] == "http.response.start":
            raise RuntimeError("response already started")
        sent.append(message)

    async def half(scope, receive, send_):
        await send_({"type": "http.response.start", "status": 200, "headers": []})
        raise KeyError("bug")

    await ErrorBoundaryMiddleware(half)({"type": "http", "method": "GET", "path": "/x"}, None, send)
    assert [m["type"] for m in sent] == ["http.response.start"]
