"""A lean HTTP/1.1 client for upstream calls: keep-alive connections on asyncio transports, responses parsed by
httptools (llhttp, the parser Node.js uses). It parses no HTTP itself.

Why not aiohttp: on the gateway's hot path the upstream client was the largest cost. Profiled under load
(bench/RESULTS.md), aiohttp took ~185 µs of the gateway's ~410 µs per request, most of it building a request
object, its headers and a task per call. Here each request head is built once per backend and path, head and
body go out in one write, and a response is a few attributes on the connection that received it.

Scope is what LLM upstreams need: requests with a body known up front; responses with Content-Length, chunked
or close-delimited bodies, read whole or streamed as they arrive with backpressure; TLS through ``ssl``. No
redirects, cookies, proxies or HTTP/2.
"""

from __future__ import annotations

import asyncio
import ssl
import time
from collections import deque
from collections.abc import AsyncIterator
from typing import cast

import httptools

__all__ = ["ConnectError", "ConnectionPool", "ProtocolError", "Response"]

_HIGH_WATER = 256 * 1024  # buffered body bytes that pause reading from the upstream
_LOW_WATER = 64 * 1024
_MAX_IDLE = 512
_IDLE_TIMEOUT_S = 30.0


class ConnectError(OSError):
    """The connection could not be opened (refused, unreachable, DNS, TLS handshake, connect timeout)."""


class ProtocolError(Exception):
    """The upstream broke the exchange: closed early or sent something that is not HTTP."""

    def __init__(self, message: str, *, before_response: bool = False) -> None:
        super().__init__(message)
        self.before_response = before_response


class Response:
    """An upstream response: status and headers as soon as they arrive, then the body."""

    __slots__ = ("_conn", "headers", "status")

    def __init__(self, conn: _Connection, status: int, headers: dict[str, str]) -> None:
        self._conn = conn
        self.status = status
        self.headers = headers
        """Lower-case header names; a repeated header keeps its last value."""

    async def read(self, limit: int | None = None) -> bytes:
        """The whole body (or its first ``limit`` bytes, dropping the connection if more was left)."""
        parts = []
        size = 0
        async for chunk in self.iter_chunks():
            parts.append(chunk)
            size += len(chunk)
            if limit is not None and size >= limit:
                break
        body = b"".join(parts)
        return body if limit is None else body[:limit]

    async def iter_chunks(self) -> AsyncIterator[bytes]:
        conn = self._conn
        while True:
            chunk = await conn.next_chunk()
            if not chunk:
                return
            yield chunk

    def release(self) -> None:
        """Give the connection back for reuse when the body was fully read; otherwise close it."""
        self._conn.release()

    def close(self) -> None:
        self._conn.close()


class _Connection(asyncio.Protocol):
    """One keep-alive connection; one request at a time."""

    def __init__(self, pool: ConnectionPool) -> None:
        self._pool = pool
        self._loop = pool.loop
        self.transport: asyncio.Transport | None = None
        self._parser = httptools.HttpResponseParser(self)
        self._header_list: list[tuple[bytes, bytes]] = []
        self._head: asyncio.Future[Response] | None = None
        self._chunks: deque[bytes] = deque()
        self._buffered = 0
        self._waiter: asyncio.Future[None] | None = None
        self._paused = False
        self._complete = False
        self._keep_alive = False
        self._eof_body = False
        self._error: BaseException | None = None
        self._got_bytes = False
        self.idle_since = 0.0

    # --- protocol callbacks -------------------------------------------------------------------------

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = cast(asyncio.Transport, transport)  # uvloop's transports do not subclass asyncio's

    def data_received(self, data: bytes) -> None:
        self._got_bytes = True
        try:
            self._parser.feed_data(data)
        except httptools.HttpParserError as exc:
            self._fail(ProtocolError(f"invalid HTTP from the upstream: {exc}"))
            self.close()

    def connection_lost(self, exc: Exception | None) -> None:
        self._pool.forget(self)
        if self._eof_body and not self._complete and self._head is not None and self._head.done():
            self.on_message_complete()  # a close-delimited body ends here
            return
        if self._head is not None and not self._complete:
            before = not self._got_bytes
            self._fail(ProtocolError("the upstream closed the connection", before_response=before))

    def pause_writing(self) -> None:  # bodies are small; nothing to pause
        pass

    def resume_writing(self) -> None:
        pass

    # --- httptools callbacks ------------------------------------------------------------------------

    def on_header(self, name: bytes, value: bytes) -> None:
        self._header_list.append((name, value))

    def on_headers_complete(self) -> None:
        status = self._parser.get_status_code()
        if 100 <= status < 200:
            self._header_list.clear()
            return
        headers = {name.decode("latin-1").lower(): value.decode("latin-1") for name, value in self._header_list}
        self._eof_body = (
            "content-length" not in headers
            and "chunked" not in headers.get("transfer-encoding", "").lower()
            and status not in (204, 304)
        )
        head = self._head
        if head is not None and not head.done():
            head.set_result(Response(self, status, headers))

    def on_body(self, body: bytes) -> None:
        self._chunks.append(body)
        self._buffered += len(body)
        if self._buffered > _HIGH_WATER and not self._paused and self.transport is not None:
            self._paused = True
            self.transport.pause_reading()
        self._wake()

    def on_message_complete(self) -> None:
        # llhttp answers should_keep_alive() only inside its callbacks; afterwards it has reset.
        self._keep_alive = self._parser.should_keep_alive()
        self._complete = True
        self._wake()

    # --- the exchange -------------------------------------------------------------------------------

    def _wake(self) -> None:
        waiter = self._waiter
        if waiter is not None and not waiter.done():
            waiter.set_result(None)

    def _fail(self, error: BaseException) -> None:
        self._error = error
        head = self._head
        if head is not None and not head.done():
            head.set_exception(error)
        waiter = self._waiter
        if waiter is not None and not waiter.done():
            waiter.set_exception(error)

    async def send(self, data: bytes) -> Response:
        self._header_list = []
        self._chunks.clear()
        self._buffered = 0
        self._complete = False
        self._keep_alive = False
        self._eof_body = False
        self._error = None
        self._got_bytes = False
        self._head = self._loop.create_future()
        assert self.transport is not None
        self.transport.write(data)
        try:
            return await self._head
        except BaseException:
            self.close()
            raise

    async def next_chunk(self) -> bytes:
        """The next piece of body, or b"" once the body is complete."""
        while not self._chunks:
            if self._complete:
                return b""
            if self._error is not None:
                raise self._error
            self._waiter = self._loop.create_future()
            try:
                await self._waiter
            finally:
                self._waiter = None
        chunk = self._chunks.popleft()
        self._buffered -= len(chunk)
        if self._paused and self._buffered < _LOW_WATER and self.transport is not None:
            self._paused = False
            self.transport.resume_reading()
        return chunk

    def release(self) -> None:
        if self._complete and not self._chunks and self._keep_alive and self.reusable:
            self._head = None
            self.idle_since = time.monotonic()
            self._pool.put(self)
        else:
            self.close()

    @property
    def reusable(self) -> bool:
        return self.transport is not None and not self.transport.is_closing() and self._error is None

    def close(self) -> None:
        if self.transport is not None and not self.transport.is_closing():
            self.transport.close()
        self._pool.forget(self)


class ConnectionPool:
    """Keep-alive connections to one origin. Requests never wait for a connection: a new one is opened when
    none is idle (concurrency is capped per backend by the router, not here)."""

    def __init__(self, host: str, port: int, *, tls: ssl.SSLContext | None, connect_timeout_s: float) -> None:
        self.host = host
        self.port = port
        self.tls = tls
        self.connect_timeout_s = connect_timeout_s
        self.loop = asyncio.get_running_loop()
        self._idle: dict[_Connection, None] = {}  # an ordered set: the most recently used is reused first
        self._closed = False

    async def request(self, data: bytes) -> Response:
        """Send one complete request (head and body); return when the response head has arrived.

        A reused connection that the upstream had already closed fails before any response byte: the request
        is then sent once more on a new connection, since the upstream never saw it.
        """
        conn = self._take_idle()
        if conn is not None:
            try:
                return await conn.send(data)
            except ProtocolError as exc:
                if not exc.before_response:
                    raise
        conn = await self._connect()
        return await conn.send(data)

    def _take_idle(self) -> _Connection | None:
        now = time.monotonic()
        while self._idle:
            conn, _ = self._idle.popitem()
            if conn.reusable and now - conn.idle_since < _IDLE_TIMEOUT_S:
                return conn
            conn.close()
        return None

    async def _connect(self) -> _Connection:
        try:
            async with asyncio.timeout(self.connect_timeout_s):
                transport, protocol = await self.loop.create_connection(
                    lambda: _Connection(self),
                    self.host,
                    self.port,
                    ssl=self.tls,
                    server_hostname=self.host if self.tls is not None else None,
                )
        except TimeoutError:
            timeout = f"timed out after {self.connect_timeout_s:g}s connecting to {self.host}:{self.port}"
            raise ConnectError(timeout) from None
        except (OSError, ssl.SSLError) as exc:
            raise ConnectError(f"cannot connect to {self.host}:{self.port}: {exc}") from exc
        # uvloop may schedule connection_made() after create_connection() returns; the transport is known now.
        if protocol.transport is None:
            protocol.connection_made(transport)
        return protocol

    def put(self, conn: _Connection) -> None:
        if self._closed or len(self._idle) >= _MAX_IDLE:
            conn.close()
        else:
            self._idle[conn] = None

    def forget(self, conn: _Connection) -> None:
        self._idle.pop(conn, None)

    def close(self) -> None:
        self._closed = True
        for conn in list(self._idle):
            conn.close()
        self._idle.clear()
