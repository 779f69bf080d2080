"""Both charts lint strictly and render with the default values and every ci/*-values.yaml, and every rendered
built-in object is valid for the Kubernetes API (kubernetes-validate, strict: unknown fields are errors)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import helm_python
import kubernetes_validate
import pytest

from tests.charts.rendering import CHART, CI_VALUES, CRDS_CHART, KUBE_VERSION, ci_values, render

# Kinds from CRDs that kubernetes-validate has no schema for; everything else must validate.
NOT_BUILT_IN = {"monitoring.coreos.com/v1/PodMonitor", "monitoring.coreos.com/v1/PrometheusRule"}

VALUE_SETS = [pytest.param({}, id="default"), *(pytest.param(ci_values(p), id=p.stem) for p in CI_VALUES)]


def _lint(chart: Path, values: dict[str, Any] | None = None) -> dict[str, Any]:
    return helm_python.lint(chart, values, strict=True, kube_version=f"v{KUBE_VERSION}", namespace="interlock")


def test_there_are_ci_value_files_for_each_variant() -> None:
    assert {p.stem for p in CI_VALUES} >= {
        "bundled-db-values",
        "external-db-values",
        "redis-values",
        "external-redis-values",
        "monitoring-values",
        "namespaced-values",
        "minimal-values",
    }


@pytest.mark.parametrize("chart", [CHART, CRDS_CHART], ids=["interlock", "interlock-crds"])
def test_charts_lint_strictly(chart: Path) -> None:
    report = _lint(chart)
    problems = [m for m in report["messages"] if m["severity"] >= 2]  # 2 = warning, 3 = error; 1 is info
    assert (report["errors"], problems) == ([], []), report


@pytest.mark.parametrize("values", VALUE_SETS)
def test_chart_lints_strictly_with_each_ci_values_file(values: dict[str, Any]) -> None:
    report = _lint(CHART, values)
    problems = [m for m in report["messages"] if m["severity"] >= 2]
    assert (report["errors"], problems) == ([], []), report


@pytest.mark.parametrize("values", VALUE_SETS)
def test_every_rendered_object_is_valid_kubernetes(values: dict[str, Any]) -> None:
    rendered = render(values)
    kinds = set()
    for template, obj in rendered.objects:
        kind = f"{obj['apiVersion']}/{obj['kind']}"
        kinds.add(kind)
        if kind in NOT_BUILT_IN:
            assert obj["spec"], template
            continue
        try:
            kubernetes_validate.validate(obj, KUBE_VERSION, strict=True)
        except kubernetes_validate.ValidationError as exc:
            pytest.fail(f"{template}: {obj['kind']} {obj['metadata']['name']}: {exc.message} at {list(exc.path)}")
    assert {"apps/v1/Deployment", "v1/Service", "rbac.authorization.k8s.io/v1/ClusterRole"} <= kinds


def test_crds_chart_renders_valid_crds() -> None:
    rendered = render(chart=CRDS_CHART)
    crds = rendered.of_kind("CustomResourceDefinition")
    assert len(crds) == 2
    for crd in crds:
        kubernetes_validate.validate(crd, KUBE_VERSION, strict=True)


@pytest.mark.parametrize("values", VALUE_SETS)
def test_every_object_is_namespaced_to_the_release_or_cluster_scoped(values: dict[str, Any]) -> None:
    cluster_scoped = {"ClusterRole", "ClusterRoleBinding"}
    allowed = {"interlock", *values.get("operator", {}).get("watchNamespaces", [])}
    allowed.add(values.get("dashboards", {}).get("namespace") or "interlock")
    for obj in render(values):
        namespace = obj["metadata"].get("namespace")
        if obj["kind"] in cluster_scoped:
            assert namespace is None, obj["metadata"]
        else:
            assert namespace in allowed, (obj["kind"], obj["metadata"])
