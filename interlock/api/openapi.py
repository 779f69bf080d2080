"""The committed OpenAPI document (``api/openapi.json``): rendered from the app, never edited by hand."""

from __future__ import annotations

import json
from pathlib import Path

from interlock.api.app import create_app
from interlock.api.settings import ApiSettings

__all__ = ["render_openapi", "write_openapi"]


def render_openapi() -> str:
    app = create_app(ApiSettings(environment="development", database_url="sqlite+aiosqlite:///:memory:"))
    return json.dumps(app.openapi(), indent=2, sort_keys=True) + "\n"


def write_openapi(path: Path) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(render_openapi())
    return path
