"""The Grafana dashboards as JSON: shape, variables, datasource, metric names (only telemetry/names.py's, plus
vLLM's in their own row), and the chart's copies. tests/dashboards/test_prometheus.py runs every query for real."""

from __future__ import annotations

from typing import Any

import pytest

from interlock.telemetry.names import METRIC_NAMES
from tests.dashboards.promql import DASHBOARDS, Query, load, metric_names, panels, queries, variables

NAMES = ("cost.json", "latency.json")
HISTOGRAMS = {
    "interlock_request_duration_seconds",
    "interlock_time_to_first_token_seconds",
    "interlock_queue_wait_seconds",
}
# Families of one backend's endpoints (the picker's inputs and choices): no tenant, route or model label to filter
# by, only the backend.
BACKEND_SCOPED = {
    "interlock_endpoints",
    "interlock_endpoint_inflight_requests",
    "interlock_endpoint_engine_requests",
    "interlock_endpoint_kv_cache_usage_ratio",
    "interlock_endpoint_metrics_age_seconds",
    "interlock_endpoint_picks_total",
}
# Metrics of vLLM 0.11 (the engine image the operator runs) that the self-hosted row reads.
VLLM_METRICS = {
    "vllm:num_requests_running",
    "vllm:num_requests_waiting",
    "vllm:kv_cache_usage_perc",
    "vllm:prompt_tokens_total",
    "vllm:generation_tokens_total",
    "vllm:num_preemptions_total",
    "vllm:request_success_total",
    "vllm:time_to_first_token_seconds_bucket",
    "vllm:e2e_request_latency_seconds_bucket",
    "vllm:inter_token_latency_seconds_bucket",
}
DATASOURCE = {"type": "prometheus", "uid": "${datasource}"}


def exported_name(name: str) -> str:
    """The family a series name belongs to: histograms expose ``_bucket``, ``_sum`` and ``_count`` series."""
    for suffix in ("_bucket", "_sum", "_count"):
        if name.endswith(suffix) and name.removesuffix(suffix) in HISTOGRAMS:
            return name.removesuffix(suffix)
    return name


def _rows(dashboard: dict[str, Any]) -> dict[int, str]:
    """Panel id -> title of the row it sits under (by position: rows and panels are laid out top to bottom)."""
    out, row = {}, ""
    for panel in sorted(dashboard["panels"], key=lambda p: (p["gridPos"]["y"], p["gridPos"]["x"])):
        if panel["type"] == "row":
            row = panel["title"]
            for nested in panel.get("panels", []):
                out[nested["id"]] = row
        else:
            out[panel["id"]] = row
    return out


@pytest.fixture(params=NAMES)
def dashboard(request: pytest.FixtureRequest) -> dict[str, Any]:
    return load(request.param)


def test_there_are_exactly_the_cost_and_latency_dashboards() -> None:
    assert sorted(p.name for p in DASHBOARDS.glob("*.json")) == sorted(NAMES)
    assert {load(n)["uid"] for n in NAMES} == {"interlock-cost", "interlock-latency"}


def test_it_should_be_a_grafana_dashboard_with_a_sound_layout(dashboard: dict[str, Any]) -> None:
    assert dashboard["schemaVersion"] >= 36
    assert dashboard["title"].startswith("Interlock / ")
    assert dashboard["id"] is None
    assert dashboard["editable"] is True
    assert "interlock" in dashboard["tags"]
    ids = [p["id"] for p in panels(dashboard)]
    assert len(ids) == len(set(ids))
    cells: set[tuple[int, int]] = set()
    for panel in panels(dashboard):
        grid = panel["gridPos"]
        assert 0 <= grid["x"] < grid["x"] + grid["w"] <= 24, panel["title"]
        assert grid["h"] >= 1, panel["title"]
        area = {
            (x, y) for x in range(grid["x"], grid["x"] + grid["w"]) for y in range(grid["y"], grid["y"] + grid["h"])
        }
        assert not area & cells, f"panel {panel['title']!r} overlaps another"
        cells |= area
        if panel["type"] != "row":
            assert all((panel["description"], panel["targets"])), panel["title"]


def test_it_should_query_a_prometheus_datasource_variable(dashboard: dict[str, Any]) -> None:
    (datasource,) = [v for v in dashboard["templating"]["list"] if v["type"] == "datasource"]
    assert datasource["name"] == "datasource"
    assert datasource["query"] == "prometheus"
    for panel in panels(dashboard):
        if panel["type"] == "row":
            continue
        assert panel["datasource"] == DATASOURCE, panel["title"]
        for target in panel["targets"]:
            assert target["datasource"] == DATASOURCE, panel["title"]


def test_it_should_filter_by_tenant_route_and_model(dashboard: dict[str, Any]) -> None:
    by_name = {v["name"]: v for v in dashboard["templating"]["list"]}
    for name in ("tenant", "route", "model", "backend"):
        var = by_name[name]
        assert (var["multi"], var["includeAll"], var["allValue"]) == (True, True, ".*"), name
        assert var["datasource"] == DATASOURCE
    assert [(v.name, v.label) for v in variables(dashboard)] == [
        ("tenant", "tenant"),
        ("route", "route"),
        ("model", "model"),
        ("backend", "backend"),
    ]

    def backend_scoped(query: Query) -> bool:
        return "$backend" in query.expr and {exported_name(n) for n in metric_names(query.expr)} <= BACKEND_SCOPED

    filtered = [
        q
        for q in queries(dashboard)
        if "$tenant" in q.expr or "$route" in q.expr or "$model" in q.expr or backend_scoped(q)
    ]
    assert len(filtered) >= len(queries(dashboard)) * 0.8


def test_it_should_use_only_the_gateways_metric_names_and_vllms_in_their_own_row(dashboard: dict[str, Any]) -> None:
    rows = _rows(dashboard)
    by_title = {p["title"]: p for p in panels(dashboard)}
    used = set()
    for query in queries(dashboard):
        names = metric_names(query.expr)
        assert names, query.where
        vllm_row = "vLLM" in rows[by_title[query.panel]["id"]]
        for name in names:
            if name.startswith("vllm:"):
                assert vllm_row, f"{query.where}: {name} outside the vLLM row"
                assert name in VLLM_METRICS, f"{query.where}: {name}"
            else:
                assert not vllm_row, f"{query.where}: {name} in the vLLM row"
                assert exported_name(name) in METRIC_NAMES, f"{query.where}: {name}"
            used.add(exported_name(name))
    for var in variables(dashboard):
        assert metric_names(var.metric_selector) <= set(METRIC_NAMES)
    if dashboard["uid"] == "interlock-latency":
        assert used >= set(METRIC_NAMES) - {"interlock_cost_usd_total", "interlock_tokens_total"}
        assert used & VLLM_METRICS == VLLM_METRICS
    else:
        assert {"interlock_cost_usd_total", "interlock_tokens_total"} <= used


def test_it_should_cover_what_issue_6_asks_of_each_dashboard() -> None:
    cost = {p["title"] for p in panels(load("cost.json"))}
    assert {"Spend rate by tenant", "Spend rate by model", "Spend rate by backend", "Budget burn"} <= cost
    assert any("Tokens" in t for t in cost)
    latency = " ".join(q.expr for q in queries(load("latency.json")))
    for quantile in ("0.5", "0.95", "0.99"):
        for metric in ("interlock_request_duration_seconds_bucket", "interlock_time_to_first_token_seconds_bucket"):
            for by in ("route", "backend"):
                assert f"histogram_quantile({quantile}, sum by ({by}, le) (rate({metric}" in latency


def test_the_metric_name_reader_finds_names_and_skips_functions_labels_and_strings() -> None:
    expr = (
        'sum by (tenant) (rate(a_total{x=~"b_total|$v"}[5m])) / on (tenant) group_left (route) '
        "scalar(days_in_month()) * 86400 + vllm:x_bucket offset 1m and bool c unless d_info"
    )
    assert metric_names(expr) == {"a_total", "vllm:x_bucket", "c", "d_info"}


def test_the_charts_copies_are_identical() -> None:
    chart = DASHBOARDS.parent / "charts" / "interlock" / "dashboards"
    for name in NAMES:
        assert (chart / name).read_bytes() == (DASHBOARDS / name).read_bytes(), (
            f"charts/interlock/dashboards/{name} differs from dashboards/{name}: run scripts/sync-dashboards"
        )
    assert sorted(p.name for p in chart.glob("*.json")) == sorted(NAMES)
