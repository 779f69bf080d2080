"""Status conditions, as Kubernetes API conventions define them (``metav1.Condition``)."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Literal

from pydantic import Field

from interlock.resources.common import SpecModel

__all__ = ["Condition", "ConditionStatus", "set_condition"]

ConditionStatus = Literal["True", "False", "Unknown"]


class Condition(SpecModel):
    """One observation of the object's state; ``Ready`` aggregates the others."""

    type: str = Field(description="Condition type in CamelCase, for example Ready or Accepted.")
    status: ConditionStatus = Field(description="True, False or Unknown.")
    reason: str = Field(
        default="",
        pattern=r"^([A-Za-z]([A-Za-z0-9_,:]*[A-Za-z0-9_])?)?$",
        description="Machine-readable reason in CamelCase.",
    )
    message: str = Field(default="", description="Human-readable explanation.")
    observed_generation: int | None = Field(
        default=None, description="The metadata.generation this condition was computed from."
    )
    last_transition_time: str | None = Field(default=None, description="When the status last changed (RFC 3339).")


def set_condition(conditions: list[Condition], new: Condition, *, now: datetime | None = None) -> list[Condition]:
    """Return a new list with ``new`` replacing the condition of the same type.

    ``lastTransitionTime`` moves only when the status changes, as the API conventions ask.
    """
    stamp = (now or datetime.now(UTC)).strftime("%Y-%m-%dT%H:%M:%SZ")
    out: list[Condition] = []
    replaced = False
    for cond in conditions:
        if cond.type != new.type:
            out.append(cond)
            continue
        replaced = True
        moved = cond.status != new.status or cond.last_transition_time is None
        out.append(new.model_copy(update={"last_transition_time": stamp if moved else cond.last_transition_time}))
    if not replaced:
        out.append(new.model_copy(update={"last_transition_time": stamp}))
    return out
