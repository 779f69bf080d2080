"""Pydantic validation errors of a custom resource, as the lines a user needs: the field, what is wrong, and what
would be right (``spec.retyr: unknown field; did you mean 'retry'?``)."""

from __future__ import annotations

import difflib
from typing import Any, get_args, get_origin

from pydantic import BaseModel, ValidationError

__all__ = ["closest", "field_path", "validation_problems"]

_SCALARS = (str, int, float, bool)
_SHOW_INPUT_FOR = ("enum", "literal_error", "greater_than", "greater_than_equal", "less_than", "less_than_equal")


def closest(word: str, choices: list[str] | tuple[str, ...] | set[str]) -> str | None:
    """The choice ``word`` was most likely meant to be, if any is close enough."""
    found = difflib.get_close_matches(word, sorted(choices), n=1, cutoff=0.6)
    return found[0] if found else None


def field_path(loc: tuple[int | str, ...]) -> str:
    """``('spec', 'targets', 0, 'weight')`` -> ``spec.targets[0].weight``, as kubectl writes it."""
    out = ""
    for part in loc:
        out += f"[{part}]" if isinstance(part, int) else (f".{part}" if out else str(part))
    return out or "(object)"


def _model_in(annotation: Any) -> type[BaseModel] | None:
    """The pydantic model inside ``X``, ``X | None``, ``list[X]`` or ``dict[str, X]``, if any."""
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return annotation
    if get_origin(annotation) is not None:  # X | None, list[X], dict[str, X], Literal[...]
        for arg in get_args(annotation):
            found = _model_in(arg)
            if found is not None:
                return found
    return None


def _model_at(model: type[BaseModel], loc: tuple[int | str, ...]) -> type[BaseModel] | None:
    """The model class that validates the object at ``loc`` (list indices skipped)."""
    current: type[BaseModel] | None = model
    for part in loc:
        if current is None:
            return None
        if isinstance(part, int):
            continue
        field = next((f for name, f in current.model_fields.items() if part in (name, f.alias)), None)
        if field is None:
            return None
        current = _model_in(field.annotation)
    return current


def _field_names(model: type[BaseModel]) -> list[str]:
    return [f.alias or name for name, f in model.model_fields.items()]


def _unknown_field(model: type[BaseModel], loc: tuple[int | str, ...]) -> tuple[str, str | None, list[str]]:
    """For an unknown field at ``loc``: its path, the closest known name, and the known names."""
    parent = _model_at(model, loc[:-1])
    names = _field_names(parent) if parent is not None else []
    return field_path(loc), closest(str(loc[-1]), names), names


def _problem(model: type[BaseModel], err: Any) -> str:
    loc: tuple[int | str, ...] = tuple(err["loc"])
    kind = err["type"]
    path = field_path(loc)
    if kind == "extra_forbidden" and loc and isinstance(loc[-1], str):
        path, guess, names = _unknown_field(model, loc)
        if guess is not None:
            return f"{path}: unknown field; did you mean {guess!r}?"
        return f"{path}: unknown field; the fields here are {', '.join(names)}" if names else f"{path}: unknown field"
    if kind == "missing":
        given = err.get("input")
        message = f"{path}: required field is missing"
        if isinstance(given, dict) and loc and isinstance(loc[-1], str):
            parent = _model_at(model, loc[:-1])
            known = set(_field_names(parent)) if parent is not None else set()
            stray = closest(loc[-1], [k for k in given if isinstance(k, str) and k not in known])
            if stray is not None:
                message += f"; did you mean {loc[-1]!r} instead of {stray!r}?"
        return message
    message = str(err["msg"]).removeprefix("Value error, ")
    value = err.get("input")
    if kind in _SHOW_INPUT_FOR and isinstance(value, _SCALARS) and len(repr(value)) <= 60:
        message += f", not {value!r}"
    return f"{path}: {message}"


def validation_problems(exc: ValidationError, model: type[BaseModel]) -> list[str]:
    """One line per problem of ``exc``, raised while validating ``model``. A required field that is missing
    because it was misspelt is told once, by the misspelling's "did you mean"."""
    errors = exc.errors(include_url=False)
    misspelt = set()
    for err in errors:
        loc = tuple(err["loc"])
        if err["type"] == "extra_forbidden" and loc and isinstance(loc[-1], str):
            guess = _unknown_field(model, loc)[1]
            if guess is not None:
                misspelt.add((*loc[:-1], guess))
    return [_problem(model, err) for err in errors if not (err["type"] == "missing" and tuple(err["loc"]) in misspelt)]
