"""kopf handlers, thin: each turns an event into a (coalesced) reconcile of a backend or a gateway.

- ``LLMBackend`` create/update/resume, a resync timer, and events of its inference Deployment (so ``readyReplicas``
  follows the pods) reconcile the backend; a spec change also reconciles the namespace's gateways (the compiled
  config holds every backend of the namespace). Delete (behind the ``interlock.dev/finalizer``) removes the
  workload and waits until no gateway config lists the backend.
- Secrets: an index maps each (namespace, Secret) to the backends whose ``credentialsSecretRef`` names it, so a
  Secret created, edited or deleted reconciles exactly those backends at once (``CredentialsResolved``). Nothing of
  a Secret but its key names is ever looked at.
- ``Route`` create/update/resume/delete and its timer reconcile its gateway (both gateways when ``spec.gateway``
  moved); events of a gateway Deployment (pods becoming available) reconcile that gateway. The delete handler
  returns, releasing the finalizer, once a gateway run without the Route has succeeded.

Failures that can pass (the API server unreachable, a conflict) become ``kopf.TemporaryError`` with a short delay.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Iterator, Mapping
from typing import Any

import aiohttp
import kopf

from interlock.operator.coalesce import Coalescer
from interlock.operator.gateways import GatewayKey, gateway_of, reconcile_gateway
from interlock.operator.k8s import Kube, KubeError
from interlock.operator.login import connection_info, kube_login
from interlock.operator.naming import (
    COMPONENT_GATEWAY,
    COMPONENT_INFERENCE,
    LABEL_BACKEND,
    LABEL_COMPONENT,
    LABEL_GATEWAY,
    LABEL_MANAGED_BY,
    MANAGED_BY,
)
from interlock.operator.probe import ConfigHistory, GatewayProbe
from interlock.operator.reconcile import Context, delete_inference, reconcile_backend, write_status
from interlock.operator.settings import OperatorSettings
from interlock.operator.snapshots import SnapshotMirror
from interlock.operator.status import invalid_status
from interlock.resources.common import API_GROUP, API_VERSION, GROUP_VERSION

__all__ = ["Operator", "build_registry"]

log = logging.getLogger("interlock.operator")

RETRY_DELAY_S = 2.0
_RECHECK_LIMIT = 600  # runs per gateway while its pods have not loaded the latest config (about 10 min)


class Operator:
    """The running operator's state: its API client, the gateway probe and the per-key reconcile coalescers."""

    def __init__(self, settings: OperatorSettings, *, kube: Kube | None = None) -> None:
        self.settings = settings
        self._kube = kube
        self._probe: GatewayProbe | None = None
        self._snapshots: SnapshotMirror | None = None
        self.history = ConfigHistory()
        self.hpa_checked: set[GatewayKey] = set()
        self.backends: Coalescer[tuple[str, str]] = Coalescer(self._reconcile_backend)
        self.gateways: Coalescer[GatewayKey] = Coalescer(self._reconcile_gateway)
        self.active: set[GatewayKey] = set()  # gateways with Routes, as of their last run
        self._rechecks: dict[GatewayKey, int] = {}
        self._recheck_tasks: dict[GatewayKey, asyncio.Task[None]] = {}
        self._asked: set[GatewayKey] = set()

    async def context(self) -> Context:
        if self._kube is None:
            self._kube = Kube(await kube_login(), timeout_s=self.settings.request_timeout_s)
        if self._probe is None:
            self._probe = GatewayProbe(timeout_s=self.settings.probe_timeout_s)
        if self._snapshots is None:
            self._snapshots = SnapshotMirror()
        return Context(self._kube, self.settings, probe=self._probe, history=self.history, recheck=self.recheck,
                       snapshots=self._snapshots, hpa_checked=self.hpa_checked)  # fmt: skip

    async def close(self) -> None:
        for task in list(self._recheck_tasks.values()):
            task.cancel()
        if self._kube is not None:
            await self._kube.close()
            self._kube = None
        if self._probe is not None:
            await self._probe.close()
            self._probe = None
        if self._snapshots is not None:
            await self._snapshots.close()
            self._snapshots = None

    def recheck(self, key: Any, delay: float) -> None:
        """Run gateway ``key`` again after ``delay`` (bounded: a gateway whose pods never load stops being asked)."""
        self._asked.add(key)
        count = self._rechecks.get(key, 0)
        if count >= _RECHECK_LIMIT or key in self._recheck_tasks:
            return
        self._rechecks[key] = count + 1

        async def later() -> None:
            await asyncio.sleep(delay)
            self._recheck_tasks.pop(key, None)  # done waiting: the run below may ask for the next one
            try:
                await self.gateways.run(key)
            except (KubeError, aiohttp.ClientError, TimeoutError) as exc:
                log.warning("gateway %s/%s: recheck failed: %s", key.namespace, key.gateway, exc)

        self._recheck_tasks[key] = asyncio.create_task(later(), name=f"recheck:{key}")

    async def _reconcile_backend(self, key: tuple[str, str]) -> None:
        namespace, name = key
        ctx = await self.context()
        body = await ctx.kube.get(GROUP_VERSION, "LLMBackend", namespace, name)
        if body is None or body["metadata"].get("deletionTimestamp"):
            return
        if await reconcile_backend(ctx, body):
            await self.sync_namespace(namespace)  # its Ready changed: so may its routes'

    async def _reconcile_gateway(self, key: GatewayKey) -> None:
        self._asked.discard(key)
        if await reconcile_gateway(await self.context(), key):
            self.active.add(key)
        else:
            self.active.discard(key)
        if key not in self._asked:
            self._rechecks.pop(key, None)  # nothing left to wait for: the next wait starts a new budget

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
    except (aiohttp.ClientError, TimeoutError) as exc:
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
    async def login(**_: Any) -> kopf.ConnectionInfo:
        return await connection_info(await kube_login())

    @kopf.on.cleanup(registry=registry)
    async def cleanup(**_: Any) -> None:
        await op.close()

    # --- LLMBackend -----------------------------------------------------------------------------------------

    @kopf.index(group, version, "llmbackends", id="credential_secrets", registry=registry)
    def credential_secrets(namespace: str | None, name: str, spec: kopf.Spec, **_: Any) -> dict[Any, str]:
        ref = spec.get("credentialsSecretRef")
        secret = ref.get("name") if isinstance(ref, Mapping) else None
        return {(namespace, secret): name} if isinstance(secret, str) else {}

    @kopf.on.resume(group, version, "llmbackends", registry=registry)
    @kopf.on.create(group, version, "llmbackends", registry=registry)
    @kopf.on.update(group, version, "llmbackends", registry=registry)
    async def backend_changed(body: kopf.Body, old: Any, new: Any, **_: Any) -> None:
        with _retry_later():
            was_served = isinstance(old, Mapping) and bool((old.get("spec") or {}).get("serving"))
            if was_served and not (new or {}).get("spec", {}).get("serving"):
                await delete_inference(await op.context(), body)
            await op.backends.run(_key(body))
            await op.sync_namespace(_key(body)[0])

    @kopf.timer(group, version, "llmbackends", interval=resync, initial_delay=resync, registry=registry)
    async def backend_resync(body: kopf.Body, **_: Any) -> None:
        with _retry_later():
            await op.backends.run(_key(body))

    @kopf.on.delete(group, version, "llmbackends", registry=registry)
    async def backend_deleted(body: kopf.Body, **_: Any) -> None:
        with _retry_later():
            await delete_inference(await op.context(), body)
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

    @kopf.on.event("", "v1", "secrets", registry=registry)
    async def secret_changed(namespace: str | None, name: str, **kwargs: Any) -> None:
        index: kopf.Index[Any, str] = kwargs["credential_secrets"]  # the index above, by its name
        for backend in sorted(set(index.get((namespace, name), ()))):
            with _retry_later():
                await op.backends.run((str(namespace), backend))

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
            await write_status(await op.context(), body, status)
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

    @kopf.on.event(
        "apps", "v1", "deployments",
        labels={LABEL_COMPONENT: COMPONENT_GATEWAY, LABEL_MANAGED_BY: MANAGED_BY, LABEL_GATEWAY: kopf.PRESENT},
        registry=registry,
    )  # fmt: skip
    async def gateway_changed(body: kopf.Body, type: str | None, **_: Any) -> None:
        key = GatewayKey(str(body["metadata"]["namespace"]), str(body["metadata"]["labels"][LABEL_GATEWAY]))
        if type == "DELETED" or key not in op.active:
            return
        with _retry_later():
            await op.gateways.run(key)

    return registry
