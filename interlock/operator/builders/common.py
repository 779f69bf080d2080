"""What every builder shares: object metadata, probes, spreading, security contexts, canonical resources."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

from interlock.operator.quantity import canonical_quantity

__all__ = [
    "CONTAINER_SECURITY",
    "Manifest",
    "canonical_resources",
    "http_probe",
    "meta",
    "pull_secrets",
    "spread",
]

Manifest = dict[str, Any]

CONTAINER_SECURITY: Manifest = {
    "allowPrivilegeEscalation": False,
    "capabilities": {"drop": ["ALL"]},
    "seccompProfile": {"type": "RuntimeDefault"},
}


def meta(
    name: str, namespace: str, labels: Mapping[str, str], annotations: Mapping[str, str] | None = None
) -> Manifest:
    out: Manifest = {"name": name, "namespace": namespace, "labels": dict(labels)}
    if annotations:
        out["annotations"] = dict(annotations)
    return out


def http_probe(path: str, *, port: str = "http", period: int, failures: int, timeout: int = 5) -> Manifest:
    # Every field the API server would default is written, so what is applied is what is read back.
    return {
        "httpGet": {"path": path, "port": port, "scheme": "HTTP"},
        "periodSeconds": period,
        "timeoutSeconds": timeout,
        "successThreshold": 1,
        "failureThreshold": failures,
    }


def spread(selector: Mapping[str, str]) -> Manifest:
    """Prefer one pod per node: a node failure then takes out one replica, and a small cluster still schedules."""
    return {
        "podAntiAffinity": {
            "preferredDuringSchedulingIgnoredDuringExecution": [
                {
                    "weight": 100,
                    "podAffinityTerm": {
                        "labelSelector": {"matchLabels": dict(selector)},
                        "topologyKey": "kubernetes.io/hostname",
                    },
                }
            ]
        }
    }


def canonical_resources(resources: Mapping[str, Any]) -> Manifest:
    """ResourceRequirements with every quantity in the API server's canonical form (``cpu: 4`` -> ``"4"``)."""
    out: Manifest = {}
    for key, value in resources.items():
        if isinstance(value, Mapping):
            out[key] = {name: canonical_quantity(q) for name, q in value.items()}
        else:
            out[key] = value
    return out


def pull_secrets(*groups: Iterable[str]) -> list[Manifest]:
    """``imagePullSecrets`` from name lists, in order, without repeats."""
    names: list[str] = []
    for group in groups:
        names.extend(n for n in group if n not in names)
    return [{"name": n} for n in names]
