"""The contract between operator and gateway, tested rather than assumed: ``interlock gateway`` started the way
the operator's Deployment starts it (its env, the ConfigMap and the Secret projected as files the way the kubelet
mounts them) serves a chat completion through a mock provider that demands the key from the Secret, and picks up
a Route added later by hot reload, without a restart."""

from __future__ import annotations

import asyncio
import base64
import json
import os
import signal
import socket
import sys
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
UPSTREAM_KEY = "sk-upstream-only-in-the-secret"
CLIENT_KEY = "sk-il-contract"


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def project(api: Api, root: Path) -> dict[str, str]:
    """Do what the kubelet does for the gateway pod: mount its volumes as files; return the container's env."""
    deployment = api.obj("apps/v1", "deployments", GATEWAY)
    assert deployment is not None
    pod = deployment["spec"]["template"]["spec"]
    (container,) = pod["containers"]
    volumes = {v["name"]: v for v in pod["volumes"]}
    for mount in container["volumeMounts"]:
        volume = volumes[mount["name"]]
        target = root / mount["mountPath"].lstrip("/")
        target.mkdir(parents=True, exist_ok=True)
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
        for name, content in files.items():
            tmp = target / f".{name}.tmp"
            tmp.write_text(content)
            tmp.replace(target / name)  # atomic, like the kubelet's symlink swap
    return {e["name"]: e["value"] for e in container["env"] if "value" in e}


async def test_gateway_serves_what_the_operator_wrote(api: Api, operator: Any, tmp_path: Path) -> None:
    upstream = EmbeddedServer(create_app(MockSettings(api_key=UPSTREAM_KEY)), lifespan="off")
    upstream_url = await upstream.start()
    gateway: asyncio.subprocess.Process | None = None
    try:
        await api.create(
            "/api/v1/namespaces/default/secrets",
            {"metadata": {"name": "upstream"}, "data": {"key": base64.b64encode(UPSTREAM_KEY.encode()).decode()}},
        )
        await api.create(
            backends_path(),
            backend_manifest(
                "hosted", provider="openai", url=f"{upstream_url}/v1",
                credentialsSecretRef={"name": "upstream", "key": "key"}, models=[{"name": "gpt-4o-mini"}],
            ),
        )  # fmt: skip
        await api.create(backends_path(), backend_manifest("mock"))
        await api.create(routes_path(), route_manifest("chat", ("hosted", "gpt-4o-mini")))
        await eventually(lambda: (condition(api.route("chat")) or {}).get("status") == "True", within=10)
        cm = api.obj("v1", "configmaps", GATEWAY)
        assert cm is not None
        assert UPSTREAM_KEY not in json.dumps(cm)

        env = project(api, tmp_path)
        port = free_port()
        mounted = {
            "INTERLOCK_GATEWAY_CONFIG_FILE": str(tmp_path / env["INTERLOCK_GATEWAY_CONFIG_FILE"].lstrip("/")),
            "INTERLOCK_GATEWAY_SECRETS_DIR": str(tmp_path / env["INTERLOCK_GATEWAY_SECRETS_DIR"].lstrip("/")),
        }
        assert Path(mounted["INTERLOCK_GATEWAY_CONFIG_FILE"]).name == CONFIG_KEY
        gateway_env = {
            **os.environ, **env, **mounted,
            "INTERLOCK_GATEWAY_HOST": "127.0.0.1", "INTERLOCK_GATEWAY_PORT": str(port),
            "INTERLOCK_GATEWAY_API_KEYS": json.dumps([CLIENT_KEY]), "INTERLOCK_GATEWAY_CONFIG_POLL_INTERVAL_S": "0.1",
        }  # fmt: skip
        command = deployment_command(api)
        gateway = await asyncio.create_subprocess_exec(
            sys.executable, "-m", *command, cwd=ROOT, env=gateway_env,
            stdout=asyncio.subprocess.DEVNULL, stderr=asyncio.subprocess.DEVNULL,
        )  # fmt: skip
        async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}") as http:

            async def ready() -> bool:
                try:
                    return (await http.get("/readyz")).status_code == 200
                except httpx.TransportError:
                    return False

            await eventually(ready, within=20, interval=0.1, what="gateway ready")

        async with openai.AsyncOpenAI(base_url=f"http://127.0.0.1:{port}/v1", api_key=CLIENT_KEY, max_retries=0) as sdk:
            answer = await sdk.chat.completions.create(model="chat", messages=[{"role": "user", "content": "Hi"}])
            assert answer.choices[0].message.content
            raw = await sdk.chat.completions.with_raw_response.create(
                model="chat", messages=[{"role": "user", "content": "Hi"}]
            )
            assert raw.headers["x-interlock-backend"] == "hosted"  # through the keyed upstream, not the mock

            # A new Route reaches the running gateway through the ConfigMap: hot reload, same process.
            await api.create(routes_path(), route_manifest("offline", ("mock", "m1")))
            await eventually(lambda: (condition(api.route("offline")) or {}).get("status") == "True", within=10)
            project(api, tmp_path)

            async def served() -> bool:
                try:
                    await sdk.chat.completions.create(model="offline", messages=[{"role": "user", "content": "Hi"}])
                except openai.NotFoundError:
                    return False
                return True

            await eventually(served, within=10, interval=0.1, what="new route hot-reloaded")
            assert gateway.returncode is None
    finally:
        if gateway is not None and gateway.returncode is None:
            gateway.send_signal(signal.SIGTERM)
            async with asyncio.timeout(10):
                await gateway.wait()
        await upstream.stop()


def deployment_command(api: Api) -> list[str]:
    """The container's command, as a module run by this Python: ``interlock gateway`` -> ``-m interlock gateway``."""
    deployment = api.obj("apps/v1", "deployments", GATEWAY)
    assert deployment is not None
    command = list(deployment["spec"]["template"]["spec"]["containers"][0]["command"])
    assert command[:2] == ["interlock", "gateway"]
    return ["interlock", *command[1:]]
