"""Fixtures for the operator tests: the emulator over real HTTP with our CRDs installed, and the real kopf
operator running in the test's event loop against it."""

from __future__ import annotations

import asyncio
import contextlib
import threading
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import uvloop
import yaml

from interlock.operator.main import run_operator
from interlock.operator.settings import OperatorSettings
from tests.operator.emulator import Emulator
from tests.operator.emulator.gateways import FakeGateways

ROOT = Path(__file__).resolve().parents[2]
CRDS = sorted((ROOT / "operator" / "crds").glob("*.yaml"))
GV = "/apis/interlock.dev/v1alpha1"


class Api:
    """Test-side HTTP client of the emulator (user agent ``tests``), with shortcuts for our resources."""

    def __init__(self, emu: Emulator) -> None:
        self.emu = emu
        self.http = httpx.AsyncClient(base_url=emu.url, headers={"User-Agent": "tests"}, timeout=10)

    async def create(self, path: str, body: dict[str, Any]) -> dict[str, Any]:
        response = await self.http.post(path, json=body)
        assert response.status_code == 201, response.text
        return response.json()  # type: ignore[no-any-return]

    async def patch(self, path: str, body: dict[str, Any]) -> dict[str, Any]:
        response = await self.http.patch(path, json=body, headers={"Content-Type": "application/merge-patch+json"})
        assert response.status_code == 200, response.text
        return response.json()  # type: ignore[no-any-return]

    async def delete(self, path: str) -> None:
        response = await self.http.delete(path)
        assert response.status_code == 200, response.text

    def obj(self, api_version: str, plural: str, name: str, namespace: str = "default") -> dict[str, Any] | None:
        return self.emu.get(api_version, plural, namespace, name)

    def backend(self, name: str, namespace: str = "default") -> dict[str, Any] | None:
        return self.obj("interlock.dev/v1alpha1", "llmbackends", name, namespace)

    def route(self, name: str, namespace: str = "default") -> dict[str, Any] | None:
        return self.obj("interlock.dev/v1alpha1", "routes", name, namespace)


def condition(obj: dict[str, Any] | None, type_: str = "Ready") -> dict[str, Any] | None:
    for cond in ((obj or {}).get("status") or {}).get("conditions") or []:
        if cond.get("type") == type_:
            return dict(cond)
    return None


async def install_crds(http: httpx.AsyncClient) -> None:
    for path in CRDS:
        response = await http.post(
            "/apis/apiextensions.k8s.io/v1/customresourcedefinitions", json=yaml.safe_load(path.read_text())
        )
        assert response.status_code == 201, response.text


@pytest.fixture
async def emulator(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> AsyncIterator[Emulator]:
    async with Emulator() as emu:
        monkeypatch.setenv("KUBECONFIG", str(emu.write_kubeconfig(tmp_path / "kubeconfig")))
        monkeypatch.delenv("KUBERNETES_SERVICE_HOST", raising=False)
        yield emu


@pytest.fixture
async def api(emulator: Emulator, gateways: FakeGateways) -> AsyncIterator[Api]:
    client = Api(emulator)
    await install_crds(client.http)
    yield client
    await client.http.aclose()


@pytest.fixture
def operator_settings() -> OperatorSettings:
    return OperatorSettings(resync_interval_s=60, gateway_image="ghcr.io/interlock-dev/interlock:0.1.0")


class OperatorThread:
    """The real kopf operator in a thread with its own event loop, as in a pod.

    Not a task in the test's loop: on shutdown kopf cancels every task its loop gained since it started, which
    there would include pytest's fixture finalizers.
    """

    def __init__(self, settings: OperatorSettings, **kw: Any) -> None:
        self.stop, self.ready = threading.Event(), threading.Event()
        self.error: BaseException | None = None
        self._thread = threading.Thread(target=self._main, args=(settings, kw), name="operator", daemon=True)

    def _main(self, settings: OperatorSettings, kw: dict[str, Any]) -> None:
        try:
            uvloop.run(run_operator(settings, stop_flag=self.stop, ready_flag=self.ready, **kw))
        except BaseException as exc:
            self.error = exc
            self.ready.set()

    async def start(self) -> None:
        self._thread.start()
        if not await asyncio.to_thread(self.ready.wait, 20) or self.error is not None:
            raise AssertionError(f"the operator did not start: {self.error!r}")

    async def close(self) -> None:
        self.stop.set()
        await asyncio.to_thread(self._thread.join, 20)
        assert not self._thread.is_alive(), "the operator did not stop within 20 s"
        if self.error is not None:
            raise self.error


@contextlib.asynccontextmanager
async def running_operator(settings: OperatorSettings, **kw: Any) -> AsyncIterator[OperatorThread]:
    kw.setdefault("clusterwide", True)
    op = OperatorThread(settings, **kw)
    await op.start()
    try:
        yield op
    finally:
        await op.close()


@pytest.fixture
async def operator(api: Api, operator_settings: OperatorSettings) -> AsyncIterator[OperatorThread]:
    async with running_operator(operator_settings) as op:
        yield op


# --- manifests -----------------------------------------------------------------------------------------------


def backend_manifest(name: str, namespace: str = "default", **spec: Any) -> dict[str, Any]:
    spec.setdefault("provider", "mock")
    spec.setdefault("models", [{"name": "m1", "pricing": {"inputPerMillion": 1.0, "outputPerMillion": 2.0}}])
    return {
        "apiVersion": "interlock.dev/v1alpha1",
        "kind": "LLMBackend",
        "metadata": {"name": name, "namespace": namespace},
        "spec": spec,
    }


def route_manifest(
    name: str, *targets: tuple[str, str], namespace: str = "default", model: str | None = None, **spec: Any
) -> dict[str, Any]:
    spec.setdefault("model", model or name)
    spec.setdefault("targets", [{"backend": b, "model": m, "weight": 1} for b, m in targets])
    return {
        "apiVersion": "interlock.dev/v1alpha1",
        "kind": "Route",
        "metadata": {"name": name, "namespace": namespace},
        "spec": spec,
    }


def backends_path(namespace: str = "default") -> str:
    return f"{GV}/namespaces/{namespace}/llmbackends"


def routes_path(namespace: str = "default") -> str:
    return f"{GV}/namespaces/{namespace}/routes"


# --- gateway pods ----------------------------------------------------------------------------------------------


@pytest.fixture
async def gateways(emulator: Emulator) -> AsyncIterator[FakeGateways]:
    fakes = FakeGateways(emulator)
    yield fakes
    await fakes.close()
