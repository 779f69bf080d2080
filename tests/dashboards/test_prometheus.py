"""Every panel query of both dashboards, run by a real Prometheus scraping a real gateway under generated traffic.

The gateway serves on loopback with mock upstreams and two tenants' keys; bounded traffic covers streamed and
unary requests, a retried upstream failure, a fallback, an error that reaches the client and a rate-limited route.
One upstream stands in for a self-hosted vLLM engine (a ``vllm`` backend: the mock with ``engine_metrics``), which
Prometheus scrapes as well, so the vLLM row reads vLLM's own series measured on the requests routed there.
Then each query (template variables substituted both as "All" and as the explicit values Grafana would send) must
parse, and return data, and use only metric names and labels the gateway (or, for ``vllm:*``, the engine) exports.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import AsyncExitStack
from dataclasses import dataclass
from typing import Any

import httpx
import openai
import pytest
import pytest_asyncio
from prometheus_client.parser import text_string_to_metric_families

from interlock.mockprovider import Fault
from interlock.telemetry.names import METRIC_NAMES
from tests.dashboards.prometheus import Prometheus, running_prometheus
from tests.dashboards.promql import Query, load, metric_names, queries, selectors, substitute, variables
from tests.dashboards.test_dashboards import exported_name
from tests.gateway.harness import Servers, backend, config, route, start_gateway, start_upstream
from tests.support import eventually

HELLO = [{"role": "user", "content": "Hello"}]
KEYS = {"sk-il-alpha-0000000000000000000000000000": "t-alpha", "sk-il-beta-00000000000000000000000000000": "t-beta"}
GRAFANA_BUILTINS = {"__rate_interval": "20s", "__interval": "5s", "__range": "5m"}
ALL = {"tenant": ".*", "route": ".*", "model": ".*", "backend": ".*"}

# Metrics of features that may not be exported yet. A panel reading only these may come back empty while the
# gateway has no sample of them after traffic meant to produce them; once it has, the panel must return data.
PENDING = {
    "interlock_ratelimited_total": "rate limiting (issue 4: per-tenant and per-route limits)",
    "interlock_snapshot_age_seconds": "only a gateway with a control plane polls a snapshot; this one has static keys",
    "interlock_limit_trips_total": "only hostile input trips a limit (tests/gateway/test_http_limits.py)",
    **dict.fromkeys(
        (
            "interlock_endpoints",
            "interlock_endpoint_inflight_requests",
            "interlock_endpoint_engine_requests",
            "interlock_endpoint_kv_cache_usage_ratio",
            "interlock_endpoint_metrics_age_seconds",
            "interlock_endpoint_picks_total",
            "interlock_queue_wait_seconds",
            "interlock_queued_requests",
            "interlock_queue_rejected_total",
            "interlock_spillovers_total",
        ),
        "only a backend with several endpoints (and, for the queue and spill-over, a saturated one) has them; "
        "their samples are checked over real HTTP in tests/gateway/test_endpoint_pool.py and test_fair_queueing.py",
    ),
}


@dataclass
class Traffic:
    requests: int
    rate_limited: int


@pytest_asyncio.fixture
async def stack() -> AsyncIterator[AsyncExitStack]:
    async with AsyncExitStack() as stack:
        yield stack


async def _drain(stream: Any) -> None:
    async for _ in stream:
        pass


async def generate_traffic(root: str, primary: Any, spare: Any) -> Traffic:
    """Bounded traffic touching every metric: 23 requests from two tenants, 5 of them to the vLLM engine."""
    clients = {
        tenant: openai.AsyncOpenAI(base_url=f"{root}/v1", api_key=key, max_retries=0, timeout=20)
        for key, tenant in KEYS.items()
    }
    alpha = clients["t-alpha"]
    sent = 0
    try:
        for client in clients.values():
            for _ in range(3):
                await client.chat.completions.create(model="chat", messages=HELLO)
                await _drain(await client.chat.completions.create(model="chat", messages=HELLO, stream=True))
                sent += 2
            await client.chat.completions.create(model="selfhosted", messages=HELLO)
            await _drain(await client.chat.completions.create(model="selfhosted", messages=HELLO, stream=True))
            sent += 2
        cut = await alpha.chat.completions.create(model="selfhosted", messages=HELLO, max_tokens=2)
        assert cut.choices[0].finish_reason == "length"
        sent += 1
        primary.provider.push_faults([Fault(status=500)])  # the retry on the same backend succeeds
        retried = await alpha.chat.completions.with_raw_response.create(model="chat", messages=HELLO)
        assert retried.headers["x-interlock-backend"] == "primary"
        primary.provider.push_faults([Fault(status=500), Fault(status=500)])  # both attempts fail: fallback
        fallback = await alpha.chat.completions.with_raw_response.create(model="chat", messages=HELLO, stream=True)
        assert fallback.headers["x-interlock-backend"] == "spare"
        await _drain(fallback.parse())
        spare.provider.push_faults([Fault(status=500)])  # a route without fallback: the client gets the error
        with pytest.raises(openai.APIStatusError) as failed:
            await alpha.chat.completions.create(model="solo", messages=HELLO)
        assert failed.value.status_code == 502
        sent += 3
        limited = 0
        for _ in range(3):
            try:
                await alpha.chat.completions.create(model="limited", messages=HELLO)
            except openai.RateLimitError:
                limited += 1
            sent += 1
        return Traffic(sent, limited)
    finally:
        for client in clients.values():
            await client.close()


def _engine_exposition(text: str) -> tuple[set[str], dict[str, set[str]]]:
    """The vLLM engine's series names (``_bucket``/``_total`` and all, as queried) and each one's label names."""
    labels: dict[str, set[str]] = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            labels.setdefault(sample.name, set()).update(sample.labels)
    return set(labels), labels


def _exposition(text: str) -> tuple[set[str], dict[str, set[str]]]:
    """Families the gateway declares (exposed names) and, for those with samples, their label names."""
    declared, labels = set(), {}
    for family in text_string_to_metric_families(text):
        declared.add(f"{family.name}_total" if family.type == "counter" else family.name)
        for sample in family.samples:
            labels.setdefault(exported_name(sample.name), set()).update(sample.labels)
    return declared, labels


async def _run(prometheus: Prometheus, query: Query, values: dict[str, str]) -> tuple[str, list[Any]]:
    expr = substitute(query.expr, {**GRAFANA_BUILTINS, **values})
    body = await prometheus.query(expr)
    if body["status"] != "success":
        return f"does not parse: {body.get('error')}: {expr}", []
    return "", body["data"]["result"]


async def test_every_panel_query_returns_data_from_a_real_prometheus_scraping_the_gateway(
    stack: AsyncExitStack, capsys: pytest.CaptureFixture[str]
) -> None:
    servers = Servers(stack)
    primary = await start_upstream(servers, cached_tokens=2)
    spare = await start_upstream(servers)
    # vLLM's served model is m3: its series exist (at zero) from the first scrape, before any traffic.
    engine = await start_upstream(servers, engine_metrics=True, models=["m3"], chunk_delay_s=0.002)
    gateway = await start_gateway(
        stack,
        servers,
        config(
            backend("primary", primary.url, models=["m1"]),
            backend("spare", spare.url, models=["m2"]),
            backend("vllm", engine.url, models=["m3"], provider="vllm"),
            route("chat", [("primary", "m1")], fallbacks=[("spare", "m2")], retry={"attempts": 2, "backoff": "1ms"}),
            route("solo", [("spare", "m2")], retry={"attempts": 1}),
            route("selfhosted", [("vllm", "m3")]),
            route("limited", [("primary", "m1")], limits={"requestsPerMinute": 1}),
        ),
        keys=KEYS,
    )
    ops_root = str(gateway.ops.base_url).rstrip("/")
    targets = [ops_root.removeprefix("http://"), engine.root.removeprefix("http://")]
    async with running_prometheus(targets) as prometheus:
        traffic = await generate_traffic(gateway.root, primary, spare)
        async with httpx.AsyncClient() as http:
            declared, labels = _exposition((await http.get(f"{ops_root}/metrics")).text)
            engine_declared, engine_labels = _engine_exposition((await http.get(f"{engine.root}/metrics")).text)

        # The gateway exports the contract's names; Prometheus saw every request.
        assert declared >= set(METRIC_NAMES)
        pending = {name: why for name, why in PENDING.items() if name not in labels}
        assert set(labels) | set(pending) >= set(METRIC_NAMES), "traffic left a metric without samples"

        async def scraped_everything() -> bool:
            body = await prometheus.query("sum(interlock_requests_total)")
            result = body["data"]["result"]
            return bool(result) and float(result[0]["value"][1]) == traffic.requests

        await eventually(scraped_everything, within=20, interval=0.25, what="every request scraped")
        engine_requests = engine.provider.stats.by_path["/v1/chat/completions"]
        assert engine_requests == 5

        async def scraped_the_engine() -> bool:
            body = await prometheus.query("sum(vllm:request_success_total)")
            result = body["data"]["result"]
            return bool(result) and float(result[0]["value"][1]) == engine_requests

        await eventually(scraped_the_engine, within=20, interval=0.25, what="every engine request scraped")

        # The vLLM row shows that traffic: token and finished-request rates above zero, latency quantiles measured,
        # no preemption (the mock never evicts a request), nothing left running.
        vllm_panels = [q for q in queries(load("latency.json")) if "vllm:" in q.expr]
        for query in vllm_panels:
            _, result = await _run(prometheus, query, ALL)
            values = [float(r["value"][1]) for r in result]
            assert values, f"{query.where}: no data"
            if "num_preemptions" in query.expr or "num_requests" in query.expr or "kv_cache" in query.expr:
                assert values == [0.0], f"{query.where}: {values}"
            elif "histogram_quantile" in query.expr:
                assert all(0 < v < 60 for v in values), f"{query.where}: {values}"
            else:
                assert max(values) > 0, f"{query.where}: {values}"

        dashboards = [load("cost.json"), load("latency.json")]
        all_queries = [q for d in dashboards for q in queries(d)]

        # Template variables resolve (label_values) to the tenants, routes, models and backends of the traffic.
        explicit = {}
        for var in variables(dashboards[0]):
            values = await prometheus.label_values(var.label, substitute(var.metric_selector, ALL))
            explicit[var.name] = "|".join(values)
        assert explicit["tenant"] == "t-alpha|t-beta"
        assert set(explicit["route"].split("|")) >= {"chat", "solo", "selfhosted"}
        assert explicit["model"] == "m1|m2|m3"
        assert explicit["backend"] == "primary|spare|vllm"
        assert [(v.name, v.metric_selector) for v in variables(dashboards[1])] == [
            (v.name, v.metric_selector) for v in variables(dashboards[0])
        ]

        # Names and labels: only what the gateway exports, and for vLLM's own series what the engine exports.
        for query in all_queries:
            for name in metric_names(query.expr):
                if name.startswith("vllm:"):
                    assert name in engine_declared, f"{query.where}: {name} is not exported by the vLLM engine"
                else:
                    assert exported_name(name) in declared, f"{query.where}: {name} is not exported by the gateway"
            for name, matched in selectors(query.expr):
                if name.startswith("vllm:"):
                    have = engine_labels[name]
                    assert matched <= have, f"{query.where}: {name} has no label {matched - have}"
                    continue
                family = exported_name(name)
                if family in labels:
                    assert matched <= labels[family], f"{query.where}: {name} has no label {matched - labels[family]}"

        def allowed_empty(query: Query) -> str:
            names = {exported_name(n) for n in metric_names(query.expr)}
            waiting = sorted(n for n in names if n in pending)
            return f"{', '.join(waiting)} not exported yet ({pending[waiting[0]]})" if waiting else ""

        async def failures() -> list[str]:
            problems = []
            for query in all_queries:
                for mode, values in (("all", ALL), ("explicit", explicit)):
                    error, result = await _run(prometheus, query, values)
                    if error:
                        problems.append(f"{query.where} [{mode}]: {error}")
                    elif not result and not allowed_empty(query):
                        problems.append(f"{query.where} [{mode}]: no data")
            return problems

        async def all_good() -> bool:
            return not await failures()

        try:
            await eventually(all_good, within=30, interval=0.5, what="every panel query returns data")
        except AssertionError:
            pytest.fail("\n".join(await failures()))

        empty = {}
        for query in all_queries:
            _, result = await _run(prometheus, query, ALL)
            if not result:
                empty[query.where] = allowed_empty(query)
        by_reason: dict[str, list[str]] = {}
        for where, why in empty.items():
            by_reason.setdefault(why, []).append(where.split(" / ", 1)[1])
        with capsys.disabled():
            print(f"\n{len(all_queries)} panel queries returned data except {len(empty)}:")
            for why, where in by_reason.items():
                print(f"  {why}: {', '.join(where)}")

    # What may be empty is exactly what the test environment cannot produce; the rest returned data.
    assert all(why for why in empty.values())
    if "interlock_ratelimited_total" not in pending:
        assert traffic.rate_limited >= 1
