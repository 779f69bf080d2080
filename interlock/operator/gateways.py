"""Reconcile one gateway, keyed by (namespace, ``Route.spec.gateway``): compile, apply its children, route status.

The source of truth is the API server: each run lists the namespace's Routes and LLMBackends, compiles exactly what
``compile_config`` makes of the valid ones (the ConfigMap's content), applies the ConfigMap, Deployment, Service and
PodDisruptionBudget with an owner reference to every Route of the gateway (the children go when the last Route
does), and writes each Route's status once. A gateway with no Routes left has its children deleted.

Objects being deleted (``deletionTimestamp`` set) count as gone, so a delete handler can wait for a run that no
longer serves them before it releases the finalizer.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any, NamedTuple

from interlock.gatewayconfig.compile import compile_config
from interlock.gatewayconfig.model import GatewayConfig
from interlock.operator.builders import gateway_config_map, gateway_deployment, gateway_pdb, gateway_service
from interlock.operator.checks import BackendView, route_checks
from interlock.operator.naming import gateway_object_name
from interlock.operator.reconcile import Context, owned_by, write_status
from interlock.operator.status import invalid_status, ready_condition, route_status
from interlock.operator.validation import parse_backend, parse_route
from interlock.resources.common import GROUP_VERSION
from interlock.resources.llmbackend import LLMBackend
from interlock.resources.route import Route

__all__ = ["GatewayKey", "gateway_of", "reconcile_gateway"]

Obj = dict[str, Any]

_DNS_LABEL = re.compile(r"[a-z0-9]([-a-z0-9]*[a-z0-9])?")
_CHILD_KINDS = (("v1", "ConfigMap"), ("apps/v1", "Deployment"), ("v1", "Service"), ("policy/v1", "PodDisruptionBudget"))


class GatewayKey(NamedTuple):
    namespace: str
    gateway: str


def gateway_of(body: Mapping[str, Any]) -> str | None:
    """The gateway a Route object names (``default`` when unset), or None when the name is unusable."""
    spec = body.get("spec")
    gateway = spec.get("gateway", "default") if isinstance(spec, Mapping) else "default"
    if isinstance(gateway, str) and len(gateway) <= 63 and _DNS_LABEL.fullmatch(gateway):
        return gateway
    return None


def _live(objs: list[Obj]) -> list[Obj]:
    return [o for o in objs if not (o.get("metadata") or {}).get("deletionTimestamp")]


def _name(obj: Mapping[str, Any]) -> str:
    return str((obj.get("metadata") or {}).get("name", ""))


async def _delete_children(ctx: Context, key: GatewayKey) -> None:
    name = gateway_object_name(key.gateway)
    for api_version, kind in _CHILD_KINDS:
        if await ctx.kube.delete(api_version, kind, key.namespace, name):
            ref = {"apiVersion": api_version, "kind": kind, "metadata": {"name": name, "namespace": key.namespace}}
            ctx.events(ref, "Normal", "Deleted", f"gateway {key.gateway!r} has no routes left: {kind} deleted")


async def _apply_children(ctx: Context, key: GatewayKey, config: GatewayConfig, owners: list[Obj]) -> None:
    ns, gw = key
    children = [
        gateway_config_map(ns, gw, config),
        gateway_deployment(ns, gw, config, ctx.settings),
        gateway_service(ns, gw, ctx.settings),
        gateway_pdb(ns, gw),
    ]
    for child in children:
        for owner in owners:
            owned_by(child, owner, controller=False)
        applied = await ctx.kube.apply(child)
        if applied.action == "unchanged":
            continue
        what = f"{child['kind']} {applied.action}"
        if child["kind"] == "ConfigMap":
            what += f": config {config.version}, {len(config.routes)} routes, {len(config.rejected)} left out"
        ctx.events(applied.obj, "Normal", applied.action.capitalize(), what)


async def reconcile_gateway(ctx: Context, key: GatewayKey) -> bool:
    """One run for one gateway: children applied (or deleted when no Route is left), Route statuses written.

    False when the gateway has no Routes (and so no children) any more.
    """
    ns = key.namespace
    route_objs = [r for r in _live(await ctx.kube.list(GROUP_VERSION, "Route", ns)) if gateway_of(r) == key.gateway]
    backend_objs = _live(await ctx.kube.list(GROUP_VERSION, "LLMBackend", ns))
    if not route_objs:
        await _delete_children(ctx, key)
        return False
    views: dict[str, BackendView] = {}
    backends: list[LLMBackend] = []
    for obj in backend_objs:
        parsed_backend = parse_backend(obj)
        views[_name(obj)] = BackendView(parsed_backend.model, ready_condition(obj.get("status")))
        if parsed_backend.model is not None:
            backends.append(parsed_backend.model)
    parsed_routes = [(obj, parse_route(obj)) for obj in sorted(route_objs, key=_name)]
    routes: list[Route] = [p.model for _, p in parsed_routes if p.model is not None]
    config = compile_config(backends, routes, namespace=ns, gateway=key.gateway)
    await _apply_children(ctx, key, config, [obj for obj, _ in parsed_routes])
    for obj, parsed in parsed_routes:
        meta = obj.get("metadata") or {}
        current = obj.get("status") if isinstance(obj.get("status"), Mapping) else None
        if parsed.model is None:
            status = invalid_status(
                current=current, generation=meta.get("generation"), message=parsed.error or "invalid spec",
                leaf="Accepted",
            )  # fmt: skip
        else:
            accepted, resolved, published = route_checks(parsed.model, views, config)
            status = route_status(
                current=current, generation=meta.get("generation"), accepted=accepted, backends=resolved,
                published=published,
            )  # fmt: skip
        await write_status(ctx, obj, status)
    return True
