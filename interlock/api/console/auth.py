"""Who is using the console, and the checks every state change passes.

``ConsoleUserDep``: the session behind the cookie (else a redirect to the login page); ``ConsoleAdminDep``: the
same, for the admin only (a tenant login gets 403). ``checked_form``: a form posted by the page itself (its
``Origin``/``Sec-Fetch-Site`` say same origin) carrying the session's CSRF token; anything else is a 403.
"""

from __future__ import annotations

import datetime as dt
import hmac
import re
from typing import Annotated
from urllib.parse import parse_qsl, urlsplit

from fastapi import Depends, Request

from interlock.api.console.cookie import COOKIE_NAME, verify_cookie
from interlock.api.console.sessions import ConsoleUser, load_session
from interlock.api.deps import SessionDep

__all__ = [
    "ConsoleAdminDep",
    "ConsoleForbidden",
    "ConsoleUserDep",
    "LoginRequired",
    "checked_form",
    "read_form",
    "same_origin",
]

MAX_FORM_FIELDS = 64


class LoginRequired(Exception):
    """No valid session: the browser is sent to the login page."""


class ConsoleForbidden(Exception):
    def __init__(self, message: str, status_code: int = 403) -> None:
        super().__init__(message)
        self.message = message
        self.status_code = status_code


async def current_user(request: Request, session: SessionDep) -> ConsoleUser:
    value = request.cookies.get(COOKIE_NAME)
    token = verify_cookie(request.app.state.console_cookie_key, value) if value else None
    if token is None:
        raise LoginRequired
    user = await load_session(session=session, token=token, now=dt.datetime.now(dt.UTC))
    await session.rollback()  # end the read; the page starts its own
    if user is None:
        raise LoginRequired
    return user


ConsoleUserDep = Annotated[ConsoleUser, Depends(current_user)]


def require_admin(user: ConsoleUserDep) -> ConsoleUser:
    if not user.is_admin:
        raise ConsoleForbidden("This page is for the admin; a tenant key sees its own usage, latency and traces.")
    return user


ConsoleAdminDep = Annotated[ConsoleUser, Depends(require_admin)]


def same_origin(request: Request) -> bool:
    """The request comes from a page of this site (browsers send these headers on every POST)."""
    site = request.headers.get("sec-fetch-site")
    if site is not None and site not in ("same-origin", "none"):
        return False
    origin = request.headers.get("origin")
    if origin is None or origin == "null":
        return origin is None
    return urlsplit(origin).netloc == request.headers.get("host", "")


_CONTROL = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f]")
"""What no console field holds (tabs and line ends aside): a NUL, for one, makes Postgres refuse the statement."""


async def read_form(request: Request) -> dict[str, str]:
    """An urlencoded form (its size is already capped by the body guard); one value per name, the first."""
    content_type = request.headers.get("content-type", "").split(";")[0].strip().lower()
    if content_type != "application/x-www-form-urlencoded":
        raise ConsoleForbidden("Console forms are sent as application/x-www-form-urlencoded.", status_code=415)
    body = await request.body()
    try:
        pairs = parse_qsl(body.decode("utf-8"), keep_blank_values=True, max_num_fields=MAX_FORM_FIELDS)
    except (UnicodeDecodeError, ValueError) as exc:
        raise ConsoleForbidden(f"The form could not be read: {exc}", status_code=400) from exc
    form: dict[str, str] = {}
    for name, value in pairs:
        if _CONTROL.search(value):
            raise ConsoleForbidden(f"The form's {name[:40]!r} holds a control character.", status_code=400)
        form.setdefault(name, value)
    return form


async def checked_form(request: Request, user: ConsoleUser) -> dict[str, str]:
    if not same_origin(request):
        raise ConsoleForbidden("Cross-site form refused.")
    form = await read_form(request)
    sent = form.get("csrf", "")
    if not sent or not hmac.compare_digest(sent.encode(), user.csrf_token.encode()):
        raise ConsoleForbidden("The form's CSRF token is missing or wrong; reload the page and try again.")
    return form
