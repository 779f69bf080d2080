"""The console's static files: the vendored libraries are the files VERSIONS.md names, byte for byte, with their
licenses; they are served with the right types and the console's headers."""

from __future__ import annotations

import hashlib
import re
from pathlib import Path

import pytest

from interlock.api.console import STATIC_DIR

VENDOR = STATIC_DIR / "vendor"


def _pinned() -> dict[str, str]:
    text = (VENDOR / "VERSIONS.md").read_text()
    return {path: digest for digest, path in re.findall(r"^([0-9a-f]{64})  (\S+)$", text, flags=re.M)}


def test_every_vendored_file_is_pinned_by_its_sha256_and_licensed() -> None:
    pinned = _pinned()
    shipped = {str(p.relative_to(VENDOR)) for p in VENDOR.rglob("*") if p.is_file() and p.suffix in (".js", ".css")}
    assert shipped == set(pinned)
    for path, digest in pinned.items():
        assert hashlib.sha256((VENDOR / path).read_bytes()).hexdigest() == digest, path
        assert (VENDOR / Path(path).parent / "LICENSE").stat().st_size > 0


@pytest.mark.parametrize(
    ("path", "kind"),
    [
        ("/console/static/console.js", "javascript"),
        ("/console/static/console.css", "text/css"),
        ("/console/static/vendor/htmx/htmx.min.js", "javascript"),
        ("/console/static/vendor/uplot/uPlot.iife.min.js", "javascript"),
        ("/console/static/vendor/uplot/uPlot.min.css", "text/css"),
    ],
)
async def test_static_files_are_served_with_their_type_and_the_console_headers(client_for, path, kind) -> None:
    response = await client_for(None).get(path)
    assert response.status_code == 200
    assert kind in response.headers["content-type"]
    assert response.headers["x-content-type-options"] == "nosniff"
    assert "script-src 'self'" in response.headers["content-security-policy"]


async def test_no_static_path_leaves_the_static_folder(client_for) -> None:
    for path in ("/console/static/../__init__.py", "/console/static/%2e%2e/__init__.py", "/console/static/vendor/"):
        assert (await client_for(None).get(path)).status_code == 404, path
