"""What a gateway's pods have loaded: the operator reads each ready pod's ``/readyz`` on its ops port.

The gateway never talks to the Kubernetes API (it needs no service account token); it reports its loaded
``config_version`` on the ops port, which the kubelet already probes. The operator finds the gateway's ready pods
through the API (``list pods`` by the gateway's selector) and asks each one, with a short timeout and a bounded
read: a Route is ``Published`` once a ready pod of an available gateway Deployment runs a config that contains the
Route as it is now. ``ConfigHistory`` remembers the recent configs the operator wrote per gateway (version -> routes),
so a pod still on the previous version counts for the routes that version already had, and a change to one route
does not make the others flap while the kubelet syncs the ConfigMap (up to a minute or two in a real cluster).
"""

from __future__ import annotations

import asyncio
import ipaddress
import json
from collections import OrderedDict
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

import httpx

from interlock.gatewayconfig.model import GatewayConfig, RouteConfig

__all__ = ["ConfigHistory", "GatewayPods", "GatewayProbe", "ops_url", "pod_ready"]

_MAX_BODY = 64 * 1024
_HISTORY = 32


def pod_ready(pod: Mapping[str, Any]) -> bool:
    """A running pod whose Ready condition is True and that is not being deleted."""
    if (pod.get("metadata") or {}).get("deletionTimestamp"):
        return False
    status = pod.get("status") or {}
    return any(c.get("type") == "Ready" and c.get("status") == "True" for c in status.get("conditions") or [])


def ops_url(pod: Mapping[str, Any], path: str = "/readyz") -> str | None:
    """``http://<podIP>:<the container port named ops><path>``, or None when the pod has neither."""
    ip = (pod.get("status") or {}).get("podIP")
    port = next(
        (
            p.get("containerPort")
            for c in (pod.get("spec") or {}).get("containers") or []
            for p in c.get("ports") or []
            if p.get("name") == "ops"
        ),
        None,
    )
    if not ip or not isinstance(port, int):
        return None
    host = f"[{ip}]" if isinstance(ipaddress.ip_address(ip), ipaddress.IPv6Address) else ip
    return f"http://{host}:{port}{path}"


@dataclass(frozen=True)
class GatewayPods:
    """The gateway's pods as the operator saw them: how many are ready, and the config each ready one reported."""

    ready: int = 0
    versions: dict[str, str] = field(default_factory=dict)
    errors: dict[str, str] = field(default_factory=dict)


class GatewayProbe:
    """Reads ``config_version`` from gateway pods' ``/readyz`` (200 when ready, 503 otherwise: both say it)."""

    def __init__(self, *, timeout_s: float = 2.0) -> None:
        self._http = httpx.AsyncClient(
            timeout=timeout_s, trust_env=False, limits=httpx.Limits(max_connections=32, max_keepalive_connections=0)
        )

    async def close(self) -> None:
        await self._http.aclose()

    async def _version(self, url: str) -> str:
        async with self._http.stream("GET", url) as response:
            body = b""
            async for chunk in response.aiter_bytes():
                body += chunk
                if len(body) > _MAX_BODY:
                    raise ValueError(f"/readyz answered more than {_MAX_BODY} bytes")
        data = json.loads(body)
        version = data.get("config_version") if isinstance(data, dict) else None
        if not isinstance(version, str):
            raise ValueError(f"/readyz answered {response.status_code} without a config_version")
        return version

    async def read(self, pods: Iterable[Mapping[str, Any]]) -> GatewayPods:
        ready = [p for p in pods if pod_ready(p)]
        names = [str(p["metadata"]["name"]) for p in ready]
        urls = [ops_url(p) for p in ready]

        async def one(url: str | None) -> str | BaseException:
            if url is None:
                return ValueError("the pod has no IP or no container port named ops")
            try:
                return await self._version(url)
            except (httpx.HTTPError, ValueError, OSError) as exc:
                return exc

        results = await asyncio.gather(*(one(u) for u in urls))
        out = GatewayPods(ready=len(ready))
        for name, result in zip(names, results, strict=True):
            if isinstance(result, str):
                out.versions[name] = result
            else:
                out.errors[name] = f"{type(result).__name__}: {result}"[:200]
        return out


class ConfigHistory:
    """The last configs written per gateway, by version: which routes (as compiled) each one served."""

    def __init__(self, size: int = _HISTORY) -> None:
        self._size = size
        self._by_gateway: dict[Any, OrderedDict[str, dict[str, RouteConfig]]] = {}

    def record(self, gateway: Any, config: GatewayConfig) -> None:
        versions = self._by_gateway.setdefault(gateway, OrderedDict())
        versions[config.version] = {r.name: r for r in config.routes.values()}
        versions.move_to_end(config.version)
        while len(versions) > self._size:
            versions.popitem(last=False)

    def loaded(self, gateway: Any, versions: Iterable[str], current: GatewayConfig) -> set[str]:
        """Names of the current config's routes that some loaded version serves exactly as compiled now."""
        known = self._by_gateway.get(gateway, OrderedDict())
        wanted = {r.name: r for r in current.routes.values()}
        out: set[str] = set()
        for version in set(versions):
            if version == current.version:
                return set(wanted)
            routes = known.get(version) or {}
            out |= {name for name, route in wanted.items() if routes.get(name) == route}
        return out
