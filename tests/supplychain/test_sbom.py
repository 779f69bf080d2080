"""``scripts/sbom``: a valid CycloneDX SBOM of exactly lock/runtime.txt (what the image installs), reproducible."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tomllib
from pathlib import Path
from typing import Any

import pytest

from tests.supplychain.support import LOCK_DIR, REPO, lockfile


def _sbom(out: Path) -> dict[str, Any]:
    env = {**os.environ, "SBOM_PYTHON": sys.executable}
    done = subprocess.run(
        [str(REPO / "scripts" / "sbom"), "--out", str(out)], env=env, capture_output=True, text=True, timeout=120
    )
    assert done.returncode == 0, f"scripts/sbom failed:\n{done.stdout}\n{done.stderr}"
    bom: dict[str, Any] = json.loads(out.read_text())
    return bom


@pytest.fixture(scope="module")
def sbom_file(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("sbom") / "sbom.json"
    _sbom(path)
    return path


def test_the_sbom_lists_every_locked_package_with_its_hashes_and_the_graph(sbom_file: Path) -> None:
    bom = json.loads(sbom_file.read_text())
    assert (bom["bomFormat"], bom["specVersion"]) == ("CycloneDX", "1.6")
    version = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]["version"]
    root = bom["metadata"]["component"]
    assert (root["name"], root["version"], root["purl"]) == ("interlock", version, f"pkg:pypi/interlock@{version}")

    pins = lockfile.read_lock(LOCK_DIR / "runtime.txt")
    components = {lockfile.normalize(c["name"]): c for c in bom["components"]}
    assert set(components) == set(pins)
    for name, pin in pins.items():
        component = components[name]
        assert component["version"] == pin.version
        assert component["purl"] == f"pkg:pypi/{name}@{pin.version}"
        hashes = {f"sha256:{h['content']}" for ref in component["externalReferences"] for h in ref.get("hashes", [])}
        assert hashes == set(pin.hashes), name

    graph = {d["ref"]: set(d["dependsOn"]) for d in bom["dependencies"]}
    direct = {c["purl"] for n, c in components.items() if lockfile.PROJECT_VIA in pins[n].via}
    assert graph[root["purl"]] == direct
    assert components["kopf"]["purl"] in direct  # the image's runtime includes the operator extra
    uvicorn = components["uvicorn"]["purl"]
    assert components["httptools"]["purl"] in graph[uvicorn]  # from uvicorn[standard], through the lock's `# via`


def test_the_sbom_is_reproducible(sbom_file: Path, tmp_path: Path) -> None:
    again = tmp_path / "again.json"
    _sbom(again)
    assert again.read_bytes() == sbom_file.read_bytes()
