"""A small async Kubernetes client for the operator's own reads and writes, and idempotent apply.

kopf talks to the API server for watching and for its own bookkeeping; everything the operator decides to write
(children, status) goes through ``Kube``: httpx on the credentials the official ``kubernetes`` client loaded (its
``Configuration``, so kubeconfig auth plugins and the rotating in-cluster token are honoured on every request).

``Kube.apply`` is create-or-patch, never create-only: a missing child is created, a child that no longer contains
the desired manifest (someone edited or deleted part of it) is merge-patched back, and one that does is left alone,
so a steady-state resync costs one GET per child and writes nothing.
"""

from __future__ import annotations

import ssl
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Literal

import httpx
from kubernetes.client import Configuration

from interlock.operator.naming import USER_AGENT
from interlock.resources.common import GROUP_VERSION

__all__ = ["PLURALS", "Applied", "Kube", "KubeError", "contains", "ref_of"]

Obj = dict[str, Any]

PLURALS: dict[tuple[str, str], str] = {
    ("v1", "ConfigMap"): "configmaps",
    ("v1", "Secret"): "secrets",
    ("v1", "Service"): "services",
    ("v1", "PersistentVolumeClaim"): "persistentvolumeclaims",
    ("apps/v1", "Deployment"): "deployments",
    ("policy/v1", "PodDisruptionBudget"): "poddisruptionbudgets",
    (GROUP_VERSION, "LLMBackend"): "llmbackends",
    (GROUP_VERSION, "Route"): "routes",
}

_MERGE = "application/merge-patch+json"


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


def contains(actual: Any, wanted: Any) -> bool:
    """Whether ``actual`` has every field of ``wanted`` with the same value; lists must match item by item.

    Fields the API server adds (defaults, status, clusterIP) are not drift; a changed or removed field is.
    """
    if isinstance(wanted, Mapping):
        return isinstance(actual, Mapping) and all(k in actual and contains(actual[k], v) for k, v in wanted.items())
    if isinstance(wanted, list):
        return isinstance(actual, list) and len(actual) == len(wanted) and all(map(contains, actual, wanted))
    return bool(actual == wanted)


def ref_of(obj: Mapping[str, Any]) -> tuple[str, str, str | None, str]:
    """(apiVersion, kind, namespace, name) of a manifest or object."""
    meta = obj.get("metadata") or {}
    return str(obj["apiVersion"]), str(obj["kind"]), meta.get("namespace"), str(meta["name"])


def _verify(configuration: Configuration) -> ssl.SSLContext | bool:
    if not configuration.verify_ssl:
        return False
    context = ssl.create_default_context(cafile=configuration.ssl_ca_cert or None)
    if configuration.cert_file:
        context.load_cert_chain(configuration.cert_file, configuration.key_file or None)
    return context


class Kube:
    """Async requests to one API server; ``close`` when done."""

    def __init__(
        self,
        configuration: Configuration,
        *,
        timeout_s: float = 30.0,
        transport: httpx.AsyncBaseTransport | None = None,
    ) -> None:
        self._configuration = configuration
        self._http = httpx.AsyncClient(
            base_url=str(configuration.host).rstrip("/"),
            verify=_verify(configuration) if transport is None else True,
            timeout=timeout_s,
            headers={"User-Agent": USER_AGENT, "Accept": "application/json"},
            transport=transport,
            trust_env=False,
        )

    async def close(self) -> None:
        await self._http.aclose()

    # --- URLs and requests ----------------------------------------------------------------------------------

    @staticmethod
    def path(
        api_version: str, kind: str, namespace: str | None, name: str | None = None, sub: str | None = None
    ) -> str:
        plural = PLURALS[(api_version, kind)]
        base = f"/api/{api_version}" if "/" not in api_version else f"/apis/{api_version}"
        parts = [base]
        if namespace:
            parts.append(f"namespaces/{namespace}")
        parts.append(plural)
        if name:
            parts.append(name)
        if sub:
            parts.append(sub)
        return "/".join(parts)

    def _auth(self) -> dict[str, str]:
        # Asked on every request: the kubernetes client's refresh hook re-reads rotated service-account tokens.
        cfg = self._configuration
        header = cfg.get_api_key_with_prefix("BearerToken") or cfg.get_api_key_with_prefix("authorization")
        if not header:
            return {}
        return {"Authorization": header if " " in header else f"Bearer {header}"}

    async def _request(
        self,
        method: str,
        path: str,
        *,
        body: Any = None,
        content_type: str = "application/json",
        params: Mapping[str, str] | None = None,
    ) -> Obj | None:
        headers = self._auth()
        if body is not None:
            headers["Content-Type"] = content_type
        response = await self._http.request(method, path, json=body, headers=headers, params=params)
        if response.status_code == 404 and method in ("GET", "DELETE"):
            return None
        if response.status_code >= 400:
            try:
                status = response.json()
            except ValueError:
                status = {}
            reason = str(status.get("reason") or response.reason_phrase)
            raise KubeError(response.status_code, reason, str(status.get("message") or response.text[:500]))
        data: Obj = response.json()
        return data

    # --- verbs ------------------------------------------------------------------------------------------------

    async def get(self, api_version: str, kind: str, namespace: str | None, name: str) -> Obj | None:
        """The object, or None when it does not exist."""
        return await self._request("GET", self.path(api_version, kind, namespace, name))

    async def list(self, api_version: str, kind: str, namespace: str | None) -> list[Obj]:
        data = await self._request("GET", self.path(api_version, kind, namespace))
        items: list[Obj] = (data or {}).get("items") or []
        for item in items:  # list items carry no apiVersion/kind on a real server
            item.setdefault("apiVersion", api_version)
            item.setdefault("kind", kind)
        return items

    async def create(self, manifest: Obj) -> Obj:
        api_version, kind, namespace, _ = ref_of(manifest)
        created = await self._request("POST", self.path(api_version, kind, namespace), body=manifest)
        assert created is not None
        return created

    async def patch(
        self, api_version: str, kind: str, namespace: str | None, name: str, patch: Obj, *, sub: str | None = None
    ) -> Obj:
        """A JSON merge patch (lists are replaced as a whole: the operator owns the lists it writes)."""
        patched = await self._request(
            "PATCH", self.path(api_version, kind, namespace, name, sub), body=patch, content_type=_MERGE
        )
        assert patched is not None
        return patched

    async def delete(self, api_version: str, kind: str, namespace: str | None, name: str) -> bool:
        """Delete with background propagation; False when it was already gone."""
        found = await self._request(
            "DELETE",
            self.path(api_version, kind, namespace, name),
            body={"kind": "DeleteOptions", "apiVersion": "v1", "propagationPolicy": "Background"},
        )
        return found is not None

    async def apply(self, desired: Obj) -> Applied:
        """Create ``desired`` or patch the live object back to it; idempotent."""
        api_version, kind, namespace, name = ref_of(desired)
        current = await self.get(api_version, kind, namespace, name)
        if current is None:
            try:
                return Applied("created", await self.create(desired))
            except KubeError as exc:
                if exc.status != 409:
                    raise
                current = await self.get(api_version, kind, namespace, name)  # lost a race: patch it instead
                if current is None:
                    raise
        if contains(current, desired):
            return Applied("unchanged", current)
        return Applied("updated", await self.patch(api_version, kind, namespace, name, desired))
