"""A backend's credential never leaves the gateway, whatever its upstream echoes.

An upstream that quotes the key it was sent (as real providers' 401 messages do, and as a hostile one may do in a
body, an error event, a redirect or a stream split mid-key) is called through every endpoint, streamed and not,
passthrough and translated. No response byte, log line, span or usage row may carry the key; each echoed text
arrives redacted (so the test sees the path it guards), and a redirect is a 502, never relayed.
"""

from __future__ import annotations

import itertools
import logging
import secrets
from collections.abc import Iterator
from typing import Any

import httpx
import orjson
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

from bench.faults.hostile import HostileUpstream
from interlock.gateway.upstream.redact import MASK
from interlock.telemetry.tracing import configure_tracing
from tests.gateway.enforcement_support import cp_settings
from tests.gateway.harness import backend, config, route
from tests.support import eventually

OPENAI_KEY = "sk-proj-" + secrets.token_urlsafe(36)
ANTHROPIC_KEY = "sk-ant-api03-" + secrets.token_urlsafe(60)
SECRETS = {"oa": {"key": OPENAI_KEY}, "an": {"key": ANTHROPIC_KEY}}
ECHOES = ("echo-body", "echo-400", "echo-401", "echo-500", "echo-stream-error", "echo-split", "redirect")
HELLO = [{"role": "user", "content": "Hello"}]


def fragments(key: str) -> Iterator[bytes]:
    """The key, and a middle part of it (a partial leak is a leak)."""
    yield key.encode()
    middle = len(key) // 2
    yield key[middle - 8 : middle + 8].encode()


def leaks(text: bytes | str) -> list[str]:
    data = text.encode() if isinstance(text, str) else text
    return [
        name
        for name, key in (("openai", OPENAI_KEY), ("anthropic", ANTHROPIC_KEY))
        if any(f in data for f in fragments(key))
    ]


class _Capture(logging.Handler):
    def __init__(self) -> None:
        super().__init__(logging.DEBUG)
        self.lines: list[str] = []
        self.setFormatter(logging.Formatter("%(name)s %(levelname)s %(message)s"))

    def emit(self, record: logging.LogRecord) -> None:
        self.lines.append(self.format(record))


@pytest.fixture
def logs() -> Iterator[_Capture]:
    """Every log line of the gateway and of uvicorn (which does not propagate to the root), at DEBUG."""
    capture = _Capture()
    loggers = [logging.getLogger(), logging.getLogger("uvicorn"), logging.getLogger("uvicorn.error")]
    levels = [lg.level for lg in loggers]
    for lg in loggers:
        lg.addHandler(capture)
        lg.setLevel(logging.DEBUG)
    yield capture
    for lg, level in zip(loggers, levels, strict=True):
        lg.removeHandler(capture)
        lg.setLevel(level)


def request_for(endpoint: str, model: str, stream: bool) -> tuple[str, dict[str, Any]]:
    if endpoint == "chat":
        return "/v1/chat/completions", {"model": model, "messages": HELLO, "stream": stream}
    if endpoint == "messages":
        return "/v1/messages", {"model": model, "messages": HELLO, "max_tokens": 50, "stream": stream}
    if endpoint == "responses":
        return "/v1/responses", {"model": model, "input": "Hello", "stream": stream}
    return "/v1/embeddings", {"model": model, "input": "Hello"}


CASES = [
    ("chat", "oa", False),
    ("chat", "oa", True),
    ("chat", "an", False),
    ("chat", "an", True),
    ("messages", "an", False),
    ("messages", "an", True),
    ("messages", "oa", False),
    ("messages", "oa", True),
    ("responses", "oa", False),
    ("responses", "oa", True),
    ("responses", "an", False),
    ("responses", "an", True),
    ("embeddings", "oa", False),
]


@pytest.mark.parametrize(("endpoint", "provider", "stream"), CASES)
async def test_no_credential_in_responses_logs_spans_or_usage_rows(
    servers, gateway, control_plane, tmp_path, logs, endpoint, provider, stream
):
    upstream = HostileUpstream()
    root = await servers.start(upstream, lifespan="off")
    exporter = InMemorySpanExporter()
    tracing = configure_tracing("interlock-gateway", processor=SimpleSpanProcessor(exporter), environ={})
    cp = control_plane
    tenant = cp.add_tenant("acme")
    _, key = cp.add_key(tenant)
    manifests = [
        backend(
            "oa", f"{root}/v1", provider="openai", credentialsSecretRef={"name": "oa", "key": "key"}, models=ECHOES
        ),
        backend(
            "an", f"{root}/v1", provider="anthropic", credentialsSecretRef={"name": "an", "key": "key"}, models=ECHOES
        ),
        *(route(f"{b}-{p}", [(p, b)], retry={"attempts": 1}) for b in ECHOES for p in ("oa", "an")),
    ]
    gw = await gateway(
        config(*manifests),
        keys=None,
        api_key=key,
        secrets=SECRETS,
        tracing=tracing,
        **cp_settings(cp, tmp_path / "spool.sqlite"),
    )
    sent = 0
    for behaviour in ECHOES:
        path, body = request_for(endpoint, f"{behaviour}-{provider}", stream)
        async with gw.http.stream("POST", path, json=body) as response:
            raw = await response.aread()
        sent += 1
        seen = f"{behaviour}: HTTP {response.status_code} {response.headers} {raw!r}"
        assert not leaks(raw), f"credential in the response: {seen}"
        assert not leaks(str(response.headers)), f"credential in the response headers: {seen}"
        assert not 300 <= response.status_code < 400, f"a redirect was relayed: {seen}"
        if behaviour == "redirect":
            assert response.status_code == 502, seen
        if behaviour in ("echo-body", "echo-400", "echo-401", "echo-500") or (stream and behaviour.startswith("echo")):
            assert MASK in raw, f"the echoed credential should arrive redacted: {seen}"
    assert upstream.seen_keys == {OPENAI_KEY if provider == "oa" else ANTHROPIC_KEY}, "the upstream saw the key"

    await eventually(lambda: len(cp.events) >= sent, within=10, what="every usage row")
    await eventually(lambda: len({s.context.trace_id for s in exporter.get_finished_spans()}) >= sent, within=10)
    rows = orjson.dumps([event.model_dump(mode="json") for event in cp.events.values()])
    assert not leaks(rows), "credential in a usage row"
    for span in exporter.get_finished_spans():
        assert not leaks(span.to_json()), f"credential in span {span.name}"
    assert not leaks("\n".join(logs.lines)), "credential in a log line"


async def test_a_credential_split_across_reads_is_redacted_without_holding_the_stream(servers, gateway):
    upstream = HostileUpstream()
    root = await servers.start(upstream, lifespan="off")
    gw = await gateway(
        config(
            backend("oa", f"{root}/v1", credentialsSecretRef={"name": "oa", "key": "key"}, models=["echo-split"]),
            route("split", [("oa", "echo-split")]),
        ),
        secrets=SECRETS,
    )
    stream = await gw.client.chat.completions.create(model="split", messages=HELLO, stream=True)
    text = "".join([c.choices[0].delta.content or "" async for c in stream if c.choices])
    assert text == f"Your key is {MASK.decode()}."


async def test_a_redirect_is_a_502_and_falls_back(servers, gateway, upstream):
    hostile = await servers.start(HostileUpstream(), lifespan="off")
    good = await upstream()
    gw = await gateway(
        config(
            backend("moved", f"{hostile}/v1", credentialsSecretRef={"name": "oa", "key": "key"}, models=["redirect"]),
            backend("good", good.url),
            route("chat", [("moved", "redirect")], fallbacks=[("good", "m1")]),
            route("only-moved", [("moved", "redirect")]),
        ),
        secrets=SECRETS,
    )
    answer = await gw.client.chat.completions.create(model="chat", messages=HELLO)
    assert answer.choices[0].message.content
    response = await gw.http.post("/v1/chat/completions", json={"model": "only-moved", "messages": HELLO})
    assert response.status_code == 502
    assert "redirect" in response.json()["error"]["message"]
    assert "location" not in response.headers
    metrics = (await gw.ops.get("/metrics")).text
    assert 'interlock_upstream_errors_total{backend="moved",reason="redirect"}' in metrics


async def test_redaction_covers_the_quoted_forms_of_a_key():
    from interlock.gateway.upstream.redact import Redactor

    key = "sk-a/b+c=é-0123456789"
    redactor = Redactor([key])
    for form in (key.encode(), b"sk-a\\/b+c=\\u00e9-0123456789", httpx.URL("http://x", params={"k": key}).query[2:]):
        assert redactor.redact(b"<" + form + b">") == b"<" + MASK + b">", form


KEY = "sk-proj-Abc123xyz_Abc123xyz-Abc123xyz"


@given(
    parts=st.lists(
        st.sampled_from(["data: ", "sk-", "Abc", KEY, KEY[:10], KEY[10:], "x", "\n\n", '"', "é"]), max_size=30
    ),
    cuts=st.lists(st.integers(min_value=0, max_value=2000), max_size=12),
)
@settings(max_examples=300, deadline=None)
def test_a_stream_is_redacted_whatever_its_chunking(parts, cuts):
    from interlock.gateway.upstream.redact import Redactor

    text = "".join(parts).encode()
    redactor = Redactor([KEY])
    bounds = sorted({c % (len(text) + 1) for c in cuts} | {0, len(text)})
    stream = redactor.stream()
    out = [stream.feed(text[a:b]) for a, b in itertools.pairwise(bounds)] + [stream.flush()]
    assert b"".join(out) == redactor.redact(text)
    assert all(KEY.encode() not in chunk for chunk in out)


def test_a_chunk_ending_in_a_newline_is_never_held_back():
    from interlock.gateway.upstream.redact import Redactor

    stream = Redactor([KEY]).stream()
    chunk = b'data: {"content": "sk-proj-Abc"}\n\n'
    assert stream.feed(chunk) == chunk
    assert stream.feed(b'data: {"content": "...' + KEY[:12].encode()) == b'data: {"content": "...'
    assert stream.feed(KEY[12:].encode() + b'"}\n\n') == b'[REDACTED]"}\n\n'
