"""The container image as a user gets it: built by ``scripts/image`` (buildah here: no Docker daemon, no
registry), inspected as a registry would serve it, and run with podman (runc) on a read-only root filesystem, with
ports published on 127.0.0.1, driven from the host with the official ``openai`` SDK.

Its own module: ``./scripts/test --ignore tests/image`` runs everything else. It installs its tools with apt when
run as root and fails, saying what to install, when it cannot. The build is cached in ``.cache/image/`` (the
mmdebstrap base and buildah's layers): the first run on a clone is cold, the next ones warm. Timings are printed
and written to ``.cache/image/figures.json`` (see the README's figures).
"""

from __future__ import annotations

import asyncio
import json
import subprocess
import sys
import time
import tomllib
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from typing import Any

import httpx
import openai
import pytest

from tests.image.podman import REPO, Tools, container_tools
from tests.supplychain.support import LOCK_DIR, lockfile
from tests.support import eventually

pytestmark = pytest.mark.timeout(900)  # a cold build: apt, the mmdebstrap base, pip from PyPI

VERSION = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]["version"]
EXPECTED_REF = f"ghcr.io/interlock-dev/interlock:{VERSION}"
UID = "10001:10001"
CLIENT_PORT, API_PORT, OPS_PORT = 8080, 8081, 8090
# Where readiness is probed: the gateway's ops port, which `interlock up` serves /readyz on.
READY_PORT, READY_PATH = OPS_PORT, "/readyz"
KEY = "sk-il-image-test-key-0123456789"
ADMIN = "image-test-admin-token-0123456789"
FIGURES = REPO / ".cache" / "image" / "figures.json"


def _record(name: str, value: float | str) -> None:
    figures = json.loads(FIGURES.read_text()) if FIGURES.exists() else {}
    figures[name] = value
    FIGURES.write_text(json.dumps(figures, indent=2, sort_keys=True) + "\n")
    print(f"figure: {name} = {value}")


@dataclass(frozen=True)
class Built:
    ref: str
    size_mb: int


@pytest.fixture(scope="module")
def tools() -> Iterator[Tools]:
    made = container_tools()
    yield made
    made.close()


@pytest.fixture(scope="module")
def image(tools: Tools) -> Built:
    cold = not (REPO / ".cache" / "image" / "storage").exists()
    started = time.monotonic()
    done = tools.run(str(REPO / "scripts" / "image"), "--tool", "buildah", timeout=1200)
    seconds = time.monotonic() - started
    ref, size = done.stdout.splitlines()[-2:]
    _record("build_cold_s" if cold else "build_warm_s", round(seconds, 1))
    size_mb = int(size.removeprefix("size: ").removesuffix(" MB"))
    _record("image_size_mb", size_mb)
    return Built(ref, size_mb)


def test_the_script_builds_the_reference_the_chart_uses(image: Built) -> None:
    printed = subprocess.run(
        [str(REPO / "scripts" / "image"), "--print-ref"], capture_output=True, text=True, check=True
    ).stdout.strip()
    assert image.ref == printed == EXPECTED_REF  # tests/charts: `helm template` defaults to EXPECTED_REF too


def _revision() -> str:
    def git(*args: str) -> str:
        return subprocess.run(["git", *args], cwd=REPO, capture_output=True, text=True, check=True).stdout.strip()

    head = git("rev-parse", "HEAD")
    return f"{head}-dirty" if git("status", "--porcelain", "--untracked-files=no") else head


def test_the_image_runs_a_non_root_numeric_user_with_labels_and_the_interlock_entrypoint(
    tools: Tools, image: Built
) -> None:
    config = tools.image_config(image.ref)["config"]
    assert config["User"] == UID
    assert config["Entrypoint"] == ["interlock"]
    assert config["StopSignal"] == "SIGTERM"
    assert {f"{p}/tcp" for p in (CLIENT_PORT, API_PORT, OPS_PORT)} <= set(config["ExposedPorts"])
    labels = config["Labels"]
    assert labels["org.opencontainers.image.source"] == "https://github.com/interlock-dev/interlock"
    assert labels["org.opencontainers.image.version"] == VERSION
    assert labels["org.opencontainers.image.revision"] == _revision()
    assert labels["org.opencontainers.image.base.name"].startswith("localhost/interlock-base:bookworm-")


def test_the_image_holds_exactly_the_locked_packages_and_ships_their_sbom(tools: Tools, image: Built) -> None:
    script = (
        "import importlib.metadata as m, json; "
        "print(json.dumps({d.metadata['Name']: d.version for d in m.distributions()}))"
    )
    installed = json.loads(tools.podman("run", "--rm", "--entrypoint", "python", image.ref, "-c", script).stdout)
    pins = lockfile.read_lock(LOCK_DIR / "runtime.txt")
    expected = {name: pin.version for name, pin in pins.items()} | {"interlock": VERSION}
    assert {lockfile.normalize(name): version for name, version in installed.items()} == expected

    shipped = json.loads(
        tools.podman("run", "--rm", "--entrypoint", "cat", image.ref, "/opt/interlock/share/sbom.cdx.json").stdout
    )
    env = {**tools.env, "SBOM_PYTHON": sys.executable}
    local = subprocess.run([str(REPO / "scripts" / "sbom")], env=env, capture_output=True, text=True, check=True)
    assert shipped == json.loads(local.stdout)


@pytest.mark.parametrize("role", ["up", "gateway", "api", "operator"])
def test_every_role_starts_in_a_read_only_container(tools: Tools, image: Built, role: str) -> None:
    done = tools.podman("run", "--rm", "--read-only", "--cap-drop=ALL", image.ref, role, "--help")
    assert done.stdout.startswith(f"usage: interlock {role}")


def test_every_roles_code_and_the_charts_hook_load_in_the_image(tools: Tools, image: Built) -> None:
    """--help parses arguments only: import what each role runs (kopf and the Kubernetes client included)."""
    modules = ["interlock.operator.main", "interlock.gateway.app", "interlock.api.app", "interlock.local.up"]
    script = f"import {', '.join(modules)}; from interlock.db.migrate import head_revision; print(head_revision())"
    done = tools.podman("run", "--rm", "--read-only", "--entrypoint", "python", image.ref, "-c", script)
    assert done.stdout.strip() not in ("", "None")  # the migrations ship in the image (INTERLOCK_MIGRATIONS_DIR)
    hook = tools.podman(
        "run", "--rm", "--read-only", "--entrypoint", "python", image.ref, "-m", "interlock.deploy.secrets", "--help"
    )
    assert hook.stdout.startswith("usage: python -m interlock.deploy.secrets")


async def _podman(tools: Tools, *args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
    return await asyncio.to_thread(tools.podman, *args, check=check)


@pytest.fixture
async def up_container(tools: Tools, image: Built) -> AsyncIterator[tuple[str, float]]:
    """``interlock up`` in a read-only container without capabilities; yields its id and when it was started."""
    started = time.monotonic()
    run = await _podman(
        tools, "run", "-d", "--read-only", "--cap-drop=ALL", "--security-opt=no-new-privileges",
        *(arg for port in (CLIENT_PORT, API_PORT, OPS_PORT) for arg in ("-p", f"127.0.0.1::{port}")),
        image.ref, "up", "--host", "0.0.0.0", "--bootstrap-key", KEY, "--admin-token", ADMIN,
    )  # fmt: skip
    container = run.stdout.strip()
    try:
        yield container, started
    finally:
        await _podman(tools, "rm", "-f", "-t", "0", container, check=False)


async def _url(tools: Tools, container: str, port: int) -> str:
    mapped = (await _podman(tools, "port", container, f"{port}/tcp")).stdout.strip().splitlines()[0]
    return f"http://{mapped}"


async def test_up_in_a_read_only_container_serves_chats_streams_and_usage_and_stops_cleanly(
    tools: Tools, up_container: tuple[str, float]
) -> None:
    container, started = up_container
    gateway, api = await _url(tools, container, CLIENT_PORT), await _url(tools, container, API_PORT)
    ready = await _url(tools, container, READY_PORT)
    async with httpx.AsyncClient(timeout=5) as http:

        async def is_ready() -> bool:
            try:
                return (await http.get(f"{ready}{READY_PATH}")).status_code == 200
            except httpx.TransportError:
                return False

        await eventually(is_ready, within=60, interval=0.05, what=f"{READY_PATH} answering 200")
        _record("start_to_ready_s", round(time.monotonic() - started, 2))

        async with openai.AsyncOpenAI(base_url=f"{gateway}/v1", api_key=KEY, max_retries=0) as client:
            messages: Any = [{"role": "user", "content": "Hi from the host"}]
            answer = await client.chat.completions.create(model="chat-default", messages=messages)
            assert answer.choices[0].message.content
            stream = await client.chat.completions.create(model="chat-default", messages=messages, stream=True)
            text = "".join([chunk.choices[0].delta.content or "" async for chunk in stream if chunk.choices])
            assert text

        admin = {"Authorization": f"Bearer {ADMIN}"}

        async def two_requests_metered() -> dict[str, Any] | None:
            body: dict[str, Any] = (await http.get(f"{api}/v1/usage", headers=admin)).json()
            return body if body["totals"]["requests"] == 2 else None

        usage = await eventually(two_requests_metered, within=20, interval=0.1, what="2 requests in /v1/usage")
        assert usage["totals"]["output_tokens"] > 0

    stop = await _podman(tools, "stop", "-t", "30", container)
    assert stop.returncode == 0
    state = json.loads((await _podman(tools, "inspect", container)).stdout)[0]["State"]
    logs = (await _podman(tools, "logs", container)).stderr + (await _podman(tools, "logs", container)).stdout
    assert state["ExitCode"] == 0, f"SIGTERM should drain and exit 0:\n{logs[-3000:]}"
    assert "Traceback" not in logs, logs[-3000:]
