"""HTTP to upstream providers: one client per backend over the lean keep-alive client in ``http1.py``, the
mapping of transport errors to ``AttemptFailure``, and the entry point of upstream bytes: every body is read
through ``UpstreamResponse``, which redacts the backend's credential (``redact.py``) before anything else sees it.
"""

from __future__ import annotations

import email.utils
import ssl
import time
from collections.abc import AsyncIterator, Iterable, Mapping
from types import TracebackType
from urllib.parse import urlsplit

from interlock.gateway.controlplane.client import USER_AGENT
from interlock.gateway.errors import AttemptFailure
from interlock.gateway.upstream.http1 import ConnectError, ConnectionPool, ProtocolError, Response
from interlock.gateway.upstream.redact import Redactor

__all__ = ["BackendClient", "UpstreamResponse", "parse_retry_after", "transport_errors"]

_TLS = ssl.create_default_context()


def parse_retry_after(headers: Mapping[str, str]) -> float | None:
    """Seconds to wait, from ``retry-after-ms`` or ``retry-after`` (seconds or an HTTP date)."""
    raw_ms = headers.get("retry-after-ms")
    if raw_ms:
        try:
            return max(0.0, float(raw_ms) / 1000.0)
        except ValueError:
            pass
    raw = headers.get("retry-after")
    if not raw:
        return None
    try:
        return max(0.0, float(raw))
    except ValueError:
        pass
    try:
        when = email.utils.parsedate_to_datetime(raw)
    except (TypeError, ValueError):
        return None
    return max(0.0, when.timestamp() - time.time())


class transport_errors:
    """Map the client's and the socket's errors of one attempt to the most specific ``AttemptFailure``.

    A class rather than ``@contextmanager``: it wraps every upstream call, and the generator version costs
    a few microseconds more each time.
    """

    __slots__ = ("backend",)

    def __init__(self, backend: str) -> None:
        self.backend = backend

    def __enter__(self) -> None:
        return None

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        if exc is None or not isinstance(exc, ProtocolError | OSError):
            return
        raise _failure(self.backend, exc) from exc


def _failure(backend: str, exc: BaseException) -> AttemptFailure:
    if isinstance(exc, ProtocolError):
        return AttemptFailure("protocol", f"backend {backend!r} broke the exchange: {exc}")
    if isinstance(exc, ConnectError):
        # The client learns which backend and why; the host and port (often an in-cluster name) stay in the log.
        cause = exc.__cause__
        why = "timed out" if cause is None else _connect_reason(cause)
        detail = f"backend {backend!r}: {exc}"
        return AttemptFailure("connect", f"backend {backend!r}: cannot connect ({why})", detail=detail)
    return AttemptFailure("connect", f"connection to backend {backend!r} failed: {exc}")


def _connect_reason(cause: BaseException) -> str:
    if isinstance(cause, ssl.SSLError):
        return "TLS handshake failed"
    if isinstance(cause, OSError) and cause.strerror:
        return cause.strerror.lower()
    return type(cause).__name__


class BackendClient:
    """Sends requests to one upstream. Request heads are built once per path, not per request."""

    def __init__(
        self,
        *,
        name: str,
        base_url: str,
        auth_headers: Mapping[str, str],
        connect_timeout_s: float,
        secrets: Iterable[str] = (),
    ) -> None:
        """``secrets``: the credentials in ``auth_headers``, redacted from whatever the upstream sends."""
        url = urlsplit(base_url.rstrip("/"))
        if url.scheme not in ("http", "https") or not url.hostname:
            raise ValueError(f"backend {name!r}: {base_url!r} is not an http(s) URL")
        headers = {"user-agent": USER_AGENT, "content-type": "application/json", **auth_headers}
        if any("\r" in v or "\n" in v for v in headers.values()):
            raise ValueError(f"backend {name!r}: a header value (the API key?) contains a line break")
        self.name = name
        self.base_url = base_url.rstrip("/")
        self._tls = _TLS if url.scheme == "https" else None
        self._host = url.hostname
        self._port = url.port or (443 if self._tls else 80)
        default_port = (self._tls is None and self._port == 80) or (self._tls is not None and self._port == 443)
        host_header = url.netloc.rsplit("@", 1)[-1] if not default_port else self._host
        self._base_path = url.path
        self._fields = f"host: {host_header}\r\n" + "".join(f"{k}: {v}\r\n" for k, v in headers.items())
        self._connect_timeout_s = connect_timeout_s
        self._pool: ConnectionPool | None = None
        self._heads: dict[tuple[str, str], bytes] = {}
        redactor = Redactor(secrets)
        self.redactor = redactor if redactor else None

    def _head(self, method: str, path: str) -> bytes:
        key = (method, path)
        head = self._heads.get(key)
        if head is None:
            head = self._heads[key] = f"{method} {self._base_path}{path} HTTP/1.1\r\n{self._fields}".encode("latin-1")
        return head

    def _ensure_pool(self) -> ConnectionPool:
        # A pool binds to the running loop, so it is made on first use rather than at config load.
        if self._pool is None:
            self._pool = ConnectionPool(
                self._host, self._port, tls=self._tls, connect_timeout_s=self._connect_timeout_s
            )
        return self._pool

    async def post(self, path: str, body: bytes, extra_head: bytes = b"") -> UpstreamResponse:
        """Send the request; return once the upstream's status line and headers are in. ``extra_head``: more
        header lines, each ending in CRLF (the trace context)."""
        data = b"%s%scontent-length: %d\r\n\r\n%s" % (self._head("POST", path), extra_head, len(body), body)
        with transport_errors(self.name):
            return UpstreamResponse(await self._ensure_pool().request(data), self.name, self.redactor)

    async def get(self, path: str) -> UpstreamResponse:
        with transport_errors(self.name):
            response = await self._ensure_pool().request(self._head("GET", path) + b"\r\n")
        return UpstreamResponse(response, self.name, self.redactor)

    async def close(self) -> None:
        if self._pool is not None:
            self._pool.close()
            self._pool = None


class UpstreamResponse:
    """An upstream's answer as the rest of the gateway sees it: transport errors mapped, and the backend's
    credential redacted from the body and the content type (the only header relayed to clients)."""

    __slots__ = ("_redactor", "_response", "backend", "content_type", "headers", "status")

    def __init__(self, response: Response, backend: str, redactor: Redactor | None) -> None:
        self._response = response
        self._redactor = redactor
        self.backend = backend
        self.status = response.status
        self.headers = response.headers
        """Raw, lower-case header names: read for their meaning (retry-after), never relayed."""
        content_type = response.headers.get("content-type", "application/json")
        self.content_type = redactor.redact_text(content_type) if redactor is not None else content_type

    async def read(self, limit: int | None = None) -> bytes:
        """The whole body, or its first ``limit`` bytes (the connection is then dropped if more was left)."""
        with transport_errors(self.backend):
            body = await self._response.read(limit)
        return self._redacted(body, cut=limit is not None and len(body) >= limit)

    async def read_capped(self, limit: int) -> bytes | None:
        """The whole body, or None when it is longer than ``limit`` bytes."""
        with transport_errors(self.backend):
            body = await self._response.read(limit + 1)
        return None if len(body) > limit else self._redacted(body, cut=False)

    def _redacted(self, body: bytes, *, cut: bool) -> bytes:
        redactor = self._redactor
        if redactor is None:
            return body
        body = redactor.redact(body)
        if cut:  # a credential cut at the limit still shows its start: drop that too
            keep = redactor.partial_tail(body)
            body = body[:-keep] if keep else body
        return body

    async def chunks(self) -> AsyncIterator[bytes]:
        """The body as it arrives."""
        redactor = self._redactor
        with transport_errors(self.backend):
            if redactor is None:
                async for chunk in self._response.iter_chunks():
                    yield chunk
                return
            stream = redactor.stream()
            async for chunk in self._response.iter_chunks():
                data = stream.feed(chunk)
                if data:
                    yield data
            tail = stream.flush()
            if tail:
                yield tail

    def release(self) -> None:
        """Give the connection back for reuse when the body was fully read; otherwise close it."""
        self._response.release()

    def close(self) -> None:
        self._response.close()
