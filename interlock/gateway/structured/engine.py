"""JSON Schema validation with a regex engine that cannot backtrack: ``jsonschema``'s validators, with ``pattern``,
``patternProperties`` and the ``regex`` format checked by RE2 (``google-re2``), whose matching time is linear in
the input. A pattern RE2 cannot compile (backreferences, lookaround) makes the schema invalid, with the reason.

Runs in the schema worker (``worker.py``), never on the gateway's event loop.
"""

from __future__ import annotations

from collections.abc import Iterator
from functools import cache, lru_cache
from typing import Any

import jsonschema
import orjson
import re2  # type: ignore[import-untyped]
from jsonschema import ValidationError
from jsonschema.exceptions import best_match
from jsonschema.protocols import Validator

from interlock.gateway.structured.shape import ShapeLimits, schema_problem

__all__ = ["InvalidSchema", "compile_schema", "document_problem"]

_MAX_MESSAGE = 300  # jsonschema quotes whole instances in its messages
_OPTIONS = re2.Options()
_OPTIONS.max_mem = 8 << 20  # a pattern whose program needs more is refused, not run
_OPTIONS.log_errors = False


class InvalidSchema(ValueError):
    """A schema the gateway will not validate with; the message says why."""


@lru_cache(maxsize=4096)
def _regex(pattern: str) -> Any:
    try:
        return re2.compile(pattern, _OPTIONS)
    except re2.error as exc:
        reason = exc.args[0].decode() if exc.args and isinstance(exc.args[0], bytes) else str(exc)
        raise InvalidSchema(f"pattern {pattern!r} is not supported: {reason} (patterns are RE2 syntax)") from None


def _pattern(validator: Any, pattern: str, instance: Any, schema: Any) -> Iterator[ValidationError]:
    if validator.is_type(instance, "string") and not _regex(pattern).search(instance):
        yield ValidationError(f"{instance!r} does not match {pattern!r}")


def _pattern_properties(validator: Any, properties: dict[str, Any], instance: Any, schema: Any) -> Iterator[Any]:
    if not validator.is_type(instance, "object"):
        return
    for pattern, subschema in properties.items():
        regex = _regex(pattern)
        for key, value in instance.items():
            if regex.search(key):
                yield from validator.descend(value, subschema, path=key, schema_path=pattern)


def _is_regex(instance: object) -> bool:
    if isinstance(instance, str):
        _regex(instance)
    return True


_FORMATS = jsonschema.FormatChecker()
_FORMATS.checks("regex", raises=InvalidSchema)(_is_regex)


@cache
def _with_re2(cls: type[Validator]) -> Any:
    keywords = {"pattern": _pattern, "patternProperties": _pattern_properties}
    return jsonschema.validators.extend(cls, keywords)  # type: ignore[no-untyped-call]


_LIMITS = ShapeLimits()


def compile_schema(schema_json: bytes, limits: ShapeLimits = _LIMITS) -> Validator:
    """A validator for a tenant's schema; ``InvalidSchema`` with the reason when it cannot be one."""
    try:
        schema = orjson.loads(schema_json)
    except orjson.JSONDecodeError as exc:
        raise InvalidSchema(f"the schema is not JSON: {exc}") from None
    problem = schema_problem(schema, limits)
    if problem is not None:
        raise InvalidSchema(problem)
    for pattern in _patterns(schema):
        _regex(pattern)  # the RE2 reason, rather than the metaschema's "is not a 'regex'"
    unknown: Any = None
    cls = jsonschema.validators.validator_for(schema, default=unknown) if isinstance(schema, dict) else None
    if cls is None:
        if isinstance(schema, dict) and "$schema" in schema:
            raise InvalidSchema(f"unknown $schema {schema['$schema']!r}")
        cls = jsonschema.Draft202012Validator
    meta = jsonschema.validators.validator_for(cls.META_SCHEMA, default=cls)
    error = best_match(meta(cls.META_SCHEMA, format_checker=_FORMATS).iter_errors(schema))
    if error is not None:
        where = "/".join(str(p) for p in error.absolute_path) or "(root)"
        raise InvalidSchema(f"not a valid JSON Schema at {where}: {_short(error.message)}")
    validator: Validator = _with_re2(cls)(schema)
    return validator


_DATA = frozenset({"enum", "const", "default", "examples"})


def _patterns(schema: Any) -> Iterator[str]:
    """Every ``pattern`` and ``patternProperties`` key of a schema (data keywords skipped)."""
    stack = [schema]
    while stack:
        node = stack.pop()
        if isinstance(node, list):
            stack.extend(node)
        elif isinstance(node, dict):
            if isinstance(node.get("pattern"), str):
                yield node["pattern"]
            if isinstance(node.get("patternProperties"), dict):
                yield from (str(k) for k in node["patternProperties"])
            stack.extend(v for k, v in node.items() if k not in _DATA)


def document_problem(validator: Validator, document: bytes) -> str | None:
    """Why ``document`` (JSON text) does not satisfy the schema, or None when it does."""
    try:
        value = orjson.loads(document)
    except orjson.JSONDecodeError as exc:
        return f"the answer is not JSON ({exc})"
    try:
        error = best_match(validator.iter_errors(value))
    except RecursionError:
        return "the answer is nested too deeply to validate"
    if error is None:
        return None
    where = "/".join(str(p) for p in error.absolute_path) or "(root)"
    return f"at {where}: {_short(error.message)}"


def _short(message: str) -> str:
    return message if len(message) <= _MAX_MESSAGE else message[: _MAX_MESSAGE - 1] + "…"
