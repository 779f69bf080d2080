"""Status as conditions (pure): leaf conditions each with their own reason, and ``Ready`` that aggregates them.

``LLMBackend``: ``CredentialsResolved``, ``WorkloadReady`` (self-hosted only), ``Ready``.
``Route``: ``Accepted``, ``BackendsResolved``, ``Published``, ``Ready``.
``Ready`` is True when every leaf is; otherwise it carries the first failing leaf's reason and message, so
``kubectl get`` (the Reason column) and ``kubectl describe`` say what is wrong, not only that something is.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from pydantic import ValidationError

from interlock.resources.conditions import Condition, set_condition

__all__ = [
    "READY",
    "Check",
    "backend_status",
    "invalid_status",
    "ready_condition",
    "route_status",
    "status_patch",
]

READY = "Ready"


@dataclass(frozen=True)
class Check:
    """The outcome of one leaf condition."""

    ok: bool
    reason: str
    message: str


def _current_conditions(current: Mapping[str, Any] | None) -> list[Condition]:
    out = []
    for raw in (current or {}).get("conditions") or []:
        try:
            out.append(Condition.model_validate(raw))
        except ValidationError:
            continue  # someone else's malformed entry: replaced by ours
    return out


def _conditions(
    current: Mapping[str, Any] | None,
    leaves: Sequence[tuple[str, Check]],
    generation: int | None,
    now: datetime | None,
    ready: Check | None = None,
) -> list[dict[str, Any]]:
    failing = next((check for _, check in leaves if not check.ok), None)
    last = leaves[-1][1] if leaves else Check(True, READY, "")
    ready = ready or failing or Check(True, READY, last.message)
    existing = _current_conditions(current)
    out: list[Condition] = []
    for type_, check in [*leaves, (READY, ready)]:
        new = Condition(
            type=type_,
            status="True" if check.ok else "False",
            reason=check.reason,
            message=check.message,
            observed_generation=generation,
        )
        merged = set_condition(existing, new, now=now)
        out.append(next(c for c in merged if c.type == type_))
    return [c.model_dump(mode="json", by_alias=True, exclude_none=True) for c in out]


def backend_status(
    *,
    current: Mapping[str, Any] | None,
    generation: int | None,
    credentials: Check,
    workload: Check | None,
    url: str | None,
    extra: dict[str, Any] | None = None,
    now: datetime | None = None,
) -> dict[str, Any]:
    """``extra``: further status fields (``readyReplicas``, ``replicas``, ``selector`` of a self-hosted backend)."""
    leaves = [("CredentialsResolved", credentials)]
    if workload is not None:
        leaves.append(("WorkloadReady", workload))
    status: dict[str, Any] = {
        "conditions": _conditions(current, leaves, generation, now),
        "observedGeneration": generation,
    }
    if url is not None:
        status["url"] = url
    status.update(extra or {})
    return status


def route_status(
    *,
    current: Mapping[str, Any] | None,
    generation: int | None,
    accepted: Check,
    backends: Check,
    published: Check,
    now: datetime | None = None,
) -> dict[str, Any]:
    leaves = [("Accepted", accepted), ("BackendsResolved", backends), ("Published", published)]
    return {"conditions": _conditions(current, leaves, generation, now), "observedGeneration": generation}


def invalid_status(
    *, current: Mapping[str, Any] | None, generation: int | None, message: str, leaf: str | None = None,
    now: datetime | None = None,
) -> dict[str, Any]:  # fmt: skip
    """An object whose spec does not validate: ``Ready=False, reason InvalidSpec`` (and ``leaf`` says the same)."""
    check = Check(False, "InvalidSpec", message)
    leaves = [(leaf, check)] if leaf else []
    conditions = _conditions(current, leaves, generation, now, ready=check)
    return {"conditions": conditions, "observedGeneration": generation}


def ready_condition(status: Mapping[str, Any] | None) -> Check | None:
    """The ``Ready`` condition of a status, if it has one."""
    for cond in (status or {}).get("conditions") or []:
        if isinstance(cond, Mapping) and cond.get("type") == READY:
            return Check(cond.get("status") == "True", str(cond.get("reason", "")), str(cond.get("message", "")))
    return None


def status_patch(current: Mapping[str, Any] | None, desired: Mapping[str, Any]) -> dict[str, Any] | None:
    """The merge patch from ``current`` to ``desired`` (None when they are equal): stale keys are nulled."""
    current = current or {}
    if all(current.get(k) == v for k, v in desired.items()) and set(current) <= set(desired):
        return None
    patch: dict[str, Any] = dict(desired)
    for key in current:
        if key not in desired:
            patch[key] = None
    return patch
