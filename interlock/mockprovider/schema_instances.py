"""A deterministic instance of a JSON Schema, for tool-call arguments and structured output.

Covers what function and response schemas use in practice: object (properties, required), string (enum, const,
format, length), integer and number (bounds, multipleOf), boolean, null, array (items, prefixItems, minItems,
uniqueItems), anyOf/oneOf (first branch), allOf (merged), and ``$ref`` into the document (``$defs``,
``definitions``). ``pattern`` is not honoured. Optional properties are filled near the root only, so recursive
schemas stay finite. Array items get distinct variants (other enum members, numbers, string suffixes), so
``uniqueItems`` holds where the schema allows it.
"""

from __future__ import annotations

import math
from typing import Any

__all__ = ["instance_for"]

_OPTIONAL_DEPTH = 3
_MAX_DEPTH = 16
_FORMATS = {
    "date": "2024-01-15",
    "date-time": "2024-01-15T12:00:00Z",
    "time": "12:00:00Z",
    "email": "user@example.com",
    "uri": "https://example.com/",
    "url": "https://example.com/",
    "uuid": "123e4567-e89b-42d3-a456-426614174000",
    "ipv4": "192.0.2.1",
    "ipv6": "2001:db8::1",
    "hostname": "example.com",
    "duration": "P1D",
}


def instance_for(schema: Any) -> Any:
    """A value valid against ``schema`` (a JSON Schema as parsed JSON), the same every time."""
    return _Builder(schema).build(schema, depth=0, variant=0, hint="")


class _Builder:
    def __init__(self, root: Any) -> None:
        self._root = root

    def build(self, schema: Any, *, depth: int, variant: int, hint: str) -> Any:
        if not isinstance(schema, dict):
            return None if schema is False else _string(hint, variant, {})
        schema = self._flatten(schema, depth)
        if "const" in schema:
            return schema["const"]
        if isinstance(schema.get("enum"), list) and schema["enum"]:
            options = schema["enum"]
            return options[variant % len(options)]
        kind = _kind(schema)
        if kind == "object":
            return self._object(schema, depth, variant)
        if kind == "array":
            return self._array(schema, depth, variant, hint)
        if kind == "integer":
            return _integer(schema, variant)
        if kind == "number":
            return _number(schema, variant)
        if kind == "boolean":
            return variant % 2 == 0
        if kind == "null":
            return None
        return _string(hint, variant, schema)

    def _flatten(self, schema: dict[str, Any], depth: int) -> dict[str, Any]:
        """Resolve ``$ref``, take the first ``anyOf``/``oneOf`` branch and merge ``allOf``, keeping siblings."""
        for _ in range(_MAX_DEPTH):
            if "$ref" in schema:
                target = self._resolve(schema["$ref"])
                schema = {**target, **{k: v for k, v in schema.items() if k != "$ref"}}
            elif "allOf" in schema and isinstance(schema["allOf"], list):
                merged = {k: v for k, v in schema.items() if k != "allOf"}
                for part in schema["allOf"]:
                    if isinstance(part, dict):
                        merged = _merge(merged, self._flatten(part, depth))
                schema = merged
            else:
                branch_key = next((k for k in ("anyOf", "oneOf") if isinstance(schema.get(k), list)), None)
                if branch_key is None or not schema[branch_key]:
                    return schema
                first = _first_branch(schema[branch_key])
                schema = _merge({k: v for k, v in schema.items() if k != branch_key}, first)
        return schema

    def _resolve(self, ref: Any) -> dict[str, Any]:
        if not isinstance(ref, str) or not ref.startswith("#"):
            return {}
        node: Any = self._root
        for part in ref[1:].split("/"):
            if not part:
                continue
            key = part.replace("~1", "/").replace("~0", "~")
            node = node.get(key) if isinstance(node, dict) else None
        return node if isinstance(node, dict) else {}

    def _object(self, schema: dict[str, Any], depth: int, variant: int) -> dict[str, Any]:
        properties: dict[str, Any] = schema["properties"] if isinstance(schema.get("properties"), dict) else {}
        required = [name for name in schema.get("required") or [] if isinstance(name, str)]
        names = list(properties) if depth < _OPTIONAL_DEPTH else [n for n in properties if n in required]
        names += [n for n in required if n not in names]
        result: dict[str, Any] = {}
        for name in names:
            if depth >= _MAX_DEPTH:
                result[name] = None
                continue
            result[name] = self.build(properties.get(name, {}), depth=depth + 1, variant=variant, hint=name)
        return result

    def _array(self, schema: dict[str, Any], depth: int, variant: int, hint: str) -> list[Any]:
        low = int(schema.get("minItems", 1))
        high = schema.get("maxItems")
        count = max(low, 1) if high is None else min(max(low, 1), int(high))
        if depth >= _MAX_DEPTH:
            count = low
        prefix: list[Any] = schema["prefixItems"] if isinstance(schema.get("prefixItems"), list) else []
        items = schema.get("items", {})
        if isinstance(items, list):  # draft 4-7 tuple form
            prefix, items = items, schema.get("additionalItems", {})
        count = max(count, min(len(prefix), int(high) if high is not None else len(prefix)))
        if items is False:
            count = min(count, len(prefix))
        item_hint = hint[:-1] if hint.endswith("s") else hint
        return [
            self.build(prefix[i] if i < len(prefix) else items, depth=depth + 1, variant=variant + i, hint=item_hint)
            for i in range(count)
        ]


def _first_branch(branches: list[Any]) -> dict[str, Any]:
    """The first branch, preferring one that is not just ``null`` (an optional value gets a real one)."""
    for branch in branches:
        if isinstance(branch, dict) and branch.get("type") != "null":
            return branch
    first = branches[0]
    return first if isinstance(first, dict) else {}


def _merge(base: dict[str, Any], extra: dict[str, Any]) -> dict[str, Any]:
    merged = {**base, **extra}
    if isinstance(base.get("properties"), dict) and isinstance(extra.get("properties"), dict):
        merged["properties"] = {**base["properties"], **extra["properties"]}
    if isinstance(base.get("required"), list) and isinstance(extra.get("required"), list):
        merged["required"] = list(dict.fromkeys([*base["required"], *extra["required"]]))
    return merged


def _kind(schema: dict[str, Any]) -> str:
    declared = schema.get("type")
    if isinstance(declared, list):
        declared = next((t for t in declared if t != "null"), declared[0] if declared else None)
    if isinstance(declared, str):
        return declared
    if "properties" in schema or "required" in schema or "additionalProperties" in schema:
        return "object"
    if "items" in schema or "prefixItems" in schema or "minItems" in schema:
        return "array"
    if any(k in schema for k in ("minimum", "maximum", "exclusiveMinimum", "exclusiveMaximum", "multipleOf")):
        return "number"
    return "string"


def _bounds(schema: dict[str, Any]) -> tuple[float | None, bool, float | None, bool]:
    """(low, low is exclusive, high, high is exclusive), reading both the draft-4 and the modern forms."""
    low, high = schema.get("minimum"), schema.get("maximum")
    low_ex = high_ex = False
    ex_min, ex_max = schema.get("exclusiveMinimum"), schema.get("exclusiveMaximum")
    if isinstance(ex_min, bool):
        low_ex = ex_min
    elif isinstance(ex_min, int | float) and (low is None or ex_min >= low):
        low, low_ex = ex_min, True
    if isinstance(ex_max, bool):
        high_ex = ex_max
    elif isinstance(ex_max, int | float) and (high is None or ex_max <= high):
        high, high_ex = ex_max, True
    return low, low_ex, high, high_ex


def _integer(schema: dict[str, Any], variant: int) -> int:
    low, low_ex, high, high_ex = _bounds(schema)
    lo = None if low is None else (math.floor(low) + 1 if low_ex else math.ceil(low))
    hi = None if high is None else (math.ceil(high) - 1 if high_ex else math.floor(high))
    step = schema.get("multipleOf")
    step = int(step) if isinstance(step, int | float) and step >= 1 and float(step).is_integer() else 1
    start = lo if lo is not None else (min(1, hi) if hi is not None else 1)
    value = -(-start // step) * step + variant * step
    if hi is not None and value > hi:
        value = -(-start // step) * step
    return value


def _number(schema: dict[str, Any], variant: int) -> float | int:
    low, low_ex, high, high_ex = _bounds(schema)
    step = schema.get("multipleOf")
    if isinstance(step, int | float) and step > 0:
        first = 1 if low is None else max(1, math.ceil(low / step) + (1 if low_ex and low % step == 0 else 0))
        return (first + variant) * step
    if low is not None and high is not None:
        return (low + high) / 2 if low_ex or high_ex or variant else float(low)
    if low is not None:
        return low + 1.5 + variant if low_ex else float(low) + variant
    if high is not None:
        return high - 1.5 - variant if high_ex else float(high) - variant
    return 1.5 + variant


def _string(hint: str, variant: int, schema: dict[str, Any]) -> str:
    fmt = schema.get("format")
    if isinstance(fmt, str) and fmt in _FORMATS:
        return _FORMATS[fmt]
    text = f"example {hint}" if hint else "example"
    if variant:
        text += f" {variant + 1}"
    min_length = schema.get("minLength")
    if isinstance(min_length, int) and len(text) < min_length:
        text += "x" * (min_length - len(text))
    max_length = schema.get("maxLength")
    if isinstance(max_length, int) and len(text) > max_length:
        text = text[:max_length]
    return text
