"""Validating console forms with the API's own schemas, so a form accepts exactly what the JSON API accepts."""

from __future__ import annotations

from typing import TypeVar

from pydantic import BaseModel, ValidationError

__all__ = ["FormError", "validate_form"]

M = TypeVar("M", bound=BaseModel)


class FormError(Exception):
    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


def validate_form(model: type[M], values: dict[str, object]) -> M:
    """``model`` from form values (blank fields left out, so defaults apply); a readable ``FormError`` if not."""
    data = {k: v for k, v in values.items() if v not in ("", None)}
    try:
        return model.model_validate(data)
    except ValidationError as exc:
        problems = []
        for error in exc.errors(include_url=False, include_input=False):
            where = ".".join(str(part) for part in error["loc"]) or "form"
            problems.append(f"{where.replace('_', ' ')}: {error['msg']}")
        raise FormError("; ".join(problems)) from exc
