"""The web console, served by the control plane under ``/console`` (``install_console``).

Server-rendered Jinja2 pages; htmx for in-page updates and uPlot for charts, vendored as built files under
``static/vendor`` (``VERSIONS.md``); no build step. Sessions are server-side (``sessions``), behind an HttpOnly,
SameSite=Strict cookie with a MAC (``cookie``); every change carries the session's CSRF token and comes from the
same origin (``auth``); every answer carries a strict Content-Security-Policy (``headers``); failed logins are
throttled (``throttle``). A tenant key's login is read-only and every query it makes is confined to its tenant on
the server (``ConsoleUser.scope``). See docs/console.md.
"""

from __future__ import annotations

from pathlib import Path

from fastapi import APIRouter, FastAPI, Request
from fastapi.responses import RedirectResponse, Response
from starlette.staticfiles import StaticFiles

from interlock.api.console.auth import ConsoleForbidden, LoginRequired
from interlock.api.console.cookie import cookie_key
from interlock.api.console.headers import CONSOLE_PREFIX, ConsoleHeaders
from interlock.api.console.pages import ROUTERS
from interlock.api.console.render import make_environment, render
from interlock.api.console.throttle import LoginThrottle
from interlock.api.settings import ApiSettings

__all__ = ["CONSOLE_PREFIX", "STATIC_DIR", "install_console"]

STATIC_DIR = Path(__file__).parent / "static"


async def _login_required(request: Request, _exc: Exception) -> Response:
    if request.headers.get("hx-request"):
        return Response(status_code=204, headers={"hx-redirect": f"{CONSOLE_PREFIX}/login"})
    return RedirectResponse(f"{CONSOLE_PREFIX}/login", status_code=303)


async def _forbidden(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, ConsoleForbidden)
    heading = "Not allowed" if exc.status_code == 403 else "Cannot do that"
    return render(request, "error.html", None, status_code=exc.status_code, heading=heading, message=exc.message)


def install_console(app: FastAPI, settings: ApiSettings) -> None:
    """Serve the console on ``app`` (pages, static files, security headers, login throttle)."""
    app.state.console_templates = make_environment()
    app.state.console_cookie_key = cookie_key(settings.admin_secret())
    app.state.console_throttle = LoginThrottle(
        window_s=settings.console_login_window_s,
        per_account=settings.console_login_max_failures,
        per_address=settings.console_login_max_failures_per_address,
    )
    router = APIRouter(prefix=CONSOLE_PREFIX, include_in_schema=False)
    for page in ROUTERS:
        router.include_router(page)
    app.include_router(router)

    @app.get(CONSOLE_PREFIX, include_in_schema=False)
    async def console_root() -> Response:
        return RedirectResponse(f"{CONSOLE_PREFIX}/", status_code=307)

    app.mount(f"{CONSOLE_PREFIX}/static", StaticFiles(directory=STATIC_DIR), name="console-static")
    app.add_exception_handler(LoginRequired, _login_required)
    app.add_exception_handler(ConsoleForbidden, _forbidden)
    app.add_middleware(ConsoleHeaders)
