"""A small stand-in for what the API server checks when a custom resource is created against our CRDs.

No API server runs here, so this replays the steps that matter for our schemas, in the API server's order:
strict field validation (unknown fields), defaulting, the OpenAPI schema (jsonschema, Draft 4 like OpenAPI 3.0),
``x-kubernetes-list-type: map`` key uniqueness, and the ``x-kubernetes-validations`` CEL rules (cel-python).
It is not the API server: CEL cost budgets, format checks and ratcheting are not covered.
"""

from __future__ import annotations

import copy
import functools
import re
from collections.abc import Iterator
from typing import Any

import celpy
import jsonschema

__all__ = ["apply_defaults", "cel_rules", "evaluate_cel", "openapi_schema", "rejections"]

_DNS_SUBDOMAIN = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$")


def openapi_schema(crd: dict[str, Any]) -> dict[str, Any]:
    schema: dict[str, Any] = crd["spec"]["versions"][0]["schema"]["openAPIV3Schema"]
    return schema


def _children(value: Any, schema: dict[str, Any], path: str) -> Iterator[tuple[Any, dict[str, Any], str]]:
    if isinstance(value, dict) and "properties" in schema:
        for key, sub in schema["properties"].items():
            if key in value:
                yield value[key], sub, f"{path}.{key}".lstrip(".")
    elif isinstance(value, dict) and isinstance(schema.get("additionalProperties"), dict):
        for key, item in value.items():
            yield item, schema["additionalProperties"], f"{path}.{key}"
    elif isinstance(value, list) and "items" in schema:
        for i, item in enumerate(value):
            yield item, schema["items"], f"{path}[{i}]"


def _unknown_fields(value: Any, schema: dict[str, Any], path: str) -> list[str]:
    errors = []
    if (
        isinstance(value, dict)
        and "properties" in schema
        and not schema.get("x-kubernetes-preserve-unknown-fields")
        and path != "metadata"
    ):
        prefix = f"{path}." if path else ""
        errors += [f'unknown field "{prefix}{key}"' for key in value if key not in schema["properties"]]
    for child, sub, child_path in _children(value, schema, path):
        errors += _unknown_fields(child, sub, child_path)
    return errors


def apply_defaults(value: Any, schema: dict[str, Any]) -> Any:
    """A copy of ``value`` with the schema's defaults filled in, as the API server does before validating."""
    out = copy.deepcopy(value)
    _default_in_place(out, schema)
    return out


def _default_in_place(value: Any, schema: dict[str, Any]) -> None:
    if isinstance(value, dict) and "properties" in schema:
        for key, sub in schema["properties"].items():
            if key not in value and "default" in sub:
                value[key] = copy.deepcopy(sub["default"])
    for child, sub, _ in _children(value, schema, ""):
        _default_in_place(child, sub)


def _duplicate_keys(value: Any, schema: dict[str, Any], path: str) -> list[str]:
    errors = []
    if isinstance(value, list) and schema.get("x-kubernetes-list-type") == "map":
        keys = schema["x-kubernetes-list-map-keys"]
        seen = set()
        for item in value:
            key = tuple(item.get(k) for k in keys)
            if key in seen:
                errors.append(f"{path}: Duplicate value: {dict(zip(keys, key, strict=True))}")
            seen.add(key)
    for child, sub, child_path in _children(value, schema, path):
        errors += _duplicate_keys(child, sub, child_path)
    return errors


@functools.cache
def _program(expression: str) -> celpy.Runner:
    env = celpy.Environment()
    return env.program(env.compile(expression))


def evaluate_cel(expression: str, self_value: Any) -> Any:
    """Evaluate one CEL expression with ``self`` bound, as in ``x-kubernetes-validations``; errors raise."""
    result = _program(expression).evaluate({"self": celpy.json_to_cel(self_value)})
    if isinstance(result, celpy.CELEvalError):
        raise result
    return result


def cel_rules(schema: dict[str, Any], path: str = "") -> Iterator[tuple[str, dict[str, str]]]:
    """Every ``x-kubernetes-validations`` entry in the schema, with the path of its node."""
    for rule in schema.get("x-kubernetes-validations", []):
        yield path, rule
    for key, sub in schema.get("properties", {}).items():
        yield from cel_rules(sub, f"{path}.{key}".lstrip("."))
    for key in ("items", "additionalProperties"):
        if isinstance(schema.get(key), dict):
            yield from cel_rules(schema[key], path)


def _cel_errors(value: Any, schema: dict[str, Any], path: str) -> list[str]:
    errors = []
    for rule in schema.get("x-kubernetes-validations", []):
        if evaluate_cel(rule["rule"], value) != celpy.celtypes.BoolType(True):
            message = rule["message"]
            if "messageExpression" in rule:
                message = str(evaluate_cel(rule["messageExpression"], value))
            errors.append(f"{path}: Invalid value: {message}")
    for child, sub, child_path in _children(value, schema, path):
        errors += _cel_errors(child, sub, child_path)
    return errors


def rejections(crd: dict[str, Any], obj: dict[str, Any], *, defaults: bool = True) -> list[str]:
    """Why the API server would refuse ``obj`` (an empty list when it would accept it)."""
    schema = openapi_schema(crd)
    errors = _unknown_fields(obj, schema, "")
    name = obj.get("metadata", {}).get("name", "")
    if not _DNS_SUBDOMAIN.match(name) or len(name) > 253:
        errors.append(f"metadata.name: Invalid value: {name!r}: a lowercase RFC 1123 subdomain")
    if defaults:
        obj = apply_defaults(obj, schema)
    validator = jsonschema.Draft4Validator(schema)
    schema_errors = [f"{'.'.join(map(str, err.absolute_path))}: {err.message}" for err in validator.iter_errors(obj)]
    errors += schema_errors
    errors += _duplicate_keys(obj, schema, "")
    if not schema_errors:  # the API server runs CEL only on objects that passed the schema
        errors += _cel_errors(obj, schema, "")
    return errors
