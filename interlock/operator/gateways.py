"""Reconcile one gateway, keyed by (namespace, ``Route.spec.gateway``): compile, apply its children, route status.

The source of truth is the API server: each run lists the namespace's Routes and LLMBackends, compiles exactly what
``compile_config`` makes of the valid ones (the ConfigMap's content), applies the ConfigMap, Deployment, Service,
PodDisruptionBudget and (with a signing key) the gateway's control-plane credential Secret, each with an owner
reference to every Route of the gateway (the children go when the last Route does), and writes each Route's status
once. A gateway with no Routes left has its children deleted.

A Route is Ready only when the gateway serves it: the Deployment has available pods and a ready pod reports
(``probe``) a loaded config that contains the Route as it is now. Until the pods have loaded it, the run asks for
another run shortly after (``Context.recheck``).

Objects being deleted (``deletionTimestamp`` set) count as gone, so a delete handler can wait for a run that no
longer serves them before it releases the finalizer.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any, NamedTuple

from interlock.contract.gatewaycred import mint_gateway_credential
from interlock.gatewayconfig.compile import compile_config
from interlock.gatewayconfig.model import GatewayConfig
from interlock.operator.builders import (
    control_plane_secret,
    gateway_config_map,
    gateway_deployment,
    gateway_hpa,
    gateway_pdb,
    gateway_selector,
    gateway_service,
)
from interlock.operator.checks import BackendView, GatewayView, route_checks
from interlock.operator.naming import control_plane_secret_name, gateway_object_name, snapshot_secret_name
from interlock.operator.probe import GatewayPods
from interlock.operator.reconcile import Context, apply_deployment, owned_by, write_status
from interlock.operator.status import Check, invalid_status, ready_condition, route_status
from interlock.operator.validation import parse_backend, parse_route
from interlock.resources.common import GROUP_VERSION
from interlock.resources.llmbackend import LLMBackend
from interlock.resources.route import Route

__all__ = ["GatewayKey", "gateway_of", "reconcile_gateway"]

Obj = dict[str, Any]

_DNS_LABEL = re.compile(r"[a-z0-9]([-a-z0-9]*[a-z0-9])?")
_CHILD_KINDS = (
    ("v1", "ConfigMap"),
    ("apps/v1", "Deployment"),
    ("v1", "Service"),
    ("policy/v1", "PodDisruptionBudget"),
    ("autoscaling/v2", "HorizontalPodAutoscaler"),
)
RECHECK_DELAY_S = 1.0


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
    children = [(api_version, kind, name) for api_version, kind in _CHILD_KINDS]
    children.append(("v1", "Secret", control_plane_secret_name(key.gateway)))
    children.append(("v1", "Secret", snapshot_secret_name(key.gateway)))
    for api_version, kind, child in children:
        if await ctx.kube.get(api_version, kind, key.namespace, child) is None:
            continue
        if await ctx.kube.delete(api_version, kind, key.namespace, child):
            ref = {"apiVersion": api_version, "kind": kind, "metadata": {"name": child, "namespace": key.namespace}}
            ctx.events(ref, "Normal", "Deleted", f"gateway {key.gateway!r} has no routes left: {kind} deleted")


async def _apply_children(ctx: Context, key: GatewayKey, config: GatewayConfig, owners: list[Obj]) -> Obj:
    """Apply the children; return the gateway Deployment as the API server has it."""
    ns, gw = key
    children = [
        gateway_config_map(ns, gw, config),
        gateway_deployment(ns, gw, config, ctx.settings),
        gateway_service(ns, gw, ctx.settings),
        gateway_pdb(ns, gw),
    ]
    if ctx.settings.gateway_signing_key is not None:
        signing_key = ctx.settings.gateway_signing_key.get_secret_value().encode()
        children.append(control_plane_secret(ns, gw, mint_gateway_credential(signing_key, f"{ns}/{gw}")))
    hpa = gateway_hpa(ns, gw, ctx.settings)
    if hpa is not None:
        children.append(hpa)
    elif key not in ctx.hpa_checked:  # autoscaling turned off since the last operator: remove its HPA
        ctx.hpa_checked.add(key)
        name = gateway_object_name(gw)
        if await ctx.kube.get("autoscaling/v2", "HorizontalPodAutoscaler", ns, name) is not None:
            await ctx.kube.delete("autoscaling/v2", "HorizontalPodAutoscaler", ns, name)
    deployment: Obj = {}
    for child in children:
        for owner in owners:
            owned_by(child, owner, controller=False)
        applied = await (apply_deployment(ctx, child) if child["kind"] == "Deployment" else ctx.kube.apply(child))
        if child["kind"] == "Deployment":
            deployment = applied.obj
        if applied.action == "unchanged":
            continue
        what = f"{child['kind']} {applied.action}"
        if child["kind"] == "ConfigMap":
            what += f": config {config.version}, {len(config.routes)} routes, {len(config.rejected)} left out"
        ctx.events(applied.obj, "Normal", applied.action.capitalize(), what)
    return deployment


async def _gateway_view(ctx: Context, key: GatewayKey, config: GatewayConfig, deployment: Obj) -> GatewayView:
    """Whether the gateway is available, and which routes its ready pods run (as compiled now)."""
    ctx.history.record(key, config)
    status = deployment.get("status") or {}
    available, wanted = int(status.get("availableReplicas") or 0), (deployment.get("spec") or {}).get("replicas", 1)
    if available == 0:
        message = f"gateway {key.gateway} has no available pod (0/{wanted}): it cannot serve this route"
        return GatewayView(Check(False, "GatewayUnavailable", message), frozenset())
    pods = GatewayPods()
    if ctx.probe is not None:
        listed = await ctx.kube.list("v1", "Pod", key.namespace, labels=gateway_selector(key.gateway))
        pods = await ctx.probe.read(listed)
    loaded = ctx.history.loaded(key, pods.versions.values(), config)
    running = ", ".join(sorted(set(pods.versions.values()))) or "none reported"
    pending = f"ready pods run {running}" + (f"; unreachable: {len(pods.errors)}" if pods.errors else "")
    return GatewayView(Check(True, "GatewayAvailable", f"{available}/{wanted} available"), frozenset(loaded), pending)


async def reconcile_gateway(ctx: Context, key: GatewayKey) -> bool:
    """One run for one gateway: children applied (or deleted when no Route is left), Route statuses written.

    False when the gateway has no Routes (and so no children) any more.
    """
    ns = key.namespace
    route_objs = [r for r in _live(await ctx.kube.list(GROUP_VERSION, "Route", ns)) if gateway_of(r) == key.gateway]
    if not route_objs:
        await _delete_children(ctx, key)
        return False
    backend_objs = _live(await ctx.kube.list(GROUP_VERSION, "LLMBackend", ns))
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
    deployment = await _apply_children(ctx, key, config, [obj for obj, _ in parsed_routes])
    if ctx.snapshots is not None:
        await ctx.snapshots.refresh(ctx, key, [obj for obj, _ in parsed_routes])
    view = await _gateway_view(ctx, key, config, deployment)
    waiting = False
    for obj, parsed in parsed_routes:
        meta = obj.get("metadata") or {}
        current = obj.get("status") if isinstance(obj.get("status"), Mapping) else None
        if parsed.model is None:
            status = invalid_status(
                current=current, generation=meta.get("generation"), message=parsed.error or "invalid spec",
                leaf="Accepted",
            )  # fmt: skip
        else:
            accepted, resolved, published = route_checks(parsed.model, views, config, view)
            waiting |= published.reason == "ConfigNotLoaded"
            status = route_status(
                current=current, generation=meta.get("generation"), accepted=accepted, backends=resolved,
                published=published,
            )  # fmt: skip
        await write_status(ctx, obj, status)
    if waiting:
        ctx.recheck(key, RECHECK_DELAY_S)
    return True
