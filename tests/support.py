"""Helpers shared by the test suite: polling with a deadline, a gateway's ``/readyz``, a stand-in OpenTelemetry
collector."""

from __future__ import annotations

import asyncio
import contextlib
import inspect
import threading
import time
from collections.abc import Awaitable, Callable, Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, TypeVar, cast

import httpx
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest
from opentelemetry.proto.trace.v1.trace_pb2 import Span

T = TypeVar("T")


async def eventually(
    check: Callable[[], T] | Callable[[], Awaitable[T]], *, within: float = 5.0, interval: float = 0.01, what: str = ""
) -> T:
    """Poll ``check`` until it returns something truthy (awaiting it when it is a coroutine); fail at the deadline.

    Tests wait for conditions this way, never with a bare sleep.
    """
    deadline = time.monotonic() + within
    while True:
        result = check()
        last: Any = await result if inspect.isawaitable(result) else result
        if last:
            return cast(T, last)
        if time.monotonic() > deadline:
            raise AssertionError(f"condition not met within {within}s: {what or check!r} (last: {last!r})")
        await asyncio.sleep(interval)


async def gateway_readyz(gateway_url: str) -> tuple[int, dict[str, Any]]:
    """The status and body of the gateway's ``/readyz``, given the URL of its ops port (``http://host:port``)."""
    async with httpx.AsyncClient(base_url=gateway_url, timeout=10) as http:
        response = await http.get("/readyz")
    body: dict[str, Any] = response.json()
    return response.status_code, body


@dataclass
class Collector:
    """What a stand-in OTLP/HTTP collector received: (path, content type, body) per POST."""

    url: str
    received: list[tuple[str, str, bytes]] = field(default_factory=list)

    def spans(self) -> list[tuple[ExportTraceServiceRequest, Span]]:
        """Every span posted to ``/v1/traces`` as protobuf, with the request that carried it."""
        found = []
        for path, content_type, body in list(self.received):
            if path == "/v1/traces" and content_type == "application/x-protobuf":
                export = ExportTraceServiceRequest.FromString(body)
                found += [(export, s) for r in export.resource_spans for ss in r.scope_spans for s in ss.spans]
        return found


@contextlib.contextmanager
def otlp_collector() -> Iterator[Collector]:
    """A real HTTP server on loopback that accepts OTLP/HTTP exports and keeps them."""
    collector = Collector("")

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            body = self.rfile.read(int(self.headers["Content-Length"]))
            collector.received.append((self.path, self.headers["Content-Type"], body))
            self.send_response(200)
            self.send_header("Content-Type", "application/x-protobuf")
            self.send_header("Content-Length", "0")
            self.end_headers()

        def log_message(self, format: str, *args: Any) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    collector.url = f"http://127.0.0.1:{server.server_address[1]}"
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield collector
    finally:
        server.shutdown()
        server.server_close()
