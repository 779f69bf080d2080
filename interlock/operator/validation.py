"""Read custom resources with the pydantic models; a spec that does not validate becomes a message that quotes
the bad value, never an exception that would make kopf retry a spec that cannot get better."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Generic, TypeVar

from pydantic import BaseModel, ValidationError

from interlock.resources.llmbackend import LLMBackend
from interlock.resources.route import Route

__all__ = ["Parsed", "describe_validation_error", "parse_backend", "parse_route"]

M = TypeVar("M", bound=BaseModel)

_MAX_MESSAGE = 1024
_SCALARS = (str, int, float, bool)


@dataclass(frozen=True)
class Parsed(Generic[M]):
    """A model, or the reason there is none."""

    model: M | None
    error: str | None = None


def describe_validation_error(exc: ValidationError) -> str:
    """``spec.provider: Input should be 'openai', 'anthropic', 'vllm' or 'mock' (got 'bogus')``, one per problem."""
    lines = []
    for err in exc.errors(include_url=False):
        loc = ".".join(str(p) for p in err["loc"]) or "(object)"
        msg = str(err["msg"]).removeprefix("Value error, ")
        value = err.get("input")
        if isinstance(value, _SCALARS) and err["type"] != "missing" and repr(value) not in msg:
            msg = f"{msg} (got {value!r})"
        lines.append(f"{loc}: {msg}")
    text = "; ".join(lines)
    return text if len(text) <= _MAX_MESSAGE else text[: _MAX_MESSAGE - 3] + "..."


def _parse(model: type[M], body: Mapping[str, Any]) -> Parsed[M]:
    # Only what the user wrote: the status is ours, and the API server's metadata fields are kept but ignored.
    doc = {"apiVersion": body.get("apiVersion"), "kind": body.get("kind"), "metadata": body.get("metadata"),
           "spec": body.get("spec")}  # fmt: skip
    doc = {k: v for k, v in doc.items() if v is not None}
    try:
        return Parsed(model.model_validate(doc))
    except ValidationError as exc:
        return Parsed(None, describe_validation_error(exc))


def parse_backend(body: Mapping[str, Any]) -> Parsed[LLMBackend]:
    return _parse(LLMBackend, body)


def parse_route(body: Mapping[str, Any]) -> Parsed[Route]:
    return _parse(Route, body)
