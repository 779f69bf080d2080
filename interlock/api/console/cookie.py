"""The console's session cookie: an opaque random token with an HMAC, so a forged or altered cookie is refused
without a database read (the body guard checks it before reading a console form), and a stolen database gives no
session (only the token's SHA-256 is stored: ``interlock.api.console.sessions``).

The HMAC key is derived from the admin token: changing the admin token ends every console session.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import secrets

__all__ = ["COOKIE_NAME", "cookie_key", "new_cookie", "read_cookie_header", "token_sha256", "verify_cookie"]

COOKIE_NAME = "interlock_console"
_MAX_COOKIE_CHARS = 256


def cookie_key(admin_secret: str) -> bytes:
    return hmac.new(admin_secret.encode("utf-8", "surrogateescape"), b"interlock console session v1", "sha256").digest()


def _mac(key: bytes, token: str) -> str:
    digest = hmac.new(key, token.encode("ascii"), hashlib.sha256).digest()[:18]
    return base64.urlsafe_b64encode(digest).decode("ascii")


def new_cookie(key: bytes) -> tuple[str, str]:
    """``(cookie value, token)``: the value goes to the browser, the token's hash to the database."""
    token = secrets.token_urlsafe(32)
    return f"{token}.{_mac(key, token)}", token


def verify_cookie(key: bytes, value: str) -> str | None:
    """The token inside a cookie value, when its MAC is right; None otherwise."""
    if not value or len(value) > _MAX_COOKIE_CHARS or not value.isascii():
        return None
    token, _, mac = value.partition(".")
    if not token or not mac:
        return None
    return token if hmac.compare_digest(mac, _mac(key, token)) else None


def token_sha256(token: str) -> str:
    return hashlib.sha256(token.encode("ascii")).hexdigest()


def read_cookie_header(header: str, name: str = COOKIE_NAME) -> str | None:
    """The value of one cookie from a ``Cookie`` header (the first with that name)."""
    for part in header.split(";"):
        key, sep, value = part.strip().partition("=")
        if sep and key == name:
            return value.strip().strip('"')
    return None
