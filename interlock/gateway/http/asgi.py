"""The few ASGI primitives the gateway needs: typed aliases, body reading with a limit, plain responses."""

from __future__ import annotations

from collections.abc import Awaitable, Callable, MutableMapping
from typing import Any

from interlock.gateway.errors import PayloadTooLargeError

__all__ = [
    "ASGIApp",
    "ClientDisconnected",
    "Receive",
    "Scope",
    "Send",
    "header",
    "read_body",
    "send_bytes",
]

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]

JSON = b"application/json"


class ClientDisconnected(Exception):
    """The client closed the connection (or the server cut it at a limit) before the response was complete."""


def header(scope: Scope, name: bytes) -> bytes | None:
    """First value of a request header (``name`` in lower case)."""
    for key, value in scope["headers"]:
        if key == name:
            return value  # type: ignore[no-any-return]
    return None


async def read_body(receive: Receive, limit: int, declared: bytes | None = None) -> bytes:
    """The whole request body; 413 as soon as it is known to exceed ``limit`` (``declared``: Content-Length);
    ``ClientDisconnected`` when the client leaves (or the body timeout cuts it off) before the end."""
    if declared is not None and declared.isdigit() and int(declared) > limit:
        raise PayloadTooLargeError(f"Request body is {int(declared)} bytes; the limit is {limit} bytes.")
    message = await receive()
    if message["type"] == "http.disconnect":
        raise ClientDisconnected
    body: bytes = message.get("body", b"")
    if not message.get("more_body", False):
        if len(body) > limit:
            raise PayloadTooLargeError(f"Request body exceeds the limit of {limit} bytes.")
        return body
    parts = [body]
    size = len(body)
    while message.get("more_body", False):
        message = await receive()
        if message["type"] == "http.disconnect":
            raise ClientDisconnected
        chunk = message.get("body", b"")
        size += len(chunk)
        if size > limit:
            raise PayloadTooLargeError(f"Request body exceeds the limit of {limit} bytes.")
        parts.append(chunk)
    return b"".join(parts)


async def send_bytes(
    send: Send,
    status: int,
    body: bytes,
    *,
    content_type: bytes = JSON,
    headers: list[tuple[bytes, bytes]] | None = None,
    before_body: Callable[[], None] | None = None,
) -> None:
    """A whole response. ``before_body`` runs between the head and the body: the server writes both with the body,
    so whatever it does (the usage event's write) happens right before the answer's bytes leave."""
    raw = [(b"content-type", content_type), (b"content-length", str(len(body)).encode())]
    if headers:
        raw.extend(headers)
    await send({"type": "http.response.start", "status": status, "headers": raw})
    if before_body is not None:
        before_body()
    await send({"type": "http.response.body", "body": body})
