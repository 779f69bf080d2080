"""Render the charts offline with helm-python-sdk (Helm's own Go code, no helm binary) and parse the output."""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from typing import Any

import helm_python
import yaml

__all__ = [
    "CHART",
    "CI_VALUES",
    "CRDS_CHART",
    "KUBE_VERSION",
    "NAMESPACE",
    "RELEASE",
    "REPO",
    "Rendered",
    "ci_values",
    "render",
]

REPO = Path(__file__).resolve().parents[2]
CHART = REPO / "charts" / "interlock"
CRDS_CHART = REPO / "charts" / "interlock-crds"
CI_VALUES = sorted((CHART / "ci").glob("*-values.yaml"))
KUBE_VERSION = "1.33.0"
RELEASE = "il"
NAMESPACE = "interlock"


@dataclass(frozen=True)
class Rendered:
    """The objects of one render, with the template each came from."""

    objects: tuple[tuple[str, dict[str, Any]], ...]

    def __iter__(self) -> Iterator[dict[str, Any]]:
        return (obj for _, obj in self.objects)

    def of_kind(self, kind: str) -> list[dict[str, Any]]:
        return [obj for obj in self if obj["kind"] == kind]

    def one(self, kind: str, name_suffix: str) -> dict[str, Any]:
        found = [obj for obj in self.of_kind(kind) if obj["metadata"]["name"].endswith(name_suffix)]
        assert len(found) == 1, (
            f"expected one {kind} named *{name_suffix}, found {[o['metadata']['name'] for o in found]}"
        )
        return found[0]

    def names(self, kind: str) -> set[str]:
        return {obj["metadata"]["name"] for obj in self.of_kind(kind)}


def ci_values(path: Path) -> dict[str, Any]:
    values: dict[str, Any] = yaml.safe_load(path.read_text()) or {}
    return values


@cache
def _chart(path: Path) -> helm_python.Chart:
    return helm_python.Chart.load(path)


def render(values: Mapping[str, Any] | None = None, *, chart: Path = CHART, is_upgrade: bool = False) -> Rendered:
    """Render ``chart`` (schema validated first, as `helm install` does) and parse every YAML document."""
    manifests = _chart(chart).render(
        dict(values or {}), name=RELEASE, namespace=NAMESPACE, is_install=not is_upgrade, is_upgrade=is_upgrade
    )
    objects = []
    for template, text in sorted(manifests.items()):
        if template.endswith("NOTES.txt"):
            continue
        for doc in yaml.safe_load_all(text):
            if doc:
                objects.append((template, doc))
    return Rendered(tuple(objects))
