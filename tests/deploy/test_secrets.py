"""``python -m interlock.deploy.secrets``, the chart's hook Job, as a real process against the in-memory Kubernetes
API server: creates what is missing, never changes what exists, prints no secret value."""

from __future__ import annotations

import asyncio
import base64
import json
import os
import sys
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.operator.emulator import Emulator

NAMESPACE = "interlock"
SPEC = [
    {
        "name": "il-interlock-auth",
        "labels": {"app.kubernetes.io/instance": "il"},
        "keys": {"admin-token": {"random": 32}, "gateway-signing-key": {"random": 48}},
    },
    {
        "name": "il-interlock-postgresql",
        "keys": {
            "password": {"random": 24},
            "database-url": {"template": "postgresql+asyncpg://interlock:{password}@db.interlock.svc:5432/interlock"},
        },
    },
]


@pytest.fixture
async def cluster(tmp_path: Path) -> AsyncIterator[tuple[Emulator, dict[str, str]]]:
    async with Emulator() as emu:
        env = {k: v for k, v in os.environ.items() if not k.startswith("KUBERNETES_")}
        env["KUBECONFIG"] = str(emu.write_kubeconfig(tmp_path / "kubeconfig"))
        async with httpx.AsyncClient(base_url=emu.url) as http:
            created = await http.post("/api/v1/namespaces", json={"metadata": {"name": NAMESPACE}})
            assert created.status_code == 201, created.text
        yield emu, env


async def _run(env: dict[str, str], *args: str) -> tuple[int, str, str]:
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "interlock.deploy.secrets", *args,
        env=env, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
    )  # fmt: skip
    async with asyncio.timeout(60):
        out, err = await proc.communicate()
    assert proc.returncode is not None
    return proc.returncode, out.decode(), err.decode()


def _data(emu: Emulator, name: str) -> dict[str, str]:
    obj: dict[str, Any] | None = emu.get("v1", "secrets", NAMESPACE, name)
    assert obj is not None, f"Secret {name} missing"
    return {k: base64.b64decode(v).decode() for k, v in obj["data"].items()}


async def test_it_creates_the_secrets_once_and_never_changes_them(cluster: tuple[Emulator, dict[str, str]]) -> None:
    emu, env = cluster
    code, out, err = await _run(env, "--namespace", NAMESPACE, "--spec", json.dumps(SPEC))
    assert code == 0, err
    auth, db = _data(emu, "il-interlock-auth"), _data(emu, "il-interlock-postgresql")
    assert len(auth["admin-token"]) == 43  # 32 random bytes, URL-safe base64
    assert len(auth["gateway-signing-key"]) == 64  # 48 bytes: the signing key must be >= 32
    assert db["database-url"] == f"postgresql+asyncpg://interlock:{db['password']}@db.interlock.svc:5432/interlock"
    assert "created Secret il-interlock-auth" in out
    for value in (*auth.values(), db["password"]):
        assert value not in out + err, "a secret value was printed"
    labels = emu.get("v1", "secrets", NAMESPACE, "il-interlock-auth")["metadata"]["labels"]  # type: ignore[index]
    assert labels == {"app.kubernetes.io/instance": "il", "app.kubernetes.io/managed-by": "interlock-secrets"}

    code, out, err = await _run(env, "--namespace", NAMESPACE, "--spec", json.dumps(SPEC))
    assert code == 0, err
    assert out.count("kept Secret") == 2
    assert _data(emu, "il-interlock-auth") == auth
    assert _data(emu, "il-interlock-postgresql") == db


async def test_it_adds_only_missing_keys_to_a_secret_that_exists(cluster: tuple[Emulator, dict[str, str]]) -> None:
    emu, env = cluster
    given = {"password": "chosen-by-the-operator-of-the-cluster"}
    async with httpx.AsyncClient(base_url=emu.url) as http:
        body = {
            "metadata": {"name": "il-interlock-postgresql"},
            "data": {k: base64.b64encode(v.encode()).decode() for k, v in given.items()},
        }
        assert (await http.post(f"/api/v1/namespaces/{NAMESPACE}/secrets", json=body)).status_code == 201
    code, out, err = await _run(env, "--namespace", NAMESPACE, "--spec", json.dumps(SPEC[1:]))
    assert code == 0, err
    assert "added database-url to Secret il-interlock-postgresql" in out
    db = _data(emu, "il-interlock-postgresql")
    assert db["password"] == given["password"]
    assert given["password"] in db["database-url"]


@pytest.mark.parametrize(
    ("spec", "message"),
    [
        ([{"name": "x", "keys": {"k": {"random": 4}}}], "x/k: give {'random': N >= 16}"),
        ([{"name": "x", "keys": {"url": {"template": "a{nope}"}}}], "x/url: the template names unknown keys ['nope']"),
        ("not json", "bad spec"),
    ],
)
async def test_it_refuses_a_bad_spec_clearly(cluster: tuple[Emulator, dict[str, str]], spec: Any, message: str) -> None:
    _, env = cluster
    text = spec if isinstance(spec, str) else json.dumps(spec)
    code, _, err = await _run(env, "--namespace", NAMESPACE, "--spec", text)
    assert code == 2
    assert message in err
    assert "Traceback" not in err
