"""Monitoring covers what the dashboards show: PodMonitors select the pods the operator's own builders make
(gateways on their ops port, inference engines on their metrics port), in the namespaces it watches."""

from __future__ import annotations

from typing import Any

import pytest

from interlock.operator.builders import gateway_deployment, inference_deployment
from interlock.operator.settings import OperatorSettings
from interlock.resources.llmbackend import LLMBackend
from tests.charts.rendering import CHART, ci_values, render
from tests.gateway.harness import backend, config, route

MONITORING = ci_values(CHART / "ci" / "monitoring-values.yaml")


def _engine_pod(engine: str) -> dict[str, Any]:
    served = LLMBackend.model_validate(
        {
            "apiVersion": "interlock.dev/v1alpha1",
            "kind": "LLMBackend",
            "metadata": {"name": "llama-8b", "namespace": "team-a"},
            "spec": {
                "provider": "vllm",
                "models": [{"name": "llama", "pricing": {"inputPerMillion": 0, "outputPerMillion": 0}}],
                "serving": {"engine": engine, "model": "meta-llama/Llama-3.1-8B-Instruct", "gpus": 1},
            },
        }
    )
    template: dict[str, Any] = inference_deployment(served)["spec"]["template"]
    return template


def _gateway_pod() -> dict[str, Any]:
    manifests = config(backend("a", "http://upstream:8000/v1"), route("chat", [("a", "m1")]))
    deployment = gateway_deployment("team-a", "default", manifests, OperatorSettings())
    template: dict[str, Any] = deployment["spec"]["template"]
    return template


def _selects(monitor: dict[str, Any], pod: dict[str, Any]) -> bool:
    wanted = monitor["spec"]["selector"]["matchLabels"]
    return all(pod["metadata"]["labels"].get(k) == v for k, v in wanted.items())


def test_nothing_is_scraped_unless_asked() -> None:
    assert render().of_kind("PodMonitor") == []


@pytest.mark.parametrize("engine", ["vllm", "tgi", "llamacpp"])
def test_the_engines_pods_are_selected_on_their_metrics_port(engine: str) -> None:
    rendered = render(MONITORING)
    engines, gateways = rendered.one("PodMonitor", "-engines"), rendered.one("PodMonitor", "-gateways")
    pod = _engine_pod(engine)
    assert _selects(engines, pod)
    assert not _selects(gateways, pod)
    (endpoint,) = engines["spec"]["podMetricsEndpoints"]
    assert endpoint == {"port": "http", "path": "/metrics", "interval": "15s", "scrapeTimeout": "10s"}
    assert endpoint["port"] in {p["name"] for c in pod["spec"]["containers"] for p in c["ports"]}


def test_the_gateways_are_scraped_on_the_ops_port_never_the_client_port() -> None:
    rendered = render(MONITORING)
    gateways, engines = rendered.one("PodMonitor", "-gateways"), rendered.one("PodMonitor", "-engines")
    pod = _gateway_pod()
    assert _selects(gateways, pod)
    assert not _selects(engines, pod)
    # /metrics and /readyz live on the ops port (INTERLOCK_GATEWAY_OPS_PORT, 8090), whose container port the
    # operator names `ops`; the client port (`http`) answers only /healthz without a key.
    assert gateways["spec"]["podMetricsEndpoints"] == [
        {"port": "ops", "path": "/metrics", "interval": "15s", "scrapeTimeout": "10s"}
    ]
    assert gateways["metadata"]["labels"]["release"] == "kube-prometheus-stack"


def test_the_monitors_look_where_the_operator_works() -> None:
    for monitor in render(MONITORING).of_kind("PodMonitor"):
        assert monitor["spec"]["namespaceSelector"] == {"any": True}
    listed = render(MONITORING | {"operator": {"watchNamespaces": ["team-a", "team-b"]}})
    for monitor in listed.of_kind("PodMonitor"):
        assert monitor["spec"]["namespaceSelector"] == {"matchNames": ["team-a", "team-b"]}
