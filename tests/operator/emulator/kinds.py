"""The resource types the emulator serves: built-in kinds, and those that CRDs add at run time."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

__all__ = ["BUILTIN_KINDS", "ResourceType", "types_from_crd"]

_ALL_VERBS = ("create", "delete", "deletecollection", "get", "list", "patch", "update", "watch")


@dataclass(frozen=True)
class ResourceType:
    """One served resource: what discovery lists and what the URL parser resolves."""

    group: str
    version: str
    plural: str
    kind: str
    namespaced: bool
    singular: str = ""
    short_names: tuple[str, ...] = ()
    categories: tuple[str, ...] = ()
    subresources: frozenset[str] = field(default_factory=frozenset)
    verbs: tuple[str, ...] = _ALL_VERBS
    schema: dict[str, Any] | None = field(default=None, compare=False, hash=False)
    """A CRD's openAPIV3Schema (which lists are associative); None for built-in kinds."""
    scale: dict[str, str] | None = field(default=None, compare=False, hash=False)
    """The scale subresource's paths (``specReplicasPath``...): a CRD's, or the built-in ``.spec.replicas``."""
    columns: tuple[dict[str, Any], ...] = field(default=(), compare=False, hash=False)
    """A CRD's additionalPrinterColumns (``kubectl get``)."""

    @property
    def api_version(self) -> str:
        return f"{self.group}/{self.version}" if self.group else self.version

    @property
    def key(self) -> tuple[str, str]:
        """Objects are stored per (group, plural): one storage version per resource, as here."""
        return (self.group, self.plural)

    @property
    def display(self) -> str:
        """``deployments.apps``, ``configmaps``: how the API server names a resource in messages."""
        return f"{self.plural}.{self.group}" if self.group else self.plural

    def discovery(self) -> list[dict[str, Any]]:
        entries: list[dict[str, Any]] = [
            {
                "name": self.plural,
                "singularName": self.singular or self.kind.lower(),
                "namespaced": self.namespaced,
                "kind": self.kind,
                "verbs": list(self.verbs),
                **({"shortNames": list(self.short_names)} if self.short_names else {}),
                **({"categories": list(self.categories)} if self.categories else {}),
            }
        ]
        for sub in sorted(self.subresources):
            # No shortNames on subresources: kubectl would report them as ambiguous.
            entries.append(
                {
                    "name": f"{self.plural}/{sub}",
                    "singularName": "",
                    "namespaced": self.namespaced,
                    "kind": "Scale" if sub == "scale" else self.kind,
                    "verbs": ["get", "patch", "update"],
                }
            )
        return entries


def _t(
    gv: str, plural: str, kind: str, *, namespaced: bool = True, short: tuple[str, ...] = (), **kw: Any
) -> ResourceType:
    group, _, version = gv.rpartition("/")
    return ResourceType(
        group=group, version=version, plural=plural, kind=kind, namespaced=namespaced, short_names=short, **kw
    )


_STATUS = frozenset({"status"})
_SCALE = {"specReplicasPath": ".spec.replicas", "statusReplicasPath": ".status.replicas"}

BUILTIN_KINDS: tuple[ResourceType, ...] = (
    # kopf waits for namespaces in discovery even when it serves the whole cluster.
    _t("v1", "namespaces", "Namespace", namespaced=False, short=("ns",), subresources=_STATUS),
    _t("v1", "configmaps", "ConfigMap", short=("cm",)),
    _t("v1", "secrets", "Secret"),
    _t("v1", "services", "Service", short=("svc",), subresources=_STATUS),
    _t("v1", "pods", "Pod", short=("po",), subresources=_STATUS),
    _t("v1", "events", "Event", short=("ev",)),
    _t("v1", "serviceaccounts", "ServiceAccount", short=("sa",)),
    _t("v1", "persistentvolumeclaims", "PersistentVolumeClaim", short=("pvc",), subresources=_STATUS),
    _t(
        "apps/v1",
        "deployments",
        "Deployment",
        short=("deploy",),
        subresources=frozenset({"status", "scale"}),
        scale=_SCALE,
    ),
    _t(
        "apps/v1",
        "statefulsets",
        "StatefulSet",
        short=("sts",),
        subresources=frozenset({"status", "scale"}),
        scale=_SCALE,
    ),
    _t("networking.k8s.io/v1", "networkpolicies", "NetworkPolicy", short=("netpol",)),
    _t("autoscaling/v2", "horizontalpodautoscalers", "HorizontalPodAutoscaler", short=("hpa",), subresources=_STATUS),
    _t("policy/v1", "poddisruptionbudgets", "PodDisruptionBudget", short=("pdb",), subresources=_STATUS),
    _t("events.k8s.io/v1", "events", "Event", short=("ev",)),
    _t("coordination.k8s.io/v1", "leases", "Lease"),
    _t("rbac.authorization.k8s.io/v1", "clusterroles", "ClusterRole", namespaced=False),
    _t("rbac.authorization.k8s.io/v1", "clusterrolebindings", "ClusterRoleBinding", namespaced=False),
    _t("rbac.authorization.k8s.io/v1", "roles", "Role"),
    _t("rbac.authorization.k8s.io/v1", "rolebindings", "RoleBinding"),
    _t(
        "apiextensions.k8s.io/v1",
        "customresourcedefinitions",
        "CustomResourceDefinition",
        namespaced=False,
        short=("crd", "crds"),
        subresources=_STATUS,
    ),
)


def types_from_crd(crd: dict[str, Any]) -> list[ResourceType]:
    """The resource types a CustomResourceDefinition serves (one per served version)."""
    spec = crd.get("spec") or {}
    names = spec.get("names") or {}
    out = []
    for version in spec.get("versions") or []:
        if not version.get("served", True):
            continue
        subresources = frozenset((version.get("subresources") or {}).keys())
        scale = (version.get("subresources") or {}).get("scale")
        out.append(
            ResourceType(
                group=str(spec["group"]),
                version=str(version["name"]),
                plural=str(names["plural"]),
                kind=str(names["kind"]),
                namespaced=spec.get("scope", "Namespaced") == "Namespaced",
                singular=str(names.get("singular") or names["kind"].lower()),
                short_names=tuple(names.get("shortNames") or ()),
                categories=tuple(names.get("categories") or ()),
                subresources=subresources,
                schema=(version.get("schema") or {}).get("openAPIV3Schema"),
                scale=dict(scale) if isinstance(scale, dict) else None,
                columns=tuple(version.get("additionalPrinterColumns") or ()),
            )
        )
    return out
