"""The interlock-crds chart: the CRDs generated from interlock/resources, as templates, kept on uninstall."""

from __future__ import annotations

from typing import Any

from interlock.resources.crdgen import render_crds
from tests.charts.rendering import CRDS_CHART, REPO, render

GENERATED = REPO / "operator" / "crds"
SYNC = "the chart's CRDs are stale: run scripts/sync-dashboards"


def _without_chart_metadata(crd: dict[str, Any], generated: dict[str, Any]) -> dict[str, Any]:
    """The CRD with only the labels and annotations the generator writes (the chart adds its own)."""
    meta = dict(crd["metadata"])
    labels = {k: v for k, v in meta.get("labels", {}).items() if k in generated["metadata"].get("labels", {})}
    meta = {k: v for k, v in meta.items() if k not in ("labels", "annotations")}
    if labels:
        meta["labels"] = labels
    return {**crd, "metadata": meta}


def test_it_should_render_exactly_the_generated_crds() -> None:
    generated = {crd["metadata"]["name"]: crd for crd in render_crds().values()}
    rendered = {crd["metadata"]["name"]: crd for crd in render(chart=CRDS_CHART).of_kind("CustomResourceDefinition")}
    assert rendered.keys() == generated.keys()
    for name, crd in rendered.items():
        assert _without_chart_metadata(crd, generated[name]) == generated[name], name


def test_it_should_ship_byte_identical_copies_of_operator_crds() -> None:
    shipped = {p.name: p.read_text() for p in (CRDS_CHART / "files" / "crds").glob("*.yaml")}
    committed = {p.name: p.read_text() for p in GENERATED.glob("*.yaml")}
    assert shipped == committed, SYNC


def test_it_should_apply_crds_as_templates_so_upgrades_update_them() -> None:
    assert not (CRDS_CHART / "crds").exists(), "Helm never upgrades crds/; the CRDs must be templates"
    upgraded = render(chart=CRDS_CHART, is_upgrade=True).of_kind("CustomResourceDefinition")
    assert len(upgraded) == len(render_crds())


def test_it_should_keep_crds_on_uninstall_unless_told_otherwise() -> None:
    for crd in render(chart=CRDS_CHART).of_kind("CustomResourceDefinition"):
        assert crd["metadata"]["annotations"]["helm.sh/resource-policy"] == "keep"
        assert crd["metadata"]["labels"]["app.kubernetes.io/managed-by"] == "Helm"
    for crd in render({"keep": False, "annotations": {"team": "ml"}}, chart=CRDS_CHART).of_kind(
        "CustomResourceDefinition"
    ):
        assert crd["metadata"]["annotations"] == {"team": "ml"}
