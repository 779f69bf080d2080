"""kopf handlers, thin: each turns an event into a (coalesced) reconcile of a backend or a gateway.

- ``LLMBackend`` create/update/resume, a resync timer, and events of its inference Deployment (so ``readyReplicas``
  follows the pods) reconcile the backend; a spec change also reconciles the namespace's gateways (the compiled
  config holds every backend of the namespace). Delete (behind the ``interlock.dev/finalizer``) removes the
  workload and waits until no gateway config lists the backend.
- ``Route`` create/update/resume/delete and its timer reconcile its gateway (both gateways when ``spec.gateway``
  moved). The delete handler returns, releasing the finalizer, once a gateway run without the Route has succeeded.

Failures that can pass (the API server unreachable, a conflict) become ``kopf.TemporaryError`` with a short delay.
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Iterator, Mapping
from typing import Any

import httpx
import kopf

from interlock.operator.coalesce import Coalescer
from interlock.operator.gateways import GatewayKey, gateway_of, reconcile_gateway
from interlock.operator.k8s import Kube, KubeError
from interlock.operator.login import connection_info, load_configuration
from interlock.operator.naming import COMPONENT_INFERENCE, LABEL_BACKEND, LABEL_COMPONENT, LABEL_MANAGED_BY, MANAGED_BY
from interlock.operator.reconcile import Context, delete_inference, reconcile_backend, write_status
from interlock.operator.settings import OperatorSettings
from interlock.operator.status import invalid_status
from interlock.resources.common import API_GROUP, API_VERSION, GROUP_VERSION

__all__ = ["Operator", "build_registry"]

log = logging.getLogger("interlock.operator")

RETRY_DELAY_S = 2.0


class Operator:
    """The running operator's state: its API client and the per-key reconcile coalescers."""

    def __init__(self, settings: OperatorSettings, *, kube: Kube | None = None) -> None:
        self.settings = settings
        self._kube = kube
        self.backends: Coalescer[tuple[str, str]] = Coalescer(self._reconcile_backend)
        self.gateways: Coalescer[GatewayKey] = Coalescer(self._reconcile_gateway)
        self.active: set[GatewayKey] = set()  # gateways with Routes, as of their last run

    @property
    def ctx(self) -> Context:
        if self._kube is None:
            self._kube = Kube(load_configuration(), timeout_s=self.settings.request_timeout_s)
        return Context(self._kube, self.settings)

    async def close(self) -> None:
        if self._kube is not None:
            await self._kube.close()
            self._kube = None

    async def _reconcile_backend(self, key: tuple[str, str]) -> None:
        namespace, name = key
        body = await self.ctx.kube.get(GROUP_VERSION, "LLMBackend", namespace, name)
        if body is None or body["metadata"].get("deletionTimestamp"):
            return
        if await reconcile_backend(self.ctx, body):
            await self.sync_namespace(namespace)  # its Ready changed: so may its routes'

    async def _reconcile_gateway(self, key: GatewayKey) -> None:
        if await reconcile_gateway(self.ctx, key):
            self.active.add(key)
        else:
            self.active.discard(key)

    async def sync_gateway(self, key: GatewayKey, *, max_age: float | None = None) -> None:
        """Reconcile one gateway (a Route named it, so it is active until a run finds it without Routes)."""
        self.active.add(key)
        await self.gateways.run(key, max_age=max_age)

    async def sync_namespace(self, namespace: str) -> None:
        """Reconcile every active gateway of ``namespace`` (the Routes' handlers make their gateways active)."""
        for key in sorted(self.active):
            if key.namespace == namespace:
                await self.gateways.run(key)


@contextlib.contextmanager
def _retry_later() -> Iterator[None]:
    try:
        yield
    except KubeError as exc:
        raise kopf.TemporaryError(f"API request failed: {exc}", delay=RETRY_DELAY_S) from exc
    except httpx.HTTPError as exc:
        raise kopf.TemporaryError(f"API server unreachable: {exc!r}", delay=RETRY_DELAY_S) from exc


def _key(body: Mapping[str, Any]) -> tuple[str, str]:
    meta = body["metadata"]
    return str(meta["namespace"]), str(meta["name"])


def build_registry(op: Operator) -> kopf.OperatorRegistry:
    """A registry of its own (not kopf's global one), so several operators can run in one process (tests)."""
    registry = kopf.OperatorRegistry()
    group, version = API_GROUP, API_VERSION
    resync = op.settings.resync_interval_s

    @kopf.on.login(registry=registry)
    def login(**_: Any) -> kopf.ConnectionInfo:
        return connection_info(load_configuration())

    @kopf.on.cleanup(registry=registry)
    async def cleanup(**_: Any) -> None:
        await op.close()

    # --- LLMBackend -----------------------------------------------------------------------------------------

    @kopf.on.resume(group, version, "llmbackends", registry=registry)
    @kopf.on.create(group, version, "llmbackends", registry=registry)
    @kopf.on.update(group, version, "llmbackends", registry=registry)
    async def backend_changed(body: kopf.Body, old: Any, new: Any, **_: Any) -> None:
        with _retry_later():
            was_served = isinstance(old, Mapping) and bool((old.get("spec") or {}).get("serving"))
            if was_served and not (new or {}).get("spec", {}).get("serving"):
                await delete_inference(op.ctx, body)
            await op.backends.run(_key(body))
            await op.sync_namespace(_key(body)[0])

    @kopf.timer(group, version, "llmbackends", interval=resync, initial_delay=resync, registry=registry)
    async def backend_resync(body: kopf.Body, **_: Any) -> None:
        with _retry_later():
            await op.backends.run(_key(body))

    @kopf.on.delete(group, version, "llmbackends", registry=registry)
    async def backend_deleted(body: kopf.Body, **_: Any) -> None:
        with _retry_later():
            await delete_inference(op.ctx, body)
            await op.sync_namespace(_key(body)[0])

    @kopf.on.event(
        "apps", "v1", "deployments",
        labels={LABEL_COMPONENT: COMPONENT_INFERENCE, LABEL_MANAGED_BY: MANAGED_BY, LABEL_BACKEND: kopf.PRESENT},
        registry=registry,
    )  # fmt: skip
    async def inference_changed(body: kopf.Body, **_: Any) -> None:
        backend = body["metadata"]["labels"][LABEL_BACKEND]
        with _retry_later():
            await op.backends.run((str(body["metadata"]["namespace"]), backend))

    # --- Route ------------------------------------------------------------------------------------------------

    async def sync_route(body: Mapping[str, Any], *, max_age: float | None = None) -> None:
        namespace = _key(body)[0]
        gateway = gateway_of(body)
        if gateway is None:  # no gateway to reconcile: the Route's status is all there is to write
            bad = (body.get("spec") or {}).get("gateway")
            message = f"spec.gateway: must be a DNS label of at most 63 characters (got {bad!r})"
            meta = body["metadata"]
            status = invalid_status(current=body.get("status"), generation=meta.get("generation"), message=message,
                                    leaf="Accepted")  # fmt: skip
            await write_status(op.ctx, body, status)
            return
        await op.sync_gateway(GatewayKey(namespace, gateway), max_age=max_age)

    @kopf.on.resume(group, version, "routes", registry=registry)
    @kopf.on.create(group, version, "routes", registry=registry)
    @kopf.on.update(group, version, "routes", registry=registry)
    async def route_changed(body: kopf.Body, old: Any, **_: Any) -> None:
        with _retry_later():
            await sync_route(body)
            if isinstance(old, Mapping) and (moved_from := gateway_of(old)) not in (None, gateway_of(body)):
                await op.sync_gateway(GatewayKey(_key(body)[0], str(moved_from)))

    @kopf.timer(group, version, "routes", interval=resync, initial_delay=resync, registry=registry)
    async def route_resync(body: kopf.Body, **_: Any) -> None:
        with _retry_later():
            await sync_route(body, max_age=resync)

    @kopf.on.delete(group, version, "routes", registry=registry)
    async def route_deleted(body: kopf.Body, **_: Any) -> None:
        gateway = gateway_of(body)
        if gateway is not None:
            with _retry_later():
                await op.sync_gateway(GatewayKey(_key(body)[0], gateway))

    return registry
