"""Field sets, as server-side apply tracks them in ``metadata.managedFields`` (``fieldsV1``).

A field set is a set of paths. A path is a tuple of the elements ``fieldsV1`` uses: ``f:<name>`` for a map field,
``k:<json of the key fields>`` for an item of an associative list (merged by key: containers by ``name``, ports by
``containerPort`` and ``protocol``...), ``v:<json value>`` for an item of a set list, and ``.`` for "this list item
itself". A scalar, an atomic list or an empty map is a leaf. Which lists are associative comes from the schema: for
built-in kinds from the field names of the Kubernetes OpenAPI (``x-kubernetes-list-map-keys``), for custom resources
from their CRD's ``openAPIV3Schema``.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping
from typing import Any

__all__ = [
    "SET",
    "Path",
    "Schema",
    "fields_of",
    "from_fields_v1",
    "get_at",
    "item_key",
    "path_text",
    "to_fields_v1",
]

Path = tuple[str, ...]
SET = ("<set>",)

# Associative lists of the built-in kinds, by field name (parent name for ``ports``), from the Kubernetes OpenAPI.
_BUILTIN_KEYS: dict[str, tuple[str, ...]] = {
    "containers": ("name",),
    "initContainers": ("name",),
    "ephemeralContainers": ("name",),
    "volumes": ("name",),
    "env": ("name",),
    "imagePullSecrets": ("name",),
    "volumeMounts": ("mountPath",),
    "volumeDevices": ("devicePath",),
    "ownerReferences": ("uid",),
    "conditions": ("type",),
    "hostAliases": ("ip",),
    "resourceClaims": ("name",),
    "topologySpreadConstraints": ("topologyKey", "whenUnsatisfiable"),
}
_BUILTIN_SETS = frozenset({"finalizers"})
_DEFAULTED_KEYS = {"protocol": "TCP"}  # key fields the API server defaults before it merges


class Schema:
    """Which lists of one resource type are associative (and by which keys) or sets."""

    def __init__(self, openapi: Mapping[str, Any] | None = None) -> None:
        self._openapi = openapi

    def _crd_node(self, path: tuple[str, ...]) -> Mapping[str, Any] | None:
        node: Any = self._openapi
        for part in path:
            if not isinstance(node, Mapping):
                return None
            node = node.get("items") if part == "[]" else (node.get("properties") or {}).get(part)
        return node if isinstance(node, Mapping) else None

    def list_keys(self, path: tuple[str, ...]) -> tuple[str, ...] | None:
        """Merge keys of the list at ``path`` (field names, ``[]`` for list items), ``SET``, or None (atomic)."""
        if path[:1] == ("metadata",) and path[-1:] == ("finalizers",):
            return SET
        if path[:1] == ("metadata",) and path[-1:] == ("ownerReferences",):
            return ("uid",)
        if self._openapi is not None and path[:1] != ("metadata",):
            node = self._crd_node(path)
            if node is None:
                return None
            kind = node.get("x-kubernetes-list-type")
            if kind == "map":
                return tuple(node.get("x-kubernetes-list-map-keys") or ())
            return SET if kind == "set" else None
        name = path[-1] if path else ""
        if name == "ports":
            return (
                ("containerPort", "protocol") if len(path) >= 3 and path[-3] == "containers" else ("port", "protocol")
            )
        if name in _BUILTIN_SETS:
            return SET
        return _BUILTIN_KEYS.get(name)


def _json(value: Any) -> str:
    return json.dumps(value, separators=(",", ":"), sort_keys=True)


def item_key(item: Mapping[str, Any], keys: tuple[str, ...]) -> str:
    """The ``k:`` element of a list item."""
    return "k:" + _json({k: item.get(k, _DEFAULTED_KEYS.get(k)) for k in keys})


def fields_of(obj: Mapping[str, Any], schema: Schema, *, skip: Iterable[Path] = ()) -> set[Path]:
    """Every path ``obj`` sets (leaves and list items), minus the subtrees in ``skip``."""
    out: set[Path] = set()
    skipped = set(skip)

    def walk(value: Any, path: Path, names: tuple[str, ...]) -> None:
        if path in skipped:
            return
        if isinstance(value, Mapping) and value:
            for k, v in value.items():
                walk(v, (*path, f"f:{k}"), (*names, str(k)))
            return
        keys = schema.list_keys(names) if isinstance(value, list) and value else None
        if keys == SET:
            out.update((*path, f"v:{_json(v)}") for v in value)
        elif keys is not None and all(isinstance(i, Mapping) for i in value):
            for item in value:
                item_path = (*path, item_key(item, keys))
                out.add((*item_path, "."))
                for k, v in item.items():
                    walk(v, (*item_path, f"f:{k}"), (*names, "[]", str(k)))
        elif path:
            out.add(path)

    walk(obj, (), ())
    return out


def _find(items: list[Any], element: str, keys: tuple[str, ...] | None) -> int | None:
    for index, item in enumerate(items):
        if element.startswith("v:") and _json(item) == element[2:]:
            return index
        if element.startswith("k:") and keys and isinstance(item, Mapping) and item_key(item, keys) == element:
            return index
    return None


_MISSING = object()


def get_at(obj: Any, path: Path, schema: Schema) -> Any:
    """The value at ``path`` (a list item for ``k:``/``v:``), or ``_MISSING``."""
    node, names = obj, ()
    for element in path:
        if element == ".":
            continue
        if element.startswith("f:"):
            if not isinstance(node, Mapping) or element[2:] not in node:
                return _MISSING
            node, names = node[element[2:]], (*names, element[2:])
        else:
            keys = schema.list_keys(names)
            index = _find(node, element, None if keys == SET else keys) if isinstance(node, list) else None
            if index is None:
                return _MISSING
            node, names = node[index], (*names, "[]")
    return node


def path_text(path: Path) -> str:
    """``.spec.replicas``, ``.spec.template.spec.containers[name="x"].image``: how conflicts name a field."""
    out = ""
    for element in path:
        if element.startswith("f:"):
            out += "." + element[2:]
        elif element.startswith(("k:", "v:")):
            value = json.loads(element[2:])
            inner = ",".join(f"{k}={json.dumps(v)}" for k, v in value.items()) if isinstance(value, dict) else value
            out += f"[{inner}]"
    return out


def to_fields_v1(paths: Iterable[Path]) -> dict[str, Any]:
    root: dict[str, Any] = {}
    for path in sorted(paths):
        node = root
        for element in path:
            node = node.setdefault(element, {})
    return root


def from_fields_v1(tree: Mapping[str, Any]) -> set[Path]:
    out: set[Path] = set()

    def walk(node: Mapping[str, Any], path: Path) -> None:
        if not node and path:
            out.add(path)
        for element, child in node.items():
            walk(child if isinstance(child, Mapping) else {}, (*path, element))

    walk(tree, ())
    return out
