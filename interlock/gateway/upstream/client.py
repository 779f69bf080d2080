"""HTTP to upstream providers: one client per backend over the lean keep-alive client in ``http1.py``, and
the mapping of transport errors to ``AttemptFailure``."""

from __future__ import annotations

import email.utils
import ssl
import time
from collections.abc import AsyncIterator, Mapping
from types import TracebackType
from urllib.parse import urlsplit

from interlock.gateway.controlplane.client import USER_AGENT
from interlock.gateway.errors import AttemptFailure
from interlock.gateway.upstream.http1 import ConnectError, ConnectionPool, ProtocolError, Response

__all__ = ["BackendClient", "iter_body", "parse_retry_after", "read_body", "transport_errors"]

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
    ) -> None:
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

    async def post(self, path: str, body: bytes, extra_head: bytes = b"") -> Response:
        """Send the request; return once the upstream's status line and headers are in. ``extra_head``: more
        header lines, each ending in CRLF (the trace context)."""
        data = b"%s%scontent-length: %d\r\n\r\n%s" % (self._head("POST", path), extra_head, len(body), body)
        with transport_errors(self.name):
            return await self._ensure_pool().request(data)

    async def get(self, path: str) -> Response:
        with transport_errors(self.name):
            return await self._ensure_pool().request(self._head("GET", path) + b"\r\n")

    async def close(self) -> None:
        if self._pool is not None:
            self._pool.close()
            self._pool = None


async def iter_body(response: Response, backend: str) -> AsyncIterator[bytes]:
    """The response body as it arrives, with transport errors mapped."""
    with transport_errors(backend):
        async for chunk in response.iter_chunks():
            yield chunk


async def read_body(response: Response, backend: str, limit: int | None = None) -> bytes:
    with transport_errors(backend):
        return await response.read(limit)
