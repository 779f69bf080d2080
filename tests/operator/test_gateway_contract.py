"""The contract between operator and gateway, tested rather than assumed: ``interlock gateway`` started the way
the operator's Deployment starts it (its env, the ConfigMap and the Secrets projected as files the way the kubelet
mounts them: a timestamped directory behind a ``..data`` symlink, swapped atomically on every update) serves a chat
completion through an upstream that sees the key from the Secret; its Route turns Ready only once the operator has
read the loaded config from the real gateway's ``/readyz``; a Route added later is hot-reloaded; and a rotated key
reaches the upstream within 10 s, with no restart."""

from __future__ import annotations

import asyncio
import base64
import json
import os
import signal
import socket
import sys
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import httpx
import openai

from interlock.asgiserver import EmbeddedServer
from interlock.mockprovider import MockSettings, create_app
from interlock.operator.naming import CONFIG_KEY
from tests.operator.conftest import ROOT, Api, backend_manifest, backends_path, condition, route_manifest, routes_path
from tests.support import eventually

GATEWAY = "interlock-gateway-default"
OLD_KEY = "sk-upstream-only-in-the-secret"
NEW_KEY = "sk-upstream-rotated"
CLIENT_KEY = "sk-il-contract"
SECRETS = "/api/v1/namespaces/default/secrets"


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def kubelet_write(directory: Path, files: dict[str, str]) -> None:
    """The kubelet's atomic writer: files in a new ``..<timestamp>`` directory, ``..data`` swapped to it by a
    rename, and each visible name a symlink through ``..data``."""
    directory.mkdir(parents=True, exist_ok=True)
    stamp = directory / f"..{time.strftime('%Y_%m_%d_%H_%M_%S')}.{time.monotonic_ns()}"
    stamp.mkdir()
    for name, content in files.items():
        (stamp / name).write_text(content)
    tmp = directory / "..data_tmp"
    tmp.symlink_to(stamp.name)
    tmp.replace(directory / "..data")
    for name in files:
        link = directory / name
        if not link.is_symlink():
            link.symlink_to(f"..data/{name}")


def project(api: Api, root: Path) -> dict[str, str]:
    """Do what the kubelet does for the gateway pod: mount its volumes as files; return the container's env."""
    deployment = api.obj("apps/v1", "deployments", GATEWAY)
    assert deployment is not None
    pod = deployment["spec"]["template"]["spec"]
    (container,) = pod["containers"]
    volumes = {v["name"]: v for v in pod["volumes"]}
    for mount in container["volumeMounts"]:
        volume = volumes[mount["name"]]
        if "configMap" in volume:
            cm = api.obj("v1", "configmaps", volume["configMap"]["name"])
            assert cm is not None
            files = dict(cm["data"])
        elif "secret" in volume:
            secret = api.obj("v1", "secrets", volume["secret"]["secretName"]) or {}
            data = {k: base64.b64decode(v).decode() for k, v in (secret.get("data") or {}).items()}
            files = {item["path"]: data[item["key"]] for item in volume["secret"]["items"] if item["key"] in data}
        else:
            continue
        kubelet_write(root / mount["mountPath"].lstrip("/"), files)
    env = {e["name"]: e["value"] for e in container["env"] if "value" in e}
    return {k: v.replace("$(POD_NAME)", "gw-pod-0") for k, v in env.items()}


async def readyz_port(ops_port: int) -> int | None:
    """The gateway's ops port once it answers ``/readyz`` with its loaded config."""
    async with httpx.AsyncClient() as http:
        try:
            response = await http.get(f"http://127.0.0.1:{ops_port}/readyz")
        except httpx.TransportError:
            return None
        return ops_port if response.status_code in (200, 503) and "config_version" in response.text else None


class Upstream:
    """The mock provider behind a recorder of the keys it was called with."""

    def __init__(self) -> None:
        self.keys: list[str] = []
        mock = create_app(MockSettings())

        async def app(scope: dict[str, Any], receive: Any, send: Any) -> None:
            if scope["type"] == "http":
                headers = dict(scope["headers"])
                self.keys.append(headers.get(b"authorization", b"").decode())
            await mock(scope, receive, send)

        self.server = EmbeddedServer(app, lifespan="off")


async def test_gateway_serves_what_the_operator_wrote_and_follows_a_rotated_key(
    api: Api, operator: Any, tmp_path: Path
) -> None:
    upstream = Upstream()
    upstream_url = await upstream.server.start()
    gateway: asyncio.subprocess.Process | None = None
    try:
        await api.create(SECRETS, {"metadata": {"name": "upstream"}, "stringData": {"key": OLD_KEY}})
        await api.create(
            backends_path(),
            backend_manifest(
                "hosted", provider="openai", url=f"{upstream_url}/v1",
                credentialsSecretRef={"name": "upstream", "key": "key"}, models=[{"name": "gpt-4o-mini"}],
            ),
        )  # fmt: skip
        await api.create(backends_path(), backend_manifest("mock"))
        await api.create(routes_path(), route_manifest("chat", ("hosted", "gpt-4o-mini")))
        await eventually(lambda: api.obj("v1", "configmaps", GATEWAY), within=10, what="gateway ConfigMap")
        await eventually(lambda: api.obj("apps/v1", "deployments", GATEWAY), within=10, what="gateway Deployment")
        cm = api.obj("v1", "configmaps", GATEWAY)
        assert OLD_KEY not in json.dumps(cm)

        env = project(api, tmp_path)
        port, ops_port = free_port(), free_port()
        mounted = {
            "INTERLOCK_GATEWAY_CONFIG_FILE": str(tmp_path / env["INTERLOCK_GATEWAY_CONFIG_FILE"].lstrip("/")),
            "INTERLOCK_GATEWAY_SECRETS_DIR": str(tmp_path / env["INTERLOCK_GATEWAY_SECRETS_DIR"].lstrip("/")),
        }
        assert Path(mounted["INTERLOCK_GATEWAY_CONFIG_FILE"]).name == CONFIG_KEY
        assert env["INTERLOCK_GATEWAY_GATEWAY_ID"] == "default/default/gw-pod-0"
        gateway_env = {
            **os.environ, **env, **mounted,
            "INTERLOCK_GATEWAY_HOST": "127.0.0.1", "INTERLOCK_GATEWAY_PORT": str(port),
            "INTERLOCK_GATEWAY_OPS_PORT": str(ops_port),
            "INTERLOCK_GATEWAY_API_KEYS": json.dumps([CLIENT_KEY]), "INTERLOCK_GATEWAY_CONFIG_POLL_INTERVAL_S": "0.1",
        }  # fmt: skip
        gateway = await asyncio.create_subprocess_exec(
            sys.executable, "-m", *deployment_command(api), cwd=ROOT, env=gateway_env,
            stdout=asyncio.subprocess.DEVNULL, stderr=asyncio.subprocess.DEVNULL,
        )  # fmt: skip
        ready_port = await eventually(lambda: readyz_port(ops_port), within=20, interval=0.1, what="/readyz")

        # The gateway's pods are this process: the operator reads its loaded config and only then says Ready.
        controller = api.emu.store.controller
        controller.ports[("default", GATEWAY, "ops")] = ready_port
        controller.set_mode("default", GATEWAY, "ready")
        await eventually(lambda: (condition(api.route("chat")) or {}).get("status") == "True", within=10)
        assert "which its pods run" in condition(api.route("chat"), "Published")["message"]  # type: ignore[index]

        async with openai.AsyncOpenAI(base_url=f"http://127.0.0.1:{port}/v1", api_key=CLIENT_KEY, max_retries=0) as sdk:
            raw = await sdk.chat.completions.with_raw_response.create(
                model="chat", messages=[{"role": "user", "content": "Hi"}]
            )
            assert raw.headers["x-interlock-backend"] == "hosted"  # through the keyed upstream, not the mock
            assert upstream.keys[-1] == f"Bearer {OLD_KEY}"

            # A new Route reaches the running gateway through the ConfigMap: hot reload, same process.
            await api.create(routes_path(), route_manifest("offline", ("mock", "m1")))
            await eventually(lambda: "offline" in api.obj("v1", "configmaps", GATEWAY)["data"][CONFIG_KEY], within=10)  # type: ignore[index]
            project(api, tmp_path)
            await eventually(served(sdk, "offline"), within=10, interval=0.1, what="new route hot-reloaded")
            await eventually(lambda: (condition(api.route("offline")) or {}).get("status") == "True", within=10)

            # Rotation: the Secret changes, the kubelet swaps the files, the next request carries the new key.
            await api.patch(f"{SECRETS}/upstream", {"stringData": {"key": NEW_KEY}})
            project(api, tmp_path)
            rotated_at = time.monotonic()

            async def new_key_upstream() -> bool:
                await sdk.chat.completions.create(model="chat", messages=[{"role": "user", "content": "Hi"}])
                return upstream.keys[-1] == f"Bearer {NEW_KEY}"

            await eventually(new_key_upstream, within=10, interval=0.2, what="the rotated key upstream")
            assert time.monotonic() - rotated_at < 10
            assert gateway.returncode is None  # the same process: no restart
            leaf = condition(api.backend("hosted"), "CredentialsResolved")
            assert leaf is not None
            assert leaf["status"] == "True"
    finally:
        if gateway is not None and gateway.returncode is None:
            gateway.send_signal(signal.SIGTERM)
            async with asyncio.timeout(10):
                await gateway.wait()
        await upstream.server.stop()


def served(sdk: openai.AsyncOpenAI, model: str) -> Callable[[], Awaitable[bool]]:
    async def check() -> bool:
        try:
            await sdk.chat.completions.create(model=model, messages=[{"role": "user", "content": "Hi"}])
        except openai.NotFoundError:
            return False
        return True

    return check


def deployment_command(api: Api) -> list[str]:
    """The container's command, as a module run by this Python: ``interlock gateway`` -> ``-m interlock gateway``."""
    deployment = api.obj("apps/v1", "deployments", GATEWAY)
    assert deployment is not None
    command = list(deployment["spec"]["template"]["spec"]["containers"][0]["command"])
    assert command[:2] == ["interlock", "gateway"]
    return ["interlock", *command[1:]]
