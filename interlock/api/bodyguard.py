"""``BodyGuard``: pure ASGI middleware that decides about a request body before anyone reads it.

Every body the control plane accepts (``POST``, ``PUT``, ``PATCH``) is the admin's (tenants, keys, quotas,
prices) or a gateway's (usage events under ``/v1/gateway/``). So the bearer token is checked first: a request
without one, or with an unknown one, is a 401, a tenant key or a gateway credential outside ``/v1/gateway/`` a
403, and none of them has its body read. Then the body's size: a declared ``Content-Length`` over
``max_body_bytes`` is a 413 at once, and a body sent without one is counted as it arrives and cut off with a 413
at the limit. The routes' own dependencies still decide the fine-grained permissions.

The console (``/console/``) posts forms with its session cookie instead of a bearer token: ``POST /console/login``
passes without credentials and with a body of at most ``CONSOLE_LOGIN_MAX_BYTES``; every other console post needs
a session cookie whose MAC verifies (``interlock.api.console.cookie``, no database read) and a body of at most
``CONSOLE_FORM_MAX_BYTES``. The pages then check the session itself and its CSRF token.
"""

from __future__ import annotations

import hmac
from collections.abc import Awaitable, Callable, MutableMapping
from typing import Any

import orjson

from interlock.api.console.cookie import cookie_key, read_cookie_header, verify_cookie
from interlock.api.settings import ApiSettings
from interlock.contract.gatewaycred import CREDENTIAL_PREFIX, verify_gateway_credential
from interlock.contract.keys import KEY_PREFIX

__all__ = ["CONSOLE_FORM_MAX_BYTES", "CONSOLE_LOGIN_MAX_BYTES", "BodyGuard"]

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]

_WITH_BODY = frozenset({"POST", "PUT", "PATCH"})
_GATEWAY_PATHS = "/v1/gateway/"
_CONSOLE_PATHS = "/console/"
_CONSOLE_LOGIN = "/console/login"
CONSOLE_LOGIN_MAX_BYTES = 4096
CONSOLE_FORM_MAX_BYTES = 64 * 1024


def _same(a: str, b: str) -> bool:
    return hmac.compare_digest(a.encode("utf-8", "surrogateescape"), b.encode("utf-8", "surrogateescape"))


async def _answer(send: Send, status: int, detail: str, headers: list[tuple[bytes, bytes]] | None = None) -> None:
    body = orjson.dumps({"detail": detail})
    start = [(b"content-type", b"application/json"), (b"content-length", b"%d" % len(body)), *(headers or [])]
    await send({"type": "http.response.start", "status": status, "headers": start})
    await send({"type": "http.response.body", "body": body})


class BodyGuard:
    def __init__(self, app: ASGIApp, settings: ApiSettings) -> None:
        self.app = app
        self.settings = settings
        self.limit = settings.max_body_bytes
        self.console_key = cookie_key(settings.admin_secret())

    def _refusal(self, scope: Scope, authorization: bytes | None) -> tuple[int, str] | None:
        """(status, why) when the caller may not send this body; None when it may."""
        settings = self.settings
        scheme, _, token = (authorization or b"").decode("latin-1").partition(" ")
        token = token.strip()
        if scheme.lower() != "bearer" or not token:
            return 401, "Authentication required: send 'Authorization: Bearer <token>'."
        if _same(token, settings.admin_secret()):
            return None
        gateway = False
        if token.startswith(CREDENTIAL_PREFIX) and settings.gateway_signing_key is not None:
            signing_key = settings.gateway_signing_key.get_secret_value().encode()
            gateway = verify_gateway_credential(signing_key, token) is not None
        if gateway:
            if scope["path"].startswith(_GATEWAY_PATHS):
                return None
            return 403, "This endpoint needs the admin token."
        if token.startswith(KEY_PREFIX):
            return 403, "This endpoint needs the admin token."
        return 401, "Invalid, revoked or expired token."

    def _console_refusal(self, scope: Scope, cookie: bytes | None) -> tuple[int, str] | None:
        if scope["path"] == _CONSOLE_LOGIN:
            return None
        value = read_cookie_header(cookie.decode("latin-1")) if cookie else None
        if value is None or verify_cookie(self.console_key, value) is None:
            return 401, "Log in to the console first (no valid session cookie)."
        return None

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        authorization = length = cookie = None
        for name, value in scope["headers"]:
            if name == b"authorization":
                authorization = value
            elif name == b"content-length":
                length = value
            elif name == b"cookie":
                cookie = value
        limit = self.limit
        if scope["method"] in _WITH_BODY:
            console = scope["path"].startswith(_CONSOLE_PATHS)
            if console:
                refusal = self._console_refusal(scope, cookie)
                limit = CONSOLE_LOGIN_MAX_BYTES if scope["path"] == _CONSOLE_LOGIN else CONSOLE_FORM_MAX_BYTES
            else:
                refusal = self._refusal(scope, authorization)
            if refusal is not None:
                status, detail = refusal
                headers = [(b"www-authenticate", b"Bearer")] if status == 401 and not console else None
                await _answer(send, status, detail, headers)
                return
        if length is not None and length.isdigit() and int(length) > limit:
            await _answer(send, 413, f"The request body is {int(length)} bytes; the limit is {limit} bytes.")
            return
        await self._counted(scope, receive, send, limit)

    async def _counted(self, scope: Scope, receive: Receive, send: Send, limit: int) -> None:
        """Pass the request on, counting its body; past the limit, answer 413 and end the app's part."""
        received = 0
        state = {"started": False, "cut": False}

        async def counting_receive() -> Message:
            nonlocal received
            if state["cut"]:
                return {"type": "http.disconnect"}
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > limit:
                    state["cut"] = True
                    if not state["started"]:
                        state["started"] = True
                        await _answer(send, 413, f"The request body exceeds the limit of {limit} bytes.")
                    return {"type": "http.disconnect"}
            return message

        async def guarded_send(message: Message) -> None:
            if state["cut"]:
                return  # the 413 went out instead
            if message["type"] == "http.response.start":
                state["started"] = True
            await send(message)

        await self.app(scope, counting_receive, guarded_send)
