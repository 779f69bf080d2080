"""What a tenant's JSON Schema may look like before the gateway validates anything with it (pure; runs in the
schema worker).

A schema is refused, with the reason, when it is too large or too deep, when a ``$ref`` is not a local JSON
pointer or points nowhere, when ``$ref`` (or ``allOf``/``anyOf``/``oneOf``/``not``/``if``...) chains loop back to a
schema without descending into the instance (``{"$ref": "#"}``: validation would never end), or when one value
of the instance would be checked against more than ``max_fanout`` subschemas (nested ``anyOf`` through ``$ref``:
exponential work in a schema of linear size). Recursion that descends (a tree whose ``children`` items are
``{"$ref": "#"}``) is fine: the instance, which is bounded, bounds it.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

__all__ = ["ShapeLimits", "schema_problem"]

# Keywords whose subschemas apply to the same instance value (no progress into the instance).
_SAME_ONE = ("not", "if", "then", "else")
_SAME_MANY = ("allOf", "anyOf", "oneOf")
_SAME_MAP = ("dependentSchemas",)
# Keywords whose subschemas apply to parts of the instance.
_INTO_ONE = (
    "additionalProperties",
    "items",
    "contains",
    "propertyNames",
    "unevaluatedItems",
    "unevaluatedProperties",
    "additionalItems",
)
_INTO_MANY = ("prefixItems", "items")
_INTO_MAP = ("properties", "patternProperties")
_DEFS = ("$defs", "definitions")
_UNSUPPORTED = ("$dynamicRef", "$recursiveRef", "$dynamicAnchor", "$recursiveAnchor")


@dataclass(frozen=True, slots=True)
class ShapeLimits:
    max_depth: int = 64
    """JSON nesting of the schema document."""
    max_nodes: int = 20_000
    """Objects, arrays and values in the schema document."""
    max_fanout: int = 2_000
    """Subschemas one instance value may be checked against (through allOf/anyOf/oneOf/not/if/$ref)."""


class _Refused(Exception):
    pass


def schema_problem(schema: Any, limits: ShapeLimits = ShapeLimits()) -> str | None:
    """Why ``schema`` cannot be used, or None."""
    if not isinstance(schema, dict | bool):
        return "a JSON Schema is an object (or a boolean)"
    try:
        _measure(schema, limits)
        graph = _Graph(schema)
        graph.walk(schema, "#")
        graph.check(limits.max_fanout)
    except _Refused as exc:
        return str(exc)
    return None


def _measure(schema: Any, limits: ShapeLimits) -> None:
    nodes = 0
    stack: list[tuple[Any, int]] = [(schema, 1)]
    while stack:
        value, depth = stack.pop()
        nodes += 1
        if nodes > limits.max_nodes:
            raise _Refused(f"the schema has more than {limits.max_nodes} nodes")
        if depth > limits.max_depth:
            raise _Refused(f"the schema is nested deeper than {limits.max_depth} levels")
        if isinstance(value, dict):
            stack.extend((v, depth + 1) for v in value.values())
        elif isinstance(value, list):
            stack.extend((v, depth + 1) for v in value)


def _pointer(root: Any, ref: str) -> Any:
    """The value at a local reference (``#`` or ``#/a/b~1c``)."""
    if ref == "#":
        return root
    if not ref.startswith("#/"):
        raise _Refused(f"$ref {ref!r} is not supported: only local JSON pointers ('#' or '#/...') are")
    node = root
    for raw in ref[2:].split("/"):
        part = raw.replace("~1", "/").replace("~0", "~")
        if isinstance(node, dict) and part in node:
            node = node[part]
        elif isinstance(node, list) and part.isdigit() and int(part) < len(node):
            node = node[int(part)]
        else:
            raise _Refused(f"$ref {ref!r} points nowhere in the schema")
    return node


class _Graph:
    """Subschemas by JSON pointer, with the edges that stay on the same instance value."""

    def __init__(self, root: Any) -> None:
        self.root = root
        self.same: dict[str, list[str]] = {}
        self.at: dict[int, str] = {}  # id(subschema) -> its pointer, to resolve $ref targets to nodes

    def walk(self, schema: Any, where: str) -> None:
        if not isinstance(schema, dict):
            return  # a boolean schema applies nothing further
        if id(schema) in self.at:
            return
        self.at[id(schema)] = where
        edges = self.same.setdefault(where, [])
        for keyword in _UNSUPPORTED:
            if keyword in schema:
                raise _Refused(f"{keyword} is not supported (at {where})")
        if "$id" in schema and where != "#":
            raise _Refused(f"$id inside a schema is not supported (at {where})")
        for keyword, child in self._children(schema, where):
            self.walk(child[0], child[1])
            if keyword in _SAME_ONE or keyword in _SAME_MANY or keyword in _SAME_MAP:
                edges.append(child[1])
        ref = schema.get("$ref")
        if ref is not None:
            if not isinstance(ref, str):
                raise _Refused(f"$ref must be a string (at {where})")
            edges.append("ref:" + ref)

    @staticmethod
    def _children(schema: dict[str, Any], where: str) -> Iterator[tuple[str, tuple[Any, str]]]:
        for keyword in (*_SAME_ONE, *_INTO_ONE):
            child = schema.get(keyword)
            if isinstance(child, dict):
                yield keyword, (child, f"{where}/{keyword}")
        for keyword in (*_SAME_MANY, *_INTO_MANY):
            children = schema.get(keyword)
            if isinstance(children, list):
                for n, child in enumerate(children):
                    yield keyword, (child, f"{where}/{keyword}/{n}")
        for keyword in (*_SAME_MAP, *_INTO_MAP, *_DEFS):
            children = schema.get(keyword)
            if isinstance(children, dict):
                for name, child in children.items():
                    escaped = str(name).replace("~", "~0").replace("/", "~1")
                    yield keyword, (child, f"{where}/{keyword}/{escaped}")

    def _resolve(self, edge: str) -> str:
        if not edge.startswith("ref:"):
            return edge
        ref = edge[4:]
        target = _pointer(self.root, ref)
        if isinstance(target, bool):
            return "bool"
        if not isinstance(target, dict):
            raise _Refused(f"$ref {ref!r} does not point to a schema")
        pointer = self.at.get(id(target))
        if pointer is None:  # a schema only reachable through $ref (e.g. under an unknown keyword)
            self.walk(target, ref)
            pointer = self.at[id(target)]
        return pointer

    def check(self, max_fanout: int) -> None:
        """Refuse cycles on the same instance value, and fan-outs over ``max_fanout`` (depth-first, memoised)."""
        fanout: dict[str, int] = {"bool": 1}
        visiting: list[str] = []
        on_path: set[str] = set()

        def visit(node: str) -> int:
            known = fanout.get(node)
            if known is not None:
                return known
            if node in on_path:
                loop = " -> ".join([*visiting[visiting.index(node) :], node])
                raise _Refused(f"the schema refers to itself without descending into the value: {loop}")
            on_path.add(node)
            visiting.append(node)
            total = 1
            for edge in list(self.same.get(node, ())):
                total += visit(self._resolve(edge))
                if total > max_fanout:
                    raise _Refused(
                        f"the schema checks one value against more than {max_fanout} subschemas "
                        f"(nested allOf/anyOf/oneOf/$ref, at {node})"
                    )
            visiting.pop()
            on_path.discard(node)
            fanout[node] = total
            return total

        try:
            for node in list(self.same):
                visit(node)
        except RecursionError:
            raise _Refused("the schema's chains of $ref/allOf/anyOf/oneOf are too long") from None
