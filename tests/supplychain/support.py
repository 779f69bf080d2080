"""``scripts/lockfile.py`` (standard library only, so the image's build stage can run it) loaded for the tests."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path
from typing import Any

__all__ = ["LOCK_DIR", "REPO", "Pin", "lockfile"]

REPO = Path(__file__).resolve().parents[2]
LOCK_DIR = REPO / "lock"


def _load() -> Any:
    spec = importlib.util.spec_from_file_location("lockfile", REPO / "scripts" / "lockfile.py")
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules["lockfile"] = module  # dataclasses resolve the module's annotations through sys.modules
    spec.loader.exec_module(module)
    return module


lockfile = _load()
Pin = lockfile.Pin  # type: ignore[attr-defined]
