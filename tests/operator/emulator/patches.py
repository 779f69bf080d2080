"""The patch formats of the Kubernetes API, as the emulator applies them.

- JSON merge patch (RFC 7386), ``application/merge-patch+json``.
- JSON patch (RFC 6902), ``application/json-patch+json``; a failed ``test`` operation is a 422, as kopf expects.
- Strategic merge patch, ``application/strategic-merge-patch+json``: a merge patch that also merges lists of
  objects by their ``name`` and understands the ``$patch``/``$setElementOrder``/``$retainKeys`` directives kubectl
  sends. The real merge keys per field (``containerPort`` for ports, ...) are not modelled: ``name`` only.
- Server-side apply, ``application/apply-patch+yaml``: a merge patch that creates a missing object. Field
  ownership, managed fields and conflicts are not modelled: for an object with one manager (the operator's
  children) the result is the same, except that fields the manager stops setting are kept here.
"""

from __future__ import annotations

import copy
from typing import Any

import jsonpatch

__all__ = ["PatchError", "apply_json_patch", "merge_patch", "strategic_merge_patch"]


class PatchError(ValueError):
    """A patch that cannot be applied; ``test_failed`` marks a failed RFC 6902 ``test`` operation."""

    def __init__(self, message: str, *, test_failed: bool = False) -> None:
        super().__init__(message)
        self.test_failed = test_failed


def merge_patch(target: Any, patch: Any) -> Any:
    """RFC 7386: objects merge recursively, ``null`` deletes, anything else (lists included) replaces."""
    if not isinstance(patch, dict):
        return copy.deepcopy(patch)
    out = dict(target) if isinstance(target, dict) else {}
    for key, value in patch.items():
        if value is None:
            out.pop(key, None)
        else:
            out[key] = merge_patch(out.get(key), value)
    return out


def _named(items: Any) -> bool:
    return isinstance(items, list) and all(isinstance(i, dict) and "name" in i for i in items)


def strategic_merge_patch(target: Any, patch: Any) -> Any:
    """A merge patch that merges lists of named objects by name and honours kubectl's directives."""
    if not isinstance(patch, dict):
        return copy.deepcopy(patch)
    directive = patch.get("$patch")
    if directive == "replace":
        return {k: copy.deepcopy(v) for k, v in patch.items() if not k.startswith("$")}
    if directive == "delete":
        return None
    out = dict(target) if isinstance(target, dict) else {}
    retain = patch.get("$retainKeys")
    for key, value in patch.items():
        if key.startswith("$"):
            continue
        if value is None:
            out.pop(key, None)
        elif isinstance(value, list) and _named(value) and _named(out.get(key)):
            out[key] = _merge_named_lists(out[key], value, patch.get(f"$setElementOrder/{key}"))
        elif isinstance(value, dict):
            merged = strategic_merge_patch(out.get(key), value)
            if merged is None:
                out.pop(key, None)
            else:
                out[key] = merged
        else:
            out[key] = copy.deepcopy(value)
    if isinstance(retain, list):
        out = {k: v for k, v in out.items() if k in retain}
    return out


def _merge_named_lists(current: list[Any], patch: list[Any], order: Any) -> list[Any]:
    by_name = {item["name"]: item for item in current}
    names = [item["name"] for item in current]
    for item in patch:
        name = item["name"]
        if item.get("$patch") == "delete":
            by_name.pop(name, None)
            continue
        by_name[name] = strategic_merge_patch(by_name.get(name), item)
        if name not in names:
            names.append(name)
    if isinstance(order, list):
        wanted = [o["name"] for o in order if isinstance(o, dict) and "name" in o]
        names = [n for n in wanted if n in by_name] + [n for n in names if n not in wanted]
    return [by_name[n] for n in names if n in by_name]


def apply_json_patch(target: dict[str, Any], ops: list[Any]) -> dict[str, Any]:
    """RFC 6902 on a copy of ``target``."""
    try:
        result = jsonpatch.JsonPatch(ops).apply(target, in_place=False)
    except jsonpatch.JsonPatchTestFailed as exc:
        raise PatchError(str(exc), test_failed=True) from exc
    except (jsonpatch.JsonPatchException, jsonpatch.JsonPointerException, KeyError, IndexError, TypeError) as exc:
        raise PatchError(f"the JSON patch cannot be applied: {exc}") from exc
    if not isinstance(result, dict):
        raise PatchError("the JSON patch does not leave an object")
    return result
