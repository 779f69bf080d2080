"""The control plane: admin API, gateway contract endpoints, and the pieces ``interlock up`` embeds.

The names below load lazily: the gateway imports ``interlock.api.contract`` (plain pydantic) and must not pay
for FastAPI and SQLAlchemy by doing so.
"""

from __future__ import annotations

import importlib
from typing import Any

__all__ = ["ApiSettings", "Bootstrap", "create_app", "dispose_app", "ensure_bootstrap", "migrate"]

_WHERE = {
    "ApiSettings": "interlock.api.settings",
    "Bootstrap": "interlock.api.crud.bootstrap",
    "create_app": "interlock.api.app",
    "dispose_app": "interlock.api.app",
    "ensure_bootstrap": "interlock.api.crud.bootstrap",
    "migrate": "interlock.db.migrate",
}


def __getattr__(name: str) -> Any:
    module = _WHERE.get(name)
    if module is None:
        raise AttributeError(f"module 'interlock.api' has no attribute {name!r}")
    return getattr(importlib.import_module(module), name)
