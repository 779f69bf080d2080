"""The leaf conditions, derived from what the API server holds (pure: objects in, ``Check`` out).

``LLMBackend``: ``CredentialsResolved`` (the Secret and its key exist; the value is never read into status or
logs) and ``WorkloadReady`` (the inference Deployment's real status). ``Route``: ``Accepted`` (its public model is
its own), ``BackendsResolved`` (every backend exists, is valid, serves the model and is Ready) and ``Published`` (it
is in its gateway's compiled config).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from interlock.gatewayconfig.model import GatewayConfig
from interlock.operator.status import Check
from interlock.resources.llmbackend import LLMBackend, SecretKeyRef
from interlock.resources.route import Route

__all__ = ["BackendView", "credentials_check", "route_checks", "workload_check"]


def credentials_check(ref: SecretKeyRef | None, secret: Mapping[str, Any] | None) -> Check:
    """``secret`` is the live Secret (or None when it does not exist); only its key names are looked at."""
    if ref is None:
        return Check(True, "NoCredentials", "no credentialsSecretRef: requests go upstream without a key")
    if secret is None:
        return Check(False, "SecretNotFound", f"Secret {ref.name!r} not found")
    keys = set(secret.get("data") or {})
    if ref.key not in keys:
        have = ", ".join(sorted(map(repr, keys))) or "none"
        return Check(False, "SecretKeyNotFound", f"Secret {ref.name!r} has no key {ref.key!r} (keys: {have})")
    return Check(True, "SecretFound", f"key {ref.key!r} of Secret {ref.name!r} is mounted into the gateway")


def workload_check(deployment: Mapping[str, Any] | None, replicas: int) -> tuple[Check, int]:
    """``WorkloadReady`` and the ready pod count, from the inference Deployment's status as its controller wrote it.

    Ready once one pod is: the gateway can send traffic while a rollout or scale-up finishes.
    """
    status = (deployment or {}).get("status") or {}
    ready = int(status.get("readyReplicas") or 0)
    conditions = {c.get("type"): c for c in status.get("conditions") or [] if isinstance(c, Mapping)}
    progressing = conditions.get("Progressing") or {}
    if deployment is None:
        return Check(False, "DeploymentMissing", "the inference Deployment does not exist yet"), 0
    if replicas == 0:
        return Check(False, "ScaledToZero", "serving.replicas is 0: no inference pods run"), ready
    if progressing.get("status") == "False" and progressing.get("reason") == "ProgressDeadlineExceeded":
        return Check(False, "ProgressDeadlineExceeded", str(progressing.get("message") or "rollout stuck")), ready
    if ready == 0:
        return Check(False, "PodsNotReady", f"0/{replicas} inference pods ready (loading weights can take minutes)"), 0
    return Check(True, "PodsReady", f"{ready}/{replicas} inference pods ready"), ready


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


def route_checks(
    route: Route, backends: Mapping[str, BackendView], config: GatewayConfig
) -> tuple[Check, Check, Check]:
    """(Accepted, BackendsResolved, Published) of one valid route against its gateway's compiled config."""
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
        published = Check(True, "Published", f"in the config of gateway {gateway}")
    else:
        published = Check(False, "NotPublished", f"not in the config of gateway {gateway}")
    return accepted, resolved, published
