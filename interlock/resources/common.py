"""Building blocks shared by the custom-resource models: the base model, durations, object metadata."""

from __future__ import annotations

import re
from typing import Annotated, Any

from pydantic import AfterValidator, BaseModel, ConfigDict, Field
from pydantic.alias_generators import to_camel

__all__ = [
    "API_GROUP",
    "API_VERSION",
    "GROUP_VERSION",
    "Duration",
    "ObjectMeta",
    "SpecModel",
    "parse_duration",
]

API_GROUP = "interlock.dev"
API_VERSION = "v1alpha1"
GROUP_VERSION = f"{API_GROUP}/{API_VERSION}"

_DURATION_PART = re.compile(r"(\d+(?:\.\d+)?)(ms|s|m|h)")
DURATION_PATTERN = r"^(\d+(\.\d+)?(ms|s|m|h))+$"
_UNIT_SECONDS = {"ms": 0.001, "s": 1.0, "m": 60.0, "h": 3600.0}


def parse_duration(text: str) -> float:
    """Parse a Go-style duration (``250ms``, ``30s``, ``1m30s``, ``2h``) into seconds."""
    if not re.fullmatch(DURATION_PATTERN, text):
        raise ValueError(f"bad duration {text!r}: expected a number with a unit, like 250ms, 30s, 5m or 1h30m")
    return sum(float(num) * _UNIT_SECONDS[unit] for num, unit in _DURATION_PART.findall(text))


def _check_duration(text: str) -> str:
    parse_duration(text)
    return text


Duration = Annotated[
    str,
    AfterValidator(_check_duration),
    Field(json_schema_extra={"pattern": DURATION_PATTERN}),
]
"""A Go-style duration string, kept as written so manifests round-trip; ``parse_duration`` gives seconds."""


class SpecModel(BaseModel):
    """Base of every CRD field model: camelCase on the wire, unknown fields rejected."""

    model_config = ConfigDict(
        alias_generator=to_camel,
        populate_by_name=True,
        extra="forbid",
        frozen=True,
    )


class ObjectMeta(BaseModel):
    """The parts of Kubernetes object metadata that Interlock reads; everything else is kept but ignored."""

    model_config = ConfigDict(extra="allow", frozen=True)

    name: Annotated[
        str,
        Field(
            min_length=1,
            max_length=253,
            pattern=r"^[a-z0-9]([-a-z0-9.]*[a-z0-9])?$",
            description="Object name: a DNS subdomain.",
        ),
    ]
    namespace: str = Field(default="default", description="Namespace of the object.")
    labels: dict[str, str] = Field(default_factory=dict, description="Labels.")
    annotations: dict[str, str] = Field(default_factory=dict, description="Annotations.")
    generation: int | None = Field(default=None, description="Spec generation, set by the API server.")
    uid: str | None = Field(default=None, description="Unique id, set by the API server.")


def drop_none(data: dict[str, Any]) -> dict[str, Any]:
    """Remove keys whose value is None (Kubernetes omits unset fields instead of sending null)."""
    return {k: v for k, v in data.items() if v is not None}
