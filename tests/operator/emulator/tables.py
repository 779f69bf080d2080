"""Server-side printing: ``kubectl get`` asks for a ``meta.k8s.io/v1`` Table and prints its columns.

Custom resources get a Name column, then the CRD's ``additionalPrinterColumns`` evaluated with their JSONPath (the
subset CRDs use: ``.a.b``, ``.a[0]``, ``.a[?(@.k=="v")].b``); a ``date`` column prints as an age, like kubectl's.
Built-in kinds get Name and Age (a real API server has richer columns for them; nothing here reads those).
"""

from __future__ import annotations

import re
from datetime import UTC, datetime
from typing import Any

from tests.operator.emulator.kinds import ResourceType

__all__ = ["jsonpath", "table", "wants_table"]

Obj = dict[str, Any]

_STEP = re.compile(r'\.([A-Za-z0-9_-]+)|\[(\d+)\]|\[\?\(@\.([A-Za-z0-9_.-]+)\s*==\s*["\']([^"\']*)["\']\)\]')
_AGE = {"name": "Age", "type": "date", "jsonPath": ".metadata.creationTimestamp"}


def wants_table(accept: str) -> bool:
    return "as=Table" in accept


def jsonpath(obj: Any, path: str) -> list[Any]:
    """The values ``path`` selects in ``obj`` (a filter may select several)."""
    nodes = [obj]
    for match in _STEP.finditer(path):
        field, index, key, value = match.groups()
        out: list[Any] = []
        for node in nodes:
            if field is not None and isinstance(node, dict) and field in node:
                out.append(node[field])
            elif index is not None and isinstance(node, list) and int(index) < len(node):
                out.append(node[int(index)])
            elif key is not None and isinstance(node, list):
                out.extend(i for i in node if isinstance(i, dict) and str(_get(i, key)) == value)
        nodes = out
    return nodes


def _get(obj: Obj, dotted: str) -> Any:
    for part in dotted.split("."):
        obj = obj.get(part) if isinstance(obj, dict) else None  # type: ignore[assignment]
    return obj


def _age(stamp: Any) -> str:
    try:
        then = datetime.strptime(str(stamp), "%Y-%m-%dT%H:%M:%SZ").replace(tzinfo=UTC)
    except ValueError:
        return "<unknown>"
    seconds = int((datetime.now(UTC) - then).total_seconds())
    for unit, size in (("d", 86400), ("h", 3600), ("m", 60)):
        if seconds >= 2 * size:
            return f"{seconds // size}{unit}"
    return f"{max(seconds, 0)}s"


def _cell(obj: Obj, column: dict[str, Any]) -> Any:
    values = jsonpath(obj, str(column.get("jsonPath", "")))
    if not values:
        return None
    value = values[0]
    if column.get("type") == "date":
        return _age(value)
    return value if isinstance(value, (int, float, bool)) else str(value)


def table(rt: ResourceType, objects: list[Obj], *, resource_version: str, include_object: str) -> Obj:
    columns = list(rt.columns) if rt.columns else [_AGE]
    definitions = [{"name": "Name", "type": "string", "format": "name", "description": "Name", "priority": 0}]
    definitions += [
        {"name": c["name"], "type": c.get("type", "string"), "format": c.get("format", ""),
         "description": c.get("description", ""), "priority": int(c.get("priority", 0))}
        for c in columns
    ]  # fmt: skip
    rows = []
    for obj in objects:
        if include_object == "Object":
            embedded: Obj = obj
        else:
            embedded = {"kind": "PartialObjectMetadata", "apiVersion": "meta.k8s.io/v1", "metadata": obj["metadata"]}
        rows.append({"cells": [obj["metadata"]["name"], *(_cell(obj, c) for c in columns)], "object": embedded})
    return {
        "kind": "Table",
        "apiVersion": "meta.k8s.io/v1",
        "metadata": {"resourceVersion": resource_version},
        "columnDefinitions": definitions,
        "rows": rows,
    }
