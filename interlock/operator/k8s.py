"""The operator's Kubernetes client for its own reads and writes: ``kubernetes_asyncio`` underneath.

kopf talks to the API server for watching and for its own bookkeeping; everything the operator decides to write
(children, status) goes through ``Kube``. Children are written with server-side apply only
(``application/apply-patch+yaml``, field manager ``interlock-operator``, ``force``), and only when ``drift`` says
the applied configuration changed or an applied field drifted: a steady-state resync reads and writes nothing.
Fields the operator stops applying disappear (the API server removes fields no manager owns any more); fields
other managers own (an HPA's ``replicas``, a user's annotation, an injected container) stay.

Why ``kubernetes_asyncio``: it is the official API's generated client for asyncio, maintained in step with
Kubernetes releases, on aiohttp, which kopf already runs on (one HTTP stack in the operator); it loads in-cluster
service-account tokens with rotation and kubeconfigs with exec plugins, sends any content type (server-side apply
included) with dict bodies, and ships the Lease-based leader election the operator's replicas use. ``lightkube``
(now on a second HTTP stack, httpx2, and typed models we would convert to and from), ``kr8s`` (no server-side
apply) and the synchronous ``kubernetes`` package (threads under an asyncio operator) fit less well.
"""

from __future__ import annotations

import json
import time
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Literal

from kubernetes_asyncio.client import ApiClient, Configuration
from kubernetes_asyncio.client.exceptions import ApiException

from interlock.operator.drift import needs_apply, with_digest
from interlock.operator.naming import FIELD_MANAGER, USER_AGENT
from interlock.resources.common import GROUP_VERSION

__all__ = ["PLURALS", "Applied", "Kube", "KubeError", "ref_of"]

Obj = dict[str, Any]

PLURALS: dict[tuple[str, str], str] = {
    ("v1", "ConfigMap"): "configmaps",
    ("v1", "Secret"): "secrets",
    ("v1", "Service"): "services",
    ("v1", "Pod"): "pods",
    ("v1", "PersistentVolumeClaim"): "persistentvolumeclaims",
    ("apps/v1", "Deployment"): "deployments",
    ("policy/v1", "PodDisruptionBudget"): "poddisruptionbudgets",
    ("networking.k8s.io/v1", "NetworkPolicy"): "networkpolicies",
    ("autoscaling/v2", "HorizontalPodAutoscaler"): "horizontalpodautoscalers",
    ("keda.sh/v1alpha1", "ScaledObject"): "scaledobjects",
    ("coordination.k8s.io/v1", "Lease"): "leases",
    (GROUP_VERSION, "LLMBackend"): "llmbackends",
    (GROUP_VERSION, "Route"): "routes",
}

_APPLY = "application/apply-patch+yaml"
_MERGE = "application/merge-patch+json"
_DISCOVERY_TTL_S = 60.0
_UNSET: Any = object()


class KubeError(Exception):
    """A request the API server refused (``status`` is the HTTP code, ``reason`` the Status reason)."""

    def __init__(self, status: int, reason: str, message: str) -> None:
        super().__init__(f"{status} {reason}: {message}")
        self.status, self.reason, self.message = status, reason, message


@dataclass(frozen=True)
class Applied:
    """What ``apply`` did to one object."""

    action: Literal["created", "updated", "unchanged"]
    obj: Obj


def ref_of(obj: Mapping[str, Any]) -> tuple[str, str, str | None, str]:
    """(apiVersion, kind, namespace, name) of a manifest or object."""
    meta = obj.get("metadata") or {}
    return str(obj["apiVersion"]), str(obj["kind"]), meta.get("namespace"), str(meta["name"])


def _error(exc: ApiException) -> KubeError:
    body = exc.body.decode(errors="replace") if isinstance(exc.body, bytes) else str(exc.body or "")
    try:
        status = json.loads(body)
    except ValueError:
        status = {}
    if not isinstance(status, dict):
        status = {}
    reason = str(status.get("reason") or exc.reason or "")
    return KubeError(int(exc.status or 0), reason, str(status.get("message") or body[:500]))


class Kube:
    """Async requests to one API server; ``close`` when done."""

    def __init__(self, configuration: Configuration, *, timeout_s: float = 30.0) -> None:
        self._api = ApiClient(configuration)
        self._api.user_agent = USER_AGENT
        self._timeout_s = timeout_s
        self._served: dict[str, tuple[float, frozenset[str]]] = {}

    async def close(self) -> None:
        await self._api.close()

    # --- URLs and requests ----------------------------------------------------------------------------------

    @staticmethod
    def path(
        api_version: str, kind: str, namespace: str | None, name: str | None = None, sub: str | None = None
    ) -> str:
        plural = PLURALS[(api_version, kind)]
        parts = [f"/api/{api_version}" if "/" not in api_version else f"/apis/{api_version}"]
        if namespace:
            parts.append(f"namespaces/{namespace}")
        parts.append(plural)
        if name:
            parts.append(name)
        if sub:
            parts.append(sub)
        return "/".join(parts)

    async def _request(
        self,
        method: str,
        path: str,
        *,
        body: Any = None,
        content_type: str = "application/json",
        query: list[tuple[str, str]] | None = None,
    ) -> Obj | None:
        try:
            data = await self._api.call_api(
                path,
                method,
                query_params=query or [],
                header_params={"Accept": "application/json", "Content-Type": content_type},
                body=body,
                response_types_map={200: "object", 201: "object", 202: "object"},
                auth_settings=["BearerToken"],
                _return_http_data_only=True,
                _request_timeout=self._timeout_s,
            )
        except ApiException as exc:
            if exc.status == 404 and method in ("GET", "DELETE"):
                return None
            raise _error(exc) from exc
        return data if isinstance(data, dict) else None

    # --- verbs ------------------------------------------------------------------------------------------------

    async def get(self, api_version: str, kind: str, namespace: str | None, name: str) -> Obj | None:
        """The object, or None when it does not exist."""
        return await self._request("GET", self.path(api_version, kind, namespace, name))

    async def list(
        self, api_version: str, kind: str, namespace: str | None, *, labels: Mapping[str, str] | None = None
    ) -> list[Obj]:
        query = [("labelSelector", ",".join(f"{k}={v}" for k, v in labels.items()))] if labels else []
        data = await self._request("GET", self.path(api_version, kind, namespace), query=query)
        items: list[Obj] = (data or {}).get("items") or []
        for item in items:  # list items carry no apiVersion/kind on a real server
            item.setdefault("apiVersion", api_version)
            item.setdefault("kind", kind)
        return items

    async def create(self, manifest: Obj) -> Obj:
        api_version, kind, namespace, _ = ref_of(manifest)
        query = [("fieldManager", FIELD_MANAGER)]
        created = await self._request("POST", self.path(api_version, kind, namespace), body=manifest, query=query)
        assert created is not None
        return created

    async def patch(
        self, api_version: str, kind: str, namespace: str | None, name: str, patch: Obj, *, sub: str | None = None
    ) -> Obj:
        """A JSON merge patch (the operator's status writes)."""
        path = self.path(api_version, kind, namespace, name, sub)
        query = [("fieldManager", FIELD_MANAGER)]
        patched = await self._request("PATCH", path, body=patch, content_type=_MERGE, query=query)
        assert patched is not None
        return patched

    async def server_side_apply(self, manifest: Obj, *, manager: str = FIELD_MANAGER, force: bool = True) -> Obj:
        """One server-side apply of ``manifest`` (creates the object when it is missing)."""
        api_version, kind, namespace, name = ref_of(manifest)
        query = [("fieldManager", manager)] + ([("force", "true")] if force else [])
        path = self.path(api_version, kind, namespace, name)
        applied = await self._request("PATCH", path, body=manifest, content_type=_APPLY, query=query)
        assert applied is not None
        return applied

    async def apply(self, desired: Obj, *, live: Obj | None = _UNSET) -> Applied:
        """Apply ``desired`` when ``drift.needs_apply`` says so; ``live`` saves the GET when the caller has it."""
        manifest = with_digest(desired)
        if live is _UNSET:
            api_version, kind, namespace, name = ref_of(desired)
            live = await self.get(api_version, kind, namespace, name)
        if not needs_apply(live, manifest):
            assert live is not None
            return Applied("unchanged", live)
        obj = await self.server_side_apply(manifest)
        return Applied("created" if live is None else "updated", obj)

    async def delete(self, api_version: str, kind: str, namespace: str | None, name: str) -> bool:
        """Delete with background propagation; False when it was already gone."""
        found = await self._request(
            "DELETE",
            self.path(api_version, kind, namespace, name),
            body={"kind": "DeleteOptions", "apiVersion": "v1", "propagationPolicy": "Background"},
        )
        return found is not None

    async def serves(self, api_version: str, kind: str) -> bool:
        """Whether the API server serves ``kind`` (a CRD such as KEDA's ScaledObject is installed); cached 60 s."""
        now = time.monotonic()
        cached = self._served.get(api_version)
        if cached is None or now - cached[0] > _DISCOVERY_TTL_S:
            path = f"/apis/{api_version}" if "/" in api_version else f"/api/{api_version}"
            data = await self._request("GET", path)
            kinds = frozenset(str(r.get("kind")) for r in (data or {}).get("resources") or [] if "/" not in r["name"])
            cached = self._served[api_version] = (now, kinds)
        return kind in cached[1]
