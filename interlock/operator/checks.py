"""The leaf conditions, derived from what the API server holds (pure: objects in, ``Check`` out).

``LLMBackend``: ``CredentialsResolved`` (the Secret and its key exist; the value is never read into status or
logs) and ``WorkloadReady`` (the inference Deployment's real status). ``Route``: ``Accepted`` (its public model is
its own), ``BackendsResolved`` (every backend exists, is valid, serves the model and is Ready) and ``Published`` (it
is in its gateway's compiled config, the gateway Deployment has available pods, and a ready pod has loaded a
config that serves the route as it is now).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from interlock.gatewayconfig.model import GatewayConfig
from interlock.operator.status import Check
from interlock.resources.llmbackend import LLMBackend, SecretKeyRef
from interlock.resources.route import Route

__all__ = ["BackendView", "GatewayView", "credentials_check", "route_checks", "workload_check"]


def credentials_check(ref: SecretKeyRef | None, secret: Mapping[str, Any] | None) -> Check:
    """``secret`` is the live Secret (or None when it does not exist); only its key names are looked at."""
    if ref is None:
        return Check(True, "NoCredentials", "no credentialsSecretRef: requests go upstream without a key")
    if secret is None:
        return Check(False, "SecretNotFound", f"Secret {ref.name!r} not found")
    keys = set(secret.get("data") or {}) | set(secret.get("stringData") or {})
    if ref.key not in keys:
        have = ", ".join(sorted(map(repr, keys))) or "none"
        return Check(False, "SecretKeyNotFound", f"Secret {ref.name!r} has no key {ref.key!r} (keys: {have})")
    return Check(True, "SecretFound", f"key {ref.key!r} of Secret {ref.name!r} is mounted into the gateway")


def _conditions(obj: Mapping[str, Any] | None) -> dict[str, Mapping[str, Any]]:
    status = (obj or {}).get("status") or {}
    return {str(c.get("type")): c for c in status.get("conditions") or [] if isinstance(c, Mapping)}


def _unschedulable(pods: Sequence[Mapping[str, Any]]) -> str | None:
    for pod in pods:
        scheduled = _conditions(pod).get("PodScheduled") or {}
        if scheduled.get("status") == "False" and scheduled.get("reason") == "Unschedulable":
            return str(scheduled.get("message") or "no node fits the pod")
    return None


def workload_check(
    deployment: Mapping[str, Any] | None,
    *,
    autoscaled: bool = False,
    claim: Mapping[str, Any] | None = None,
    pods: Sequence[Mapping[str, Any]] | None = None,
) -> Check:
    """``WorkloadReady`` from the inference Deployment's status as its controller wrote it, and why not.

    Ready when the Deployment controller has seen the current generation, the rollout has not passed its progress
    deadline and pods are available (``Available``, or at least one available pod while a rollout or scale-up
    finishes: the gateway can send traffic). Not ready: a Pending model cache claim and pods no node can take
    (GPUs, most often) have their own reasons; ``pods`` (the backend's, listed only when needed) tells the latter.
    """
    if deployment is None:
        return Check(False, "DeploymentMissing", "the inference Deployment does not exist yet")
    meta, spec, status = deployment.get("metadata") or {}, deployment.get("spec") or {}, deployment.get("status") or {}
    replicas = spec.get("replicas", 1)
    available = int(status.get("availableReplicas") or 0)
    conditions = _conditions(deployment)
    progressing = conditions.get("Progressing") or {}
    generation, observed = meta.get("generation"), status.get("observedGeneration")
    if isinstance(generation, int) and (not isinstance(observed, int) or observed < generation):
        return Check(False, "RolloutPending", f"the Deployment controller has not observed generation {generation} yet")
    if progressing.get("status") == "False" and progressing.get("reason") == "ProgressDeadlineExceeded":
        return Check(False, "ProgressDeadlineExceeded", str(progressing.get("message") or "rollout stuck"))
    if replicas == 0 and not autoscaled:
        return Check(False, "ScaledToZero", "serving.replicas is 0: no inference pods run")
    if available > 0:
        return Check(True, "PodsReady", f"{available}/{replicas} inference pods available")
    if claim is not None and (claim.get("status") or {}).get("phase") == "Pending":
        name = (claim.get("metadata") or {}).get("name")
        storage_class = (claim.get("spec") or {}).get("storageClassName") or "the default"
        message = f"PersistentVolumeClaim {name} is Pending (StorageClass {storage_class})"
        return Check(False, "ModelCachePending", message)
    if pods and (why := _unschedulable(pods)):
        return Check(False, "Unschedulable", f"inference pods cannot be scheduled: {why}")
    return Check(False, "PodsNotReady", f"0/{replicas} inference pods available (loading weights can take minutes)")


@dataclass(frozen=True)
class BackendView:
    """What a route needs to know about one LLMBackend: its parsed spec (None if invalid) and its Ready."""

    model: LLMBackend | None
    ready: Check | None


def _target_problems(route: Route, backends: Mapping[str, BackendView]) -> list[Check]:
    problems: list[Check] = []
    for entry in [*route.spec.targets, *route.spec.fallbacks]:
        view = backends.get(entry.backend)
        name = repr(entry.backend)
        if view is None:
            problems.append(Check(False, "BackendNotFound", f"backend {name} does not exist"))
        elif view.model is None:
            problems.append(Check(False, "BackendInvalid", f"backend {name} has an invalid spec"))
        elif entry.model not in {m.name for m in view.model.spec.models}:
            problems.append(Check(False, "ModelNotServed", f"backend {name} does not serve model {entry.model!r}"))
        elif view.ready is None or not view.ready.ok:
            why = f"{view.ready.reason}: {view.ready.message}" if view.ready else "not reconciled yet"
            problems.append(Check(False, "BackendNotReady", f"backend {name} is not ready ({why})"))
    return problems


@dataclass(frozen=True)
class GatewayView:
    """What the gateway serving a route has done: whether it is available, and which routes its pods loaded."""

    available: Check
    loaded: frozenset[str]
    pending: str = ""
    """Why a route in the config is not loaded yet (the versions the pods run)."""


def route_checks(
    route: Route, backends: Mapping[str, BackendView], config: GatewayConfig, gateway_view: GatewayView | None = None
) -> tuple[Check, Check, Check]:
    """(Accepted, BackendsResolved, Published) of one valid route against its gateway's compiled config and what
    the gateway's pods run (``gateway_view``; None: the config alone decides)."""
    owner = config.routes.get(route.spec.model)
    if owner is not None and owner.name != route.name:
        message = f"model {route.spec.model!r} is already served by route {owner.name!r}"
        accepted = Check(False, "ModelConflict", message)
    else:
        accepted = Check(True, "Accepted", f"serves model {route.spec.model!r}")
    problems = _target_problems(route, backends)
    if problems:
        resolved = Check(False, problems[0].reason, "; ".join(p.message for p in problems))
    else:
        names = sorted({e.backend for e in [*route.spec.targets, *route.spec.fallbacks]})
        resolved = Check(True, "BackendsReady", f"backends ready: {', '.join(names)}")
    gateway = config.gateway
    if route.name in config.rejected:
        published = Check(False, "NotPublished", f"left out of gateway {gateway}: {config.rejected[route.name]}")
    elif owner is not None and owner.name == route.name:
        if gateway_view is not None and not gateway_view.available.ok:
            published = gateway_view.available
        elif gateway_view is not None and route.name not in gateway_view.loaded:
            published = Check(False, "ConfigNotLoaded", f"gateway {gateway} has not loaded config {config.version} "
                              f"yet ({gateway_view.pending})")  # fmt: skip
        else:
            published = Check(True, "Published", f"in the config of gateway {gateway}, which its pods run")
    else:
        published = Check(False, "NotPublished", f"not in the config of gateway {gateway}")
    return accepted, resolved, published
