"""The gateway's HTTP limits (``gateway/http/limits.py``) against raw sockets: header bytes (431), header and body
timeouts (408, then close), idle keep-alive connections, the body limit (413); each trip is counted in
``interlock_limit_trips_total{limit}``. These also pin what the limits rely on in uvicorn's httptools protocol."""

from __future__ import annotations

import asyncio
from urllib.parse import urlsplit

import orjson
import pytest

from tests.gateway.harness import KEY, backend, config, route

HELLO = orjson.dumps({"model": "chat", "messages": [{"role": "user", "content": "Hi"}]})
SHORT = 0.5


@pytest.fixture
async def gw(upstream, gateway):
    up = await upstream()
    return await gateway(
        config(backend("a", up.url), route("chat", [("a", "m1")])),
        max_header_bytes=8 * 1024,
        header_timeout_s=SHORT,
        body_timeout_s=SHORT,
        idle_timeout_s=SHORT,
        max_body_bytes=64 * 1024,
    )


async def connect(gw) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
    url = urlsplit(gw.root)
    return await asyncio.open_connection(url.hostname, url.port)


def request(body: bytes = HELLO, *, extra: bytes = b"") -> bytes:
    return (
        b"POST /v1/chat/completions HTTP/1.1\r\nhost: gw\r\ncontent-type: application/json\r\n"
        b"authorization: Bearer " + KEY.encode() + b"\r\n" + extra + b"content-length: %d\r\n\r\n" % len(body) + body
    )


async def until_closed(reader: asyncio.StreamReader, within: float = 5.0) -> bytes:
    """Everything the server sends until it closes the connection (fails if it does not within ``within``)."""
    async with asyncio.timeout(within):
        return await reader.read()


async def trips(gw, limit: str) -> float:
    for line in (await gw.ops.get("/metrics")).text.splitlines():
        if line.startswith(f'interlock_limit_trips_total{{limit="{limit}"}}'):
            return float(line.split()[-1])
    return 0.0


async def test_headers_over_the_limit_are_431(gw):
    reader, writer = await connect(gw)
    writer.write(b"POST /v1/chat/completions HTTP/1.1\r\nhost: gw\r\n")
    for n in range(200):
        writer.write(b"x-filler-%d: %s\r\n" % (n, b"a" * 100))
    answer = await until_closed(reader)
    writer.close()
    assert answer.startswith(b"HTTP/1.1 431 "), answer[:200]
    assert b'"code":"request_header_too_large"' in answer
    assert await trips(gw, "header_bytes") == 1


async def test_headers_just_under_the_limit_are_served(gw):
    reader, writer = await connect(gw)
    writer.write(request(extra=b"x-filler: " + b"a" * 7000 + b"\r\n"))
    head = await reader.readuntil(b"\r\n\r\n")
    writer.close()
    assert head.startswith(b"HTTP/1.1 200 "), head
    assert await trips(gw, "header_bytes") == 0


@pytest.mark.parametrize("sent", [b"", b"POST /v1/chat/completions HTTP/1.1\r\nhost: gw\r\nx-slow: "])
async def test_slow_or_silent_headers_time_out(gw, sent):
    reader, writer = await connect(gw)
    writer.write(sent)
    answer = await until_closed(reader)
    writer.close()
    assert answer.startswith(b"HTTP/1.1 408 "), answer
    assert b"headers did not arrive" in answer
    assert await trips(gw, "header_timeout") == 1


async def test_a_slow_body_times_out_and_the_request_is_not_served(gw, upstream):
    reader, writer = await connect(gw)
    whole = request()
    writer.write(whole[: len(whole) - 20])  # the headers and most of the body
    answer = await until_closed(reader)
    writer.close()
    assert answer.startswith(b"HTTP/1.1 408 "), answer
    assert b"body did not arrive" in answer
    assert await trips(gw, "body_timeout") == 1
    metrics = (await gw.ops.get("/metrics")).text
    assert 'status="200"' not in metrics, "the request never reached an upstream"


async def test_an_idle_keep_alive_connection_is_closed_and_a_busy_one_is_not(gw):
    reader, writer = await connect(gw)
    for _ in range(3):  # back to back on one connection: no timeout trips between requests
        writer.write(request())
        head = await reader.readuntil(b"\r\n\r\n")
        assert head.startswith(b"HTTP/1.1 200 "), head
        length = int(
            next(v for k, v in (h.split(b": ", 1) for h in head.split(b"\r\n")[1:-2]) if k == b"content-length")
        )
        await reader.readexactly(length)
    assert await until_closed(reader) == b"", "the idle connection is closed without a word"
    writer.close()
    assert await trips(gw, "idle_timeout") == 1
    assert await trips(gw, "header_timeout") == 0
    assert await trips(gw, "body_timeout") == 0


async def test_a_body_over_the_limit_is_413_and_counted(gw):
    response = await gw.http.post("/v1/chat/completions", content=b"x" * (65 * 1024))
    assert response.status_code == 413
    assert await trips(gw, "body_bytes") == 1
