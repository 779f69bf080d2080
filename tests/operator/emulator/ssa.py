"""Server-side apply and field ownership, as the API server does them (https://kubernetes.io/docs/reference/using-api/server-side-apply/).

- Every write records who set which fields in ``metadata.managedFields``: one entry per (manager, operation,
  subresource), operation ``Apply`` for server-side apply and ``Update`` for everything else (create, replace,
  merge/JSON/strategic patches). A manager is the ``fieldManager`` parameter, else the user agent up to its first
  ``/`` (``kubectl/v1.37 ...`` is ``kubectl``).
- An update takes ownership of the fields it changed (or added) from every other manager, without conflicts.
- An apply merges the applied configuration into the object (associative lists by key, maps field by field, atomic
  lists and scalars replaced). A field the configuration sets to a value other than the live one, and that another
  manager owns, is a conflict: 409 without ``force``; with ``force`` the applier takes it over. Setting the same
  value shares ownership. Fields the applier applied before and no longer applies are removed from the object, unless
  another manager owns them (then only the applier's ownership goes).
- The object's identity and server-set metadata are not tracked; ``status`` is tracked only for writes to the status
  subresource when the resource has one.
"""

from __future__ import annotations

import copy
import json
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from tests.operator.emulator.fields import (
    SET,
    Path,
    Schema,
    fields_of,
    from_fields_v1,
    get_at,
    item_key,
    path_text,
    to_fields_v1,
)

__all__ = ["Conflict", "Entry", "apply", "manager_of", "record_create", "record_update", "tracked"]

Obj = dict[str, Any]

_UNTRACKED_META = ("name", "namespace", "uid", "resourceVersion", "generation", "creationTimestamp",
                   "managedFields", "deletionTimestamp", "deletionGracePeriodSeconds", "selfLink")  # fmt: skip


class Conflict(Exception):
    """An apply that would change fields other managers own: ``(manager, apiVersion, field)`` each."""

    def __init__(self, conflicts: list[tuple[str, str, str]]) -> None:
        self.conflicts = conflicts
        listed = "\n".join(f'- conflict with "{m}" using {v}: {f}' for m, v, f in conflicts)
        super().__init__(f"Apply failed with {len(conflicts)} conflict{'s' if len(conflicts) > 1 else ''}:\n{listed}")


@dataclass
class Entry:
    manager: str
    operation: str
    api_version: str
    subresource: str
    fields: set[Path]
    time: str = ""

    def identity(self) -> tuple[str, str, str]:
        return (self.manager, self.operation, self.subresource)

    def dump(self) -> Obj:
        out: Obj = {
            "manager": self.manager,
            "operation": self.operation,
            "apiVersion": self.api_version,
            "time": self.time,
            "fieldsType": "FieldsV1",
            "fieldsV1": to_fields_v1(self.fields),
        }
        if self.subresource:
            out["subresource"] = self.subresource
        return out


def manager_of(field_manager: str | None, user_agent: str) -> str:
    return field_manager or (user_agent.split("/", 1)[0] if user_agent else "unknown")


def _now() -> str:
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def _entries(obj: Mapping[str, Any]) -> list[Entry]:
    out = []
    for raw in (obj.get("metadata") or {}).get("managedFields") or []:
        out.append(
            Entry(
                manager=str(raw.get("manager", "")),
                operation=str(raw.get("operation", "Update")),
                api_version=str(raw.get("apiVersion", "")),
                subresource=str(raw.get("subresource", "")),
                fields=from_fields_v1(raw.get("fieldsV1") or {}),
                time=str(raw.get("time", "")),
            )
        )
    return out


def _store(obj: Obj, entries: list[Entry]) -> None:
    kept = [e.dump() for e in entries if e.fields]
    meta = obj.setdefault("metadata", {})
    if kept:
        meta["managedFields"] = kept
    else:
        meta.pop("managedFields", None)


def tracked(obj: Mapping[str, Any], schema: Schema, *, status_only: bool, has_status: bool) -> set[Path]:
    """The fields of ``obj`` a write is accountable for."""
    skip: list[Path] = [("f:apiVersion",), ("f:kind",), *(("f:metadata", f"f:{k}") for k in _UNTRACKED_META)]
    paths = fields_of(obj, schema, skip=skip)
    if status_only:
        return {p for p in paths if p[:1] == ("f:status",)}
    return {p for p in paths if not (has_status and p[:1] == ("f:status",))}


def _entry(entries: list[Entry], identity: tuple[str, str, str], api_version: str) -> Entry:
    for entry in entries:
        if entry.identity() == identity:
            return entry
    entry = Entry(identity[0], identity[1], api_version, identity[2], set())
    entries.append(entry)
    return entry


def record_create(obj: Obj, schema: Schema, manager: str, operation: str, *, has_status: bool) -> None:
    entry = Entry(manager, operation, str(obj.get("apiVersion", "")), "",
                  tracked(obj, schema, status_only=False, has_status=has_status), _now())  # fmt: skip
    _store(obj, [entry])


def record_update(old: Obj, new: Obj, schema: Schema, manager: str, *, subresource: str, has_status: bool) -> None:
    """Ownership after a non-apply write: the writer takes every field it changed or added."""
    entries = _entries(old)
    status_only = subresource == "status"
    before = tracked(old, schema, status_only=status_only, has_status=has_status)
    after = tracked(new, schema, status_only=status_only, has_status=has_status)
    changed = {p for p in after if p not in before or get_at(old, p, schema) != get_at(new, p, schema)}
    removed = before - after
    for entry in entries:
        entry.fields -= changed | removed
    if changed:
        own = _entry(entries, (manager, "Update", subresource if subresource != "" else ""), str(new.get("apiVersion")))
        own.fields |= changed
        own.time = _now()
    _store(new, entries)


def _merge(live: Any, config: Any, schema: Schema, names: tuple[str, ...]) -> Any:
    if isinstance(config, Mapping):
        out = dict(live) if isinstance(live, Mapping) else {}
        for k, v in config.items():
            out[k] = _merge(out.get(k), v, schema, (*names, str(k)))
        return out
    if isinstance(config, list) and isinstance(live, list):
        keys = schema.list_keys(names)
        if keys == SET:
            return [*live, *(v for v in config if v not in live)]
        if keys is not None and all(isinstance(i, Mapping) for i in [*live, *config]):
            merged = list(live)
            index = {item_key(i, keys): n for n, i in enumerate(merged)}
            for item in config:
                at = index.get(item_key(item, keys))
                if at is None:
                    merged.append(copy.deepcopy(item))
                else:
                    merged[at] = _merge(merged[at], item, schema, (*names, "[]"))
            return merged
    return copy.deepcopy(config)


def _remove(obj: Obj, path: Path, schema: Schema) -> None:
    """Delete the field or list item at ``path``, then any map or list that this leaves empty."""
    parents: list[tuple[Any, Any]] = []
    node: Any = obj
    names: tuple[str, ...] = ()
    target = path[:-1] if path[-1] == "." else path
    for element in target:
        if element.startswith("f:"):
            if not isinstance(node, dict) or element[2:] not in node:
                return
            parents.append((node, element[2:]))
            node, names = node[element[2:]], (*names, element[2:])
        else:
            if not isinstance(node, list):
                return
            keys = schema.list_keys(names)
            found = None
            for n, item in enumerate(node):
                text = "v:" + json.dumps(item, separators=(",", ":"), sort_keys=True)
                if element == text or (keys not in (None, SET) and isinstance(item, Mapping)
                                       and item_key(item, keys) == element):  # type: ignore[arg-type]  # fmt: skip
                    found = n
                    break
            if found is None:
                return
            parents.append((node, found))
            node, names = node[found], (*names, "[]")
    while parents:
        container, key = parents.pop()
        del container[key]
        if container:
            return


def _is_key_field(path: Path) -> bool:
    """A key field of a list item (``name`` of a container): it goes only with its item."""
    if len(path) < 2 or not path[-2].startswith("k:") or not path[-1].startswith("f:"):
        return False
    return path[-1][2:] in json.loads(path[-2][2:])


def apply(
    live: Obj | None,
    config: Obj,
    schema: Schema,
    manager: str,
    *,
    force: bool,
    subresource: str = "",
    has_status: bool,
) -> Obj:
    """The object after applying ``config`` as ``manager`` (raises ``Conflict``)."""
    status_only = subresource == "status"
    applied = tracked(config, schema, status_only=status_only, has_status=has_status)
    if live is None:
        obj = copy.deepcopy(config)
        _store(obj, [Entry(manager, "Apply", str(config.get("apiVersion", "")), subresource, applied, _now())])
        return obj
    entries = _entries(live)
    me = (manager, "Apply", subresource)
    conflicts: list[tuple[str, str, str]] = []
    taken: set[Path] = set()
    for entry in entries:
        if entry.identity() == me:
            continue
        for path in entry.fields & applied:
            if path[-1] != "." and get_at(live, path, schema) != get_at(config, path, schema):
                conflicts.append((entry.manager, entry.api_version, path_text(path)))
                taken.add(path)
    if conflicts and not force:
        raise Conflict(sorted(set(conflicts)))
    for entry in entries:
        if entry.identity() != me:
            entry.fields -= taken
    own = _entry(entries, me, str(config.get("apiVersion", "")))
    previous, own.fields, own.time = own.fields, set(applied), _now()
    merged = _merge(live, {k: v for k, v in config.items() if k != "metadata"}, schema, ())
    merged["metadata"] = _merge(live.get("metadata") or {}, config.get("metadata") or {}, schema, ("metadata",))
    owned: set[Path] = set().union(*(e.fields for e in entries))
    gone = [p for p in previous - applied if p not in owned]
    # A list item no manager owns anything of goes whole; one that someone still owns a field of stays.
    items = [p for p in gone if p[-1] == "." and not any(o[: len(p) - 1] == p[:-1] for o in owned)]
    for path in sorted(items, key=len):
        _remove(merged, path, schema)
    dropped = [p[:-1] for p in items]
    for path in sorted(gone, key=len, reverse=True):
        if path[-1] == "." or any(path[: len(d)] == d for d in dropped) or _is_key_field(path):
            continue
        _remove(merged, path, schema)
    _store(merged, entries)
    return dict(merged)
