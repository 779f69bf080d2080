"""Whether a live child still matches what the operator would apply: the decision to send a server-side apply.

A child is applied when (a) the applied configuration changed since the last apply, or (b) a field the operator
applies no longer has the operator's value (someone edited or removed it). Otherwise nothing is sent, so a resync of
an unchanged cluster writes nothing.

(a) is an annotation: the digest of the applied configuration, written with it. It catches removals, which (b)
cannot see (a field the operator stopped applying is still on the live object until the apply removes it).
(b) compares the desired values with the live object. Fields the live object has beyond the desired ones are
not drift: the API server's defaults, and fields other managers own (an HPA's ``replicas``, a user's annotation, a
container another controller injected). Lists of objects that the API merges by key (containers by ``name``,
container ports by ``containerPort``, volume mounts by ``mountPath``...) are matched by that key, so an extra item
from another manager is not drift either; every other list must match item by item. Quantities compare by value
(the builders write them canonical, so this is only a safety net for ``resources``).
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping, Sequence
from typing import Any

from interlock.operator.naming import ANNOTATION_APPLIED
from interlock.operator.quantity import QuantityError, parse_quantity

__all__ = ["MERGE_KEYS", "applied_digest", "contains", "needs_apply", "with_digest"]

Obj = dict[str, Any]

# List fields the Kubernetes API merges by key (x-kubernetes-list-map-keys in its OpenAPI), by field name.
MERGE_KEYS: dict[str, tuple[str, ...]] = {
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
_PORT_KEYS = (("containerPort", "protocol"), ("port", "protocol"))
_QUANTITY_PARENTS = frozenset({"limits", "requests", "capacity", "hard"})


def applied_digest(manifest: Mapping[str, Any]) -> str:
    """A digest of the applied configuration (without the digest annotation itself)."""
    meta = dict(manifest.get("metadata") or {})
    annotations = {k: v for k, v in (meta.get("annotations") or {}).items() if k != ANNOTATION_APPLIED}
    meta["annotations"] = annotations
    doc = {**manifest, "metadata": meta}
    text = json.dumps(doc, sort_keys=True, separators=(",", ":"), default=str)
    return hashlib.sha256(text.encode()).hexdigest()[:20]


def with_digest(manifest: Obj) -> Obj:
    """``manifest`` with its digest annotation set (a new dict; the input is not changed)."""
    meta = dict(manifest.get("metadata") or {})
    meta["annotations"] = {**(meta.get("annotations") or {}), ANNOTATION_APPLIED: applied_digest(manifest)}
    return {**manifest, "metadata": meta}


def _keys_for(field: str, items: Sequence[Any]) -> tuple[str, ...] | None:
    if not items or not all(isinstance(i, Mapping) for i in items):
        return None
    if field == "ports":
        return next((keys for keys in _PORT_KEYS if all(keys[0] in i for i in items)), None)
    keys = MERGE_KEYS.get(field)
    return keys if keys and all(all(k in i for k in keys) for i in items) else None


def _item_key(item: Mapping[str, Any], keys: tuple[str, ...]) -> tuple[Any, ...]:
    return tuple(item.get(k, "TCP" if k == "protocol" else None) for k in keys)


def _same_quantity(actual: Any, wanted: Any) -> bool:
    try:
        return parse_quantity(actual)[0] == parse_quantity(wanted)[0]
    except QuantityError:
        return False


def contains(actual: Any, wanted: Any, field: str = "", parent: str = "") -> bool:
    """Whether ``actual`` has every field of ``wanted`` with the same value (see the module docstring)."""
    if isinstance(wanted, Mapping):
        return isinstance(actual, Mapping) and all(
            k in actual and contains(actual[k], v, str(k), field) for k, v in wanted.items()
        )
    if isinstance(wanted, list):
        if not isinstance(actual, list):
            return False
        keys = _keys_for(field, wanted)
        if keys is not None:
            by_key = {_item_key(i, keys): i for i in actual if isinstance(i, Mapping)}
            return all(
                (live := by_key.get(_item_key(w, keys))) is not None and contains(live, w, "", field) for w in wanted
            )
        pairs = zip(actual, wanted, strict=False)
        return len(actual) == len(wanted) and all(contains(a, w, "", field) for a, w in pairs)
    if actual == wanted and type(actual) is type(wanted):
        return True
    return parent in _QUANTITY_PARENTS and _same_quantity(actual, wanted)


def needs_apply(live: Mapping[str, Any] | None, desired: Mapping[str, Any]) -> bool:
    """Whether ``desired`` (with its digest annotation) must be applied over ``live``."""
    if live is None:
        return True
    want = ((desired.get("metadata") or {}).get("annotations") or {}).get(ANNOTATION_APPLIED)
    have = ((live.get("metadata") or {}).get("annotations") or {}).get(ANNOTATION_APPLIED)
    return want != have or not contains(live, desired)
