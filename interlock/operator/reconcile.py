"""Reconcile one ``LLMBackend``: its inference workload (self-hosted), its checks, and its status, written once.

The handlers call these; they read and write through ``Kube`` and tell what changed through ``Context.events``.
An invalid spec is a status (``Ready=False``, ``InvalidSpec``, the bad value quoted), never an exception: kopf
would retry a spec that cannot get better. Children of a backend whose spec turned invalid are left as they were.
"""

from __future__ import annotations

import base64
import binascii
import logging
import secrets
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import kopf

from interlock.gatewayconfig.compile import self_hosted_url
from interlock.operator.builders import (
    engine_key_secret,
    inference_deployment,
    inference_hpa,
    inference_network_policy,
    inference_pods_service,
    inference_scaled_object,
    inference_selector,
    inference_service,
    model_cache_claim,
    selector_text,
)
from interlock.operator.checks import credentials_check, workload_check
from interlock.operator.k8s import Applied, Kube, KubeError, ref_of
from interlock.operator.naming import ENGINE_KEY_KEY, FIELD_MANAGER, HANDOVER_MANAGER, engine_key_name, model_cache_name
from interlock.operator.probe import ConfigHistory, GatewayProbe
from interlock.operator.settings import OperatorSettings
from interlock.operator.status import Check, backend_status, invalid_status, ready_condition, status_patch
from interlock.operator.validation import parse_backend
from interlock.resources.llmbackend import LLMBackend

if TYPE_CHECKING:
    from interlock.operator.snapshots import SnapshotMirror

__all__ = [
    "Context",
    "EventSink",
    "apply_deployment",
    "delete_inference",
    "kopf_events",
    "owned_by",
    "reconcile_backend",
    "write_status",
]

log = logging.getLogger("interlock.operator")

Obj = dict[str, Any]
EventSink = Callable[[Mapping[str, Any], str, str, str], None]
"""``(object, type, reason, message)``: a Kubernetes event about ``object`` (Normal or Warning)."""

_HPA = ("autoscaling/v2", "HorizontalPodAutoscaler")
_KEDA = ("keda.sh/v1alpha1", "ScaledObject")


def kopf_events(obj: Mapping[str, Any], type_: str, reason: str, message: str) -> None:
    """Post through kopf's event poster (batched, retried, truncated to the API's limits)."""
    try:
        kopf.event(dict(obj), type=type_, reason=reason, message=message)  # type: ignore[arg-type]
    except LookupError:  # outside a running operator (unit tests): nothing to post with
        log.debug("event %s %s: %s", type_, reason, message)


def _no_recheck(key: Any, delay: float) -> None:
    return None


@dataclass
class Context:
    """What every reconcile needs; one per running operator."""

    kube: Kube
    settings: OperatorSettings
    events: EventSink = kopf_events
    probe: GatewayProbe | None = None
    history: ConfigHistory = field(default_factory=ConfigHistory)
    recheck: Callable[[Any, float], None] = _no_recheck
    """Ask for another run of a gateway after a delay (its pods have not loaded the latest config yet)."""
    snapshots: SnapshotMirror | None = None
    hpa_checked: set[Any] = field(default_factory=set)
    """Gateways whose leftover HPA (from an operator that autoscaled them) was looked for, once per process."""


def owned_by(manifest: Obj, owner: Mapping[str, Any], *, controller: bool = True) -> Obj:
    """``manifest`` with an owner reference to ``owner`` appended (kopf's own helper, so the shape is kopf's)."""
    kopf.append_owner_reference(manifest, owner=owner, controller=controller, block_owner_deletion=True)  # type: ignore[arg-type]
    return manifest


def _report(ctx: Context, owner: Mapping[str, Any], applied: Applied) -> None:
    if applied.action == "unchanged":
        return
    _, kind, _, name = ref_of(applied.obj)
    ctx.events(owner, "Normal", applied.action.capitalize(), f"{kind} {name} {applied.action}")


async def write_status(ctx: Context, body: Mapping[str, Any], status: Obj) -> bool:
    """Merge-patch the status subresource when it differs; post an event when ``Ready`` changed. True if written."""
    current = body.get("status")
    patch = status_patch(current if isinstance(current, Mapping) else None, status)
    if patch is None:
        return False
    api_version, kind, namespace, name = ref_of(body)
    await ctx.kube.patch(api_version, kind, namespace, name, {"status": patch}, sub="status")
    before, after = ready_condition(current if isinstance(current, Mapping) else None), ready_condition(status)
    if after is not None and (before is None or (before.ok, before.reason) != (after.ok, after.reason)):
        ctx.events(body, "Normal" if after.ok else "Warning", after.reason, after.message)
    return True


def _owns_replicas(deployment: Mapping[str, Any]) -> bool:
    """Whether the operator's own apply owns ``spec.replicas`` (from the object's managedFields)."""
    for entry in (deployment.get("metadata") or {}).get("managedFields") or []:
        spec = (entry.get("fieldsV1") or {}).get("f:spec") or {}
        if entry.get("manager") == FIELD_MANAGER and entry.get("operation") == "Apply" and "f:replicas" in spec:
            return True
    return False


async def apply_deployment(ctx: Context, desired: Obj) -> Applied:
    """Apply a Deployment; one whose ``replicas`` an autoscaler takes over (``desired`` has none, the live one is
    the operator's) is handed over first, as the server-side apply documentation describes: another field manager
    keeps the current value, so the operator's apply without replicas does not reset the field to its default 1."""
    api_version, kind, namespace, name = ref_of(desired)
    live = await ctx.kube.get(api_version, kind, namespace, name)
    if "replicas" not in desired["spec"] and live is not None and _owns_replicas(live):
        replicas = int((live.get("spec") or {}).get("replicas") or 1)
        handover = {"apiVersion": api_version, "kind": kind, "metadata": {"name": name, "namespace": namespace},
                    "spec": {"replicas": replicas}}  # fmt: skip
        await ctx.kube.server_side_apply(handover, manager=HANDOVER_MANAGER)
        return await ctx.kube.apply(desired)  # changed under us: read it again
    return await ctx.kube.apply(desired, live=live)


async def _engine_key(ctx: Context, body: Mapping[str, Any], backend: LLMBackend) -> None:
    """The engine's key Secret: generated once, then only kept (labels, owner) as it is."""
    ns = backend.metadata.namespace
    live = await ctx.kube.get("v1", "Secret", ns, engine_key_name(backend.metadata.name))
    key = None
    try:
        key = base64.b64decode(((live or {}).get("data") or {}).get(ENGINE_KEY_KEY, ""), validate=True).decode()
    except (binascii.Error, UnicodeDecodeError):
        key = None
    if not key:
        key = secrets.token_urlsafe(32)
    _report(ctx, body, await ctx.kube.apply(owned_by(engine_key_secret(backend, key), body), live=live))


async def _autoscaler(ctx: Context, body: Mapping[str, Any], backend: LLMBackend) -> None:
    """HPA or KEDA ScaledObject per ``serving.autoscaling``; the other (or both, when it is off) deleted."""
    serving = backend.spec.serving
    assert serving is not None
    ns, name = backend.metadata.namespace, backend.metadata.name
    keda_served = await ctx.kube.serves(*_KEDA)
    want: tuple[str, str] | None = None
    if serving.autoscaling is not None:
        url = ctx.settings.keda_prometheus_url
        want = _KEDA if keda_served and url else _HPA
        manifest = inference_scaled_object(backend, url) if want == _KEDA and url else inference_hpa(backend)
        _report(ctx, body, await ctx.kube.apply(owned_by(manifest, body)))
    for kind in (_HPA, _KEDA):
        if kind == want or (kind == _KEDA and not keda_served):
            continue
        if await ctx.kube.get(*kind, ns, name) is not None and await ctx.kube.delete(*kind, ns, name):
            ctx.events(body, "Normal", "Deleted", f"{kind[1]} {name} deleted")


async def _apply_inference(ctx: Context, body: Mapping[str, Any], backend: LLMBackend) -> tuple[Check, Obj]:
    serving = backend.spec.serving
    assert serving is not None
    namespace, name = backend.metadata.namespace, backend.metadata.name
    extra: Obj = {"selector": selector_text(backend)}
    try:
        await _engine_key(ctx, body, backend)
        claim_obj = None
        modes = None
        if serving.model_cache is not None:
            live_claim = await ctx.kube.get("v1", "PersistentVolumeClaim", namespace, model_cache_name(name))
            modes = ((live_claim or {}).get("spec") or {}).get("accessModes")  # immutable once created
            claim = model_cache_claim(backend, access_modes=modes)
            assert claim is not None
            applied = await ctx.kube.apply(owned_by(claim, body), live=live_claim)
            _report(ctx, body, applied)
            claim_obj = applied.obj
            modes = (claim_obj.get("spec") or {}).get("accessModes") or modes
        deployment = await apply_deployment(
            ctx, owned_by(inference_deployment(backend, ctx.settings, cache_modes=modes), body)
        )
        _report(ctx, body, deployment)
        _report(ctx, body, await ctx.kube.apply(owned_by(inference_service(backend), body)))
        _report(ctx, body, await ctx.kube.apply(owned_by(inference_pods_service(backend), body)))
        _report(ctx, body, await ctx.kube.apply(owned_by(inference_network_policy(backend, ctx.settings), body)))
        await _autoscaler(ctx, body, backend)
    except KubeError as exc:
        if exc.status not in (400, 403, 409, 422):
            raise
        # The API server refused a child (an immutable field, a quota, a policy): say so, retrying will not help.
        return Check(False, "WorkloadRejected", f"the API server refused the workload: {exc.message}"), extra
    status = deployment.obj.get("status") or {}
    extra["replicas"] = int(status.get("replicas") or 0)
    extra["readyReplicas"] = int(status.get("readyReplicas") or 0)
    check = workload_check(deployment.obj, autoscaled=serving.autoscaling is not None, claim=claim_obj)
    if not check.ok and check.reason == "PodsNotReady":
        pods = await ctx.kube.list("v1", "Pod", namespace, labels=inference_selector(backend))
        check = workload_check(deployment.obj, autoscaled=serving.autoscaling is not None, claim=claim_obj, pods=pods)
    return check, extra


async def delete_inference(ctx: Context, body: Mapping[str, Any]) -> None:
    """Delete a backend's inference children (deleted backend, or one that stopped being self-hosted)."""
    _, _, namespace, name = ref_of(body)
    children = [
        ("apps/v1", "Deployment", name),
        ("v1", "Service", name),
        ("networking.k8s.io/v1", "NetworkPolicy", name),
        ("v1", "PersistentVolumeClaim", model_cache_name(name)),
        ("v1", "Secret", engine_key_name(name)),
        (*_HPA, name),
    ]
    if await ctx.kube.serves(*_KEDA):
        children.append((*_KEDA, name))
    for api_version, kind, child in children:
        if await ctx.kube.get(api_version, kind, namespace, child) is None:
            continue
        if await ctx.kube.delete(api_version, kind, namespace, child):
            ctx.events(body, "Normal", "Deleted", f"{kind} {child} deleted")


async def reconcile_backend(ctx: Context, body: Mapping[str, Any]) -> bool:
    """Bring one backend's children and status up to date; True when its status changed."""
    meta = body.get("metadata") or {}
    generation = meta.get("generation")
    current = body.get("status") if isinstance(body.get("status"), Mapping) else None
    parsed = parse_backend(body)
    if parsed.model is None:
        message = parsed.error or "invalid spec"
        status = invalid_status(current=current, generation=generation, message=message)
        return await write_status(ctx, body, status)
    backend = parsed.model
    spec = backend.spec
    ref = spec.credentials_secret_ref
    secret = await ctx.kube.get("v1", "Secret", backend.metadata.namespace, ref.name) if ref else None
    credentials = credentials_check(ref, secret)
    del secret  # only its key names were looked at
    workload: Check | None = None
    extra: Obj = {}
    if spec.serving is not None:
        workload, extra = await _apply_inference(ctx, body, backend)
        url: str | None = self_hosted_url(backend.metadata.name, backend.metadata.namespace)
    else:
        url = str(spec.url).rstrip("/") if spec.url is not None else None
    status = backend_status(current=current, generation=generation, credentials=credentials, workload=workload,
                            url=url, extra=extra)  # fmt: skip
    return await write_status(ctx, body, status)
