"""Rendering the console's pages: one Jinja2 environment (autoescaped), built once per app."""

from __future__ import annotations

import datetime as dt
from decimal import Decimal
from pathlib import Path
from typing import Any

from jinja2 import Environment, FileSystemLoader, select_autoescape
from starlette.requests import Request
from starlette.responses import HTMLResponse

from interlock.api.console.sessions import ConsoleUser

__all__ = ["TEMPLATES_DIR", "make_environment", "render"]

NONE = "\u2013"  # an en dash: no value

TEMPLATES_DIR = Path(__file__).parent / "templates"


def _money(value: Decimal | float | None) -> str:
    if value is None:
        return NONE
    amount = Decimal(value)
    if amount == 0:
        return "$0"
    if abs(amount) < Decimal("0.01"):
        return f"${amount:,.6f}"
    return f"${amount:,.4f}" if abs(amount) < 1 else f"${amount:,.2f}"


def _count(value: int | float | None) -> str:
    return NONE if value is None else f"{value:,.0f}"


def _ms(value: float | None) -> str:
    return NONE if value is None else f"{value:,.1f} ms"


def _when(value: dt.datetime | float | None) -> str:
    if value is None:
        return NONE
    if isinstance(value, int | float):
        value = dt.datetime.fromtimestamp(value, dt.UTC)
    return value.astimezone(dt.UTC).strftime("%Y-%m-%d %H:%M:%S UTC")


def make_environment() -> Environment:
    env = Environment(
        loader=FileSystemLoader(TEMPLATES_DIR),
        autoescape=select_autoescape(["html"], default=True),
        trim_blocks=True,
        lstrip_blocks=True,
    )
    env.filters.update(money=_money, count=_count, ms=_ms, when=_when)
    return env


def render(
    request: Request, template: str, user: ConsoleUser | None, status_code: int = 200, **context: Any
) -> HTMLResponse:
    env: Environment = request.app.state.console_templates
    body = env.get_template(template).render(
        request=request, user=user, csrf=user.csrf_token if user else "", path=request.url.path, **context
    )
    return HTMLResponse(body, status_code=status_code)
