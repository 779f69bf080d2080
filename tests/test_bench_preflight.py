"""The benchmarks' entry points answer ``--help`` and bad arguments before installing anything (no .venv, no
LiteLLM venv): run in a copy of the repository's scripts without a virtualenv."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
ENTRY_POINTS = [
    "bench/run",
    "bench/telemetry",
    "bench/operatorbench/run",
    "bench/ingest/run",
    "bench/controlplane/run",
    "bench/estimates/llamacpp",
]


@pytest.fixture(scope="module")
def bare_copy(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("bare")
    shutil.copytree(REPO / "bench", root / "bench", ignore=shutil.ignore_patterns(".work", "__pycache__"))
    shutil.copytree(REPO / "scripts", root / "scripts")
    shutil.copy(REPO / "pyproject.toml", root / "pyproject.toml")
    return root


def _run(root: Path, entry: str, *args: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "PYTHON": sys.executable}
    return subprocess.run([str(root / entry), *args], env=env, capture_output=True, text=True, timeout=60)


@pytest.mark.parametrize("entry", ENTRY_POINTS)
def test_help_comes_before_any_install(bare_copy: Path, entry: str) -> None:
    done = _run(bare_copy, entry, "--help")
    assert done.returncode == 0, done.stderr
    assert done.stdout.startswith(f"usage: {entry} "), done.stdout
    assert not (bare_copy / ".venv").exists(), f"{entry} --help created .venv"
    assert not (bare_copy / "bench" / ".work").exists(), f"{entry} --help installed into bench/.work"


@pytest.mark.parametrize("entry", ENTRY_POINTS)
def test_a_bad_argument_is_refused_before_any_install(bare_copy: Path, entry: str) -> None:
    done = _run(bare_copy, entry, "--no-such-option")
    assert done.returncode == 2
    assert "unrecognized arguments: --no-such-option" in done.stderr
    assert not (bare_copy / ".venv").exists()
