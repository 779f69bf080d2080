"""Logging in (the admin token or a tenant's key) and out. Failed logins are throttled per client address and
per account (``interlock.api.console.throttle``); each refusal is logged."""

from __future__ import annotations

import datetime as dt
import hmac
import logging
from typing import Literal

from fastapi import APIRouter, Request
from fastapi.responses import RedirectResponse, Response

from interlock.api.console.auth import ConsoleForbidden, ConsoleUserDep, checked_form, read_form, same_origin
from interlock.api.console.cookie import COOKIE_NAME, new_cookie
from interlock.api.console.render import render
from interlock.api.console.sessions import create_session, delete_session
from interlock.api.console.throttle import LoginThrottle, account_of
from interlock.api.crud.keys import find_active_key
from interlock.api.deps import SessionDep, SettingsDep

__all__ = ["router"]

router = APIRouter()
log = logging.getLogger("interlock.api.console")

MAX_TOKEN_CHARS = 512


@router.get("/login")
async def login_page(request: Request) -> Response:
    return render(request, "login.html", None)


def _client_address(request: Request) -> str:
    return request.client.host if request.client else "unknown"


@router.post("/login")
async def login(request: Request, session: SessionDep, settings: SettingsDep) -> Response:
    if not same_origin(request):
        raise ConsoleForbidden("Cross-site login refused.")
    form = await read_form(request)
    token = form.get("token", "").strip()[:MAX_TOKEN_CHARS]
    throttle: LoginThrottle = request.app.state.console_throttle
    address, account = _client_address(request), account_of(token)
    refused = throttle.refused(address=address, account=account)
    if refused is not None:
        whose, wait = refused
        log.warning(
            "console login refused: too many failed logins (%s %s)", whose, address if whose == "address" else account
        )
        about = "from your address" if whose == "address" else "for this account"
        message = f"Too many failed logins {about}. Try again in {wait} seconds."
        refusal = render(request, "login.html", None, status_code=429, error=message)
        refusal.headers["retry-after"] = str(wait)
        return refusal
    now = dt.datetime.now(dt.UTC)
    admin = bool(token) and hmac.compare_digest(
        token.encode("utf-8", "surrogateescape"), settings.admin_secret().encode("utf-8", "surrogateescape")
    )
    key = None if admin or not token else await find_active_key(session=session, key=token, now=now)
    if not admin and key is None:
        throttle.failed(address=address, account=account)
        log.info("console login failed from %s (%s)", address, account)
        return render(request, "login.html", None, status_code=401, error="That token is not valid (or revoked).")
    throttle.succeeded(account=account)
    tenant_id, key_id = (key.tenant_id, key.id) if key is not None else (None, None)
    await session.rollback()  # end the read (the key's attributes are read above: a rollback expires them)
    value, cookie_token = new_cookie(request.app.state.console_cookie_key)
    role: Literal["admin", "tenant"] = "tenant" if key is not None else "admin"
    ttl = settings.console_session_ttl_s
    await create_session(
        session=session, token=cookie_token, role=role, ttl_s=ttl, now=now, tenant_id=tenant_id, key_id=key_id
    )
    response = RedirectResponse("/console/", status_code=303)
    response.set_cookie(
        COOKIE_NAME,
        value,
        max_age=ttl,
        path="/console",
        secure=settings.console_cookie_is_secure(),
        httponly=True,
        samesite="strict",
    )
    return response


@router.post("/logout")
async def logout(request: Request, session: SessionDep, user: ConsoleUserDep) -> Response:
    await checked_form(request, user)
    await delete_session(session=session, token_hash=user.token_sha256)
    response = RedirectResponse("/console/login", status_code=303)
    response.delete_cookie(COOKIE_NAME, path="/console", httponly=True, samesite="strict")
    return response
