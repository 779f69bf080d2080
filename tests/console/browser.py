"""Headless Chromium for the console's browser tests: Debian's ``chromium`` driven by Playwright for Python.

Playwright's own browser download cannot work here (no network but the package registries), so the tests use the
system binary. When it is missing and this runs as root with apt, it is installed (about 30 s); otherwise the
tests FAIL with what to do (they are never skipped).
"""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

import pytest

__all__ = ["chromium_executable"]

CANDIDATES = ("/usr/bin/chromium", "/usr/bin/chromium-browser")


def _found() -> str | None:
    for path in CANDIDATES:
        if Path(path).exists():
            return path
    return shutil.which("chromium")


def chromium_executable() -> str:
    found = _found()
    if found is None and os.geteuid() == 0 and shutil.which("apt-get"):
        result = subprocess.run(
            ["apt-get", "install", "-y", "--no-install-recommends", "chromium"],
            capture_output=True, text=True, timeout=600, check=False,
        )  # fmt: skip
        if result.returncode != 0:
            subprocess.run(["apt-get", "update"], capture_output=True, timeout=300, check=False)
            subprocess.run(["apt-get", "install", "-y", "chromium"], capture_output=True, timeout=600, check=False)
        found = _found()
    if found is None:
        pytest.fail(
            "tests/console need Debian's Chromium and none could be installed: run `apt-get install -y chromium` "
            "(as root), then run these tests again. Run the rest of the suite with `--ignore=tests/console`.",
            pytrace=False,
        )
    return found
