"""Pure ASGI middleware, one class per concern. Non-HTTP scopes pass straight through."""

from __future__ import annotations

import logging
import random
import re

from interlock.gateway.errors import openai_error_body
from interlock.gateway.http.asgi import ASGIApp, Message, Receive, Scope, Send, header

__all__ = ["REQUEST_ID_KEY", "ErrorBoundaryMiddleware", "RequestIdMiddleware"]

log = logging.getLogger("interlock.gateway")

REQUEST_ID_KEY = "interlock.request_id"
_SAFE_ID = re.compile(rb"^[A-Za-z0-9._:-]{1,128}$")


class RequestIdMiddleware:
    """Give every request an id (the client's ``x-request-id`` when sane) and echo it on every response."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        given = header(scope, b"x-request-id")
        raw = given if given is not None and _SAFE_ID.match(given) else b"req_%024x" % random.getrandbits(96)
        scope[REQUEST_ID_KEY] = raw.decode()

        async def send_with_id(message: Message) -> None:
            if message["type"] == "http.response.start":
                message["headers"] = [*message.get("headers", ()), (b"x-request-id", raw)]
            await send(message)

        await self.app(scope, receive, send_with_id)


class ErrorBoundaryMiddleware:
    """The last line: an unexpected exception becomes a 500 envelope and a log line, never a traceback to the
    client. Expected errors are handled inside the app; reaching this is a bug worth its log line.

    It does not wrap ``send`` to learn whether a response has started (that would cost a call on every
    streamed chunk): it tries to start the 500, and the server refuses if a response is already under way.
    """

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        try:
            await self.app(scope, receive, send)
        except Exception:
            log.exception(
                "unhandled error on %s %s (request %s)", scope["method"], scope["path"], scope.get(REQUEST_ID_KEY)
            )
            body = openai_error_body(
                "The gateway hit an internal error; it has been logged.", "server_error", "internal_error"
            )
            start = {
                "type": "http.response.start",
                "status": 500,
                "headers": [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode())],
            }
            try:
                await send(start)
            except RuntimeError:  # a response had already started: the server ends the connection
                return
            await send({"type": "http.response.body", "body": body})
