"""Reconcile one ``LLMBackend``: its inference workload (self-hosted), its checks, and its status, written once.

The handlers call these; they read and write through ``Kube`` and tell what changed through ``Context.events``.
An invalid spec is a status (``Ready=False``, ``InvalidSpec``, the bad value quoted), never an exception: kopf
would retry a spec that cannot get better. Children of a backend whose spec turned invalid are left as they were.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

import kopf

from interlock.gatewayconfig.compile import self_hosted_url
from interlock.operator.builders import inference_deployment, inference_service, model_cache_claim
from interlock.operator.checks import credentials_check, workload_check
from interlock.operator.k8s import Applied, Kube, KubeError, ref_of
from interlock.operator.naming import model_cache_name
from interlock.operator.settings import OperatorSettings
from interlock.operator.status import Check, backend_status, invalid_status, ready_condition, status_patch
from interlock.operator.validation import parse_backend
from interlock.resources.llmbackend import LLMBackend

__all__ = [
    "Context",
    "EventSink",
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


def kopf_events(obj: Mapping[str, Any], type_: str, reason: str, message: str) -> None:
    """Post through kopf's event poster (batched, retried, truncated to the API's limits)."""
    try:
        kopf.event(dict(obj), type=type_, reason=reason, message=message)  # type: ignore[arg-type]
    except LookupError:  # outside a running operator (unit tests): nothing to post with
        log.debug("event %s %s: %s", type_, reason, message)


@dataclass
class Context:
    """What every reconcile needs; one per running operator."""

    kube: Kube
    settings: OperatorSettings
    events: EventSink = kopf_events


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


async def _apply_inference(ctx: Context, body: Mapping[str, Any], backend: LLMBackend) -> tuple[Check, int]:
    serving = backend.spec.serving
    assert serving is not None
    namespace, name = backend.metadata.namespace, backend.metadata.name
    try:
        if serving.model_cache is not None:
            existing = await ctx.kube.get("v1", "PersistentVolumeClaim", namespace, model_cache_name(name))
            modes = ((existing or {}).get("spec") or {}).get("accessModes")  # immutable once created
            claim = model_cache_claim(backend, access_modes=modes)
            assert claim is not None
            _report(ctx, body, await ctx.kube.apply(owned_by(claim, body)))
        deployment = await ctx.kube.apply(owned_by(inference_deployment(backend), body))
        _report(ctx, body, deployment)
        _report(ctx, body, await ctx.kube.apply(owned_by(inference_service(backend), body)))
    except KubeError as exc:
        if exc.status not in (400, 403, 422):
            raise
        # The API server refused a child (an immutable field, a quota, a policy): say so, retrying will not help.
        return Check(False, "WorkloadRejected", f"the API server refused the workload: {exc.message}"), 0
    return workload_check(deployment.obj, serving.replicas)


async def delete_inference(ctx: Context, body: Mapping[str, Any]) -> None:
    """Delete a backend's inference children (deleted backend, or one that stopped being self-hosted)."""
    _, _, namespace, name = ref_of(body)
    for api_version, kind, child in (
        ("apps/v1", "Deployment", name),
        ("v1", "Service", name),
        ("v1", "PersistentVolumeClaim", model_cache_name(name)),
    ):
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
    ready_replicas: int | None = None
    if spec.serving is not None:
        workload, ready_replicas = await _apply_inference(ctx, body, backend)
        url: str | None = self_hosted_url(backend.metadata.name, backend.metadata.namespace)
    else:
        url = str(spec.url).rstrip("/") if spec.url is not None else None
    status = backend_status(
        current=current,
        generation=generation,
        credentials=credentials,
        workload=workload,
        url=url,
        ready_replicas=ready_replicas,
    )
    return await write_status(ctx, body, status)
