"""The upstream HTTP/1.1 client against raw asyncio servers that misbehave on purpose."""

from __future__ import annotations

import asyncio
import ssl
from collections.abc import AsyncIterator, Awaitable, Callable

import pytest
import trustme

from interlock.gateway.upstream.http1 import ConnectError, ConnectionPool, ProtocolError

Handler = Callable[[asyncio.StreamReader, asyncio.StreamWriter], Awaitable[None]]
REQUEST = b"POST /v1/x HTTP/1.1\r\nhost: t\r\ncontent-length: 2\r\n\r\n{}"


class Server:
    def __init__(self, handler: Handler) -> None:
        self.handler = handler
        self.connections = 0
        self.server: asyncio.Server | None = None

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.connections += 1
        try:
            await self.handler(reader, writer)
        finally:
            writer.close()

    @property
    def port(self) -> int:
        assert self.server is not None
        return int(self.server.sockets[0].getsockname()[1])


@pytest.fixture
async def serve() -> AsyncIterator[Callable[..., Awaitable[Server]]]:
    servers: list[Server] = []

    async def start(handler: Handler, tls: ssl.SSLContext | None = None) -> Server:
        server = Server(handler)
        server.server = await asyncio.start_server(server._serve, "127.0.0.1", 0, ssl=tls)
        servers.append(server)
        return server

    yield start
    for server in servers:
        assert server.server is not None
        server.server.close()


async def read_request(reader: asyncio.StreamReader) -> bytes:
    head = await reader.readuntil(b"\r\n\r\n")
    length = next(
        (int(line.split(b":")[1]) for line in head.split(b"\r\n") if line.lower().startswith(b"content-length")), 0
    )
    return head + await reader.readexactly(length)


def keep_alive(body: bytes, *, times: int = 100) -> Handler:
    async def handler(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        for _ in range(times):
            try:
                await read_request(reader)
            except asyncio.IncompleteReadError:
                return
            writer.write(
                b"HTTP/1.1 200 OK\r\ncontent-type: text/plain\r\ncontent-length: %d\r\n\r\n%s" % (len(body), body)
            )
            await writer.drain()

    return handler


def pool_for(server: Server, tls: ssl.SSLContext | None = None) -> ConnectionPool:
    return ConnectionPool("127.0.0.1", server.port, tls=tls, connect_timeout_s=5)


async def test_keep_alive_reuses_one_connection(serve):
    server = await serve(keep_alive(b"hello"))
    pool = pool_for(server)
    for _ in range(5):
        response = await pool.request(REQUEST)
        assert (response.status, response.headers["content-type"]) == (200, "text/plain")
        assert await response.read() == b"hello"
        response.release()
    assert server.connections == 1
    pool.close()


async def test_a_connection_the_server_closed_while_idle_is_replaced_transparently(serve):
    server = await serve(keep_alive(b"ok", times=1))  # answers once, then closes
    pool = pool_for(server)
    for _ in range(3):
        response = await pool.request(REQUEST)
        assert await response.read() == b"ok"
        response.release()
    assert server.connections == 3
    pool.close()


async def test_chunked_body_streams_as_it_arrives(serve):
    gate = asyncio.Event()

    async def handler(reader, writer):
        await read_request(reader)
        writer.write(b"HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\n\r\n5\r\nfirst\r\n")
        await writer.drain()
        await gate.wait()
        writer.write(b"6\r\nsecond\r\n0\r\n\r\n")
        await writer.drain()

    pool = pool_for(await serve(handler))
    response = await pool.request(REQUEST)
    chunks = response.iter_chunks()
    assert await anext(chunks) == b"first"
    gate.set()
    assert [c async for c in chunks] == [b"second"]
    response.release()
    pool.close()


async def test_close_delimited_body_ends_at_eof(serve):
    async def handler(reader, writer):
        await read_request(reader)
        writer.write(b"HTTP/1.1 200 OK\r\nconnection: close\r\n\r\nall of it")
        await writer.drain()

    server = await serve(handler)
    pool = pool_for(server)
    response = await pool.request(REQUEST)
    assert await response.read() == b"all of it"
    response.release()
    response = await pool.request(REQUEST)  # not reused: it was closed
    assert await response.read() == b"all of it"
    assert server.connections == 2
    pool.close()


async def test_a_body_cut_short_is_a_protocol_error(serve):
    async def handler(reader, writer):
        await read_request(reader)
        writer.write(b"HTTP/1.1 200 OK\r\ncontent-length: 100\r\n\r\nonly this")
        await writer.drain()

    pool = pool_for(await serve(handler))
    response = await pool.request(REQUEST)
    with pytest.raises(ProtocolError):
        await response.read()
    pool.close()


async def test_garbage_is_a_protocol_error(serve):
    async def handler(reader, writer):
        await read_request(reader)
        writer.write(b"NOT HTTP AT ALL\r\n\r\n")
        await writer.drain()
        await asyncio.sleep(1)

    pool = pool_for(await serve(handler))
    with pytest.raises(ProtocolError):
        await pool.request(REQUEST)
    pool.close()


async def test_refused_connection_is_a_connect_error(serve):
    server = await serve(keep_alive(b""))
    port = server.port
    assert server.server is not None
    server.server.close()
    await server.server.wait_closed()
    pool = ConnectionPool("127.0.0.1", port, tls=None, connect_timeout_s=5)
    with pytest.raises(ConnectError, match="cannot connect"):
        await pool.request(REQUEST)


async def test_reading_part_of_a_body_drops_the_connection(serve):
    server = await serve(keep_alive(b"x" * 5_000_000))
    pool = pool_for(server)
    response = await pool.request(REQUEST)
    assert len(await response.read(limit=100)) == 100
    response.release()
    response = await pool.request(REQUEST)
    assert len(await response.read()) == 5_000_000
    response.release()
    assert server.connections == 2, "a connection with unread body is never reused"
    pool.close()


async def test_a_slow_reader_pauses_the_upstream(serve):
    chunk = b"y" * 65536
    total = 200

    async def handler(reader, writer):
        await read_request(reader)
        writer.write(b"HTTP/1.1 200 OK\r\ncontent-length: %d\r\n\r\n" % (len(chunk) * total))
        for _ in range(total):
            writer.write(chunk)
            await writer.drain()

    pool = pool_for(await serve(handler))
    response = await pool.request(REQUEST)
    received = 0
    peak = 0
    async for piece in response.iter_chunks():
        received += len(piece)
        peak = max(peak, response._conn._buffered)
        await asyncio.sleep(0)  # a consumer slower than loopback
    assert received == len(chunk) * total
    assert peak < 2 * 1024 * 1024, "buffering is bounded by pausing the transport"
    response.release()
    pool.close()


async def test_tls_with_a_trusted_ca(serve):
    ca = trustme.CA()
    server_tls = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    ca.issue_cert("127.0.0.1").configure_cert(server_tls)
    client_tls = ssl.create_default_context()
    ca.configure_trust(client_tls)
    server = await serve(keep_alive(b"secure"), tls=server_tls)

    pool = pool_for(server, tls=client_tls)
    response = await pool.request(REQUEST)
    assert await response.read() == b"secure"
    response.release()
    pool.close()

    untrusting = pool_for(server, tls=ssl.create_default_context())
    with pytest.raises(ConnectError, match="CERTIFICATE_VERIFY_FAILED"):
        await untrusting.request(REQUEST)
