"""``engine_metrics``: the mock's ``GET /metrics`` in vLLM's own format, following the mock's real traffic."""

from __future__ import annotations

import asyncio
import math
from collections.abc import Mapping
from typing import Any

import pytest
from prometheus_client.parser import text_string_to_metric_families

from interlock.mockprovider import Fault
from interlock.mockprovider.engine_metrics import FINISH_REASONS, METRIC_NAMES
from tests.dashboards.promql import load, metric_names, queries
from tests.mockprovider.process import mock_process
from tests.mockprovider.served import Serve, Served
from tests.support import eventually

pytestmark = pytest.mark.asyncio(loop_scope="session")

HELLO = [{"role": "user", "content": "hello there, engine"}]
Samples = dict[tuple[str, frozenset[tuple[str, str]]], float]


async def scrape(served: Served) -> tuple[Samples, dict[str, str]]:
    """Every sample by (name, labels), and each family's type by sample name."""
    response = await served.http.get("/metrics")
    assert response.status_code == 200, response.text
    assert response.headers["content-type"].startswith("text/plain; version=0.0.4")
    samples: Samples = {}
    types: dict[str, str] = {}
    for family in text_string_to_metric_families(response.text):
        for sample in family.samples:
            samples[sample.name, frozenset(sample.labels.items())] = sample.value
            types[sample.name] = family.type
    return samples, types


def value(samples: Samples, name: str, **labels: str) -> float:
    """The sum of the samples named ``name`` whose labels include ``labels``."""
    wanted = set(labels.items())
    found = [v for (n, have), v in samples.items() if n == name and wanted <= have]
    assert found, f"no sample {name}{labels}"
    return sum(found)


def dashboard_vllm_names() -> set[str]:
    names = {n for d in ("cost.json", "latency.json") for q in queries(load(d)) for n in metric_names(q.expr)}
    return {n for n in names if n.startswith("vllm:")}


async def test_off_by_default(mock: Served) -> None:
    assert mock.provider.engine is None
    response = await mock.http.get("/metrics")
    assert response.status_code == 404
    assert response.json()["error"]["code"] == "unknown_url"


async def test_series_are_exactly_what_the_dashboards_query(serve: Serve) -> None:
    served = await serve(engine_metrics=True)
    await served.client.chat.completions.create(model="m", messages=HELLO)
    samples, types = await scrape(served)
    # prometheus_client's creation times (``*_created`` gauges), exposed by vLLM as well, are nothing to query.
    exposed = {name for name, _ in samples if not name.endswith("_created")}
    queried = dashboard_vllm_names()
    assert len(queried) == 11 - 1  # 11 queries; two read the same TTFT histogram
    assert queried <= exposed, f"queried but not exposed: {queried - exposed}"

    def family(name: str) -> str:
        """The name a dashboard queries a sample's family by: a histogram's, or a counter's ``_total``."""
        if types[name] == "histogram":
            return next(name.removesuffix(s) for s in ("_bucket", "_sum", "_count", "") if name.endswith(s))
        return name

    assert {family(n) for n in exposed} == set(METRIC_NAMES)
    # What no dashboard reads is what the gateway's picker and bench/routing read: the prefix cache's counters,
    # and the cache's size.
    assert set(METRIC_NAMES) - {family(n) for n in queried} == {
        "vllm:prefix_cache_queries_total",
        "vllm:prefix_cache_hits_total",
        "vllm:cache_config_info",
    }
    for (name, labels), _ in samples.items():
        extra = {"le", "finished_reason", "block_size", "num_gpu_blocks", "enable_prefix_caching"}
        assert {k for k, _ in labels} - extra == {"model_name", "engine"}, name
    config = [dict(labels) for (name, labels), value in samples.items() if name == "vllm:cache_config_info"]
    assert config  # one per model name, each an engine of its own, with the KV cache's size (16384 tokens)
    assert all(c["block_size"] == "16" and c["num_gpu_blocks"] == "1024" for c in config)
    kinds = {family(n): types[n] for n in queried}
    assert kinds == {
        "vllm:num_requests_running": "gauge",
        "vllm:num_requests_waiting": "gauge",
        "vllm:kv_cache_usage_perc": "gauge",
        "vllm:num_preemptions_total": "counter",
        "vllm:prompt_tokens_total": "counter",
        "vllm:generation_tokens_total": "counter",
        "vllm:request_success_total": "counter",
        "vllm:time_to_first_token_seconds": "histogram",
        "vllm:inter_token_latency_seconds": "histogram",
        "vllm:e2e_request_latency_seconds": "histogram",
    }


async def test_values_follow_the_traffic(serve: Serve) -> None:
    served = await serve(engine_metrics=True, stream_chunks=5, chunk_delay_s=0.01)
    unary = await served.client.chat.completions.create(model="a", messages=HELLO)
    stream = await served.client.chat.completions.create(
        model="a", messages=HELLO, stream=True, stream_options={"include_usage": True}
    )
    chunks = [chunk async for chunk in stream]
    cut = await served.client.chat.completions.create(model="a", messages=HELLO, max_tokens=2)
    message = await served.anthropic.messages.create(model="b", max_tokens=100, messages=HELLO)  # type: ignore[arg-type]
    streamed_usage = chunks[-1].usage
    assert unary.usage
    assert cut.usage
    assert streamed_usage
    assert cut.choices[0].finish_reason == "length"

    samples, _ = await scrape(served)
    a, b = {"model_name": "a", "engine": "0"}, {"model_name": "b", "engine": "0"}
    prompt_a = unary.usage.prompt_tokens + streamed_usage.prompt_tokens + cut.usage.prompt_tokens
    assert value(samples, "vllm:prompt_tokens_total", **a) == prompt_a
    generated_a = unary.usage.completion_tokens + streamed_usage.completion_tokens + cut.usage.completion_tokens
    assert value(samples, "vllm:generation_tokens_total", **a) == generated_a == 5 + 5 + 2
    assert value(samples, "vllm:prompt_tokens_total", **b) == message.usage.input_tokens
    assert value(samples, "vllm:generation_tokens_total", **b) == message.usage.output_tokens
    assert value(samples, "vllm:request_success_total", **a, finished_reason="stop") == 2
    assert value(samples, "vllm:request_success_total", **a, finished_reason="length") == 1
    assert value(samples, "vllm:request_success_total", **a, finished_reason="abort") == 0
    assert value(samples, "vllm:request_success_total", **b, finished_reason="stop") == 1
    for name in ("vllm:time_to_first_token_seconds_count", "vllm:e2e_request_latency_seconds_count"):
        assert value(samples, name, **a) == 3
        assert value(samples, name, **b) == 1
    # The stream's SSE chunks: the role, five pieces, the finish and the usage; 7 intervals between 8 sends.
    assert len(chunks) == 8
    assert value(samples, "vllm:inter_token_latency_seconds_count", **a) == 7
    # Paced at 10 ms a chunk: the stream's intervals measure at least that, and its latency at least 7 of them.
    assert value(samples, "vllm:inter_token_latency_seconds_sum", **a) >= 7 * 0.01 * 0.9
    e2e_sum = value(samples, "vllm:e2e_request_latency_seconds_sum", **a)
    assert e2e_sum >= 7 * 0.01 * 0.9
    assert value(samples, "vllm:time_to_first_token_seconds_sum", **a) < e2e_sum
    assert value(samples, "vllm:e2e_request_latency_seconds_bucket", **a, le="+Inf") == 3
    for model in (a, b):
        for gauge in ("vllm:num_requests_running", "vllm:num_requests_waiting", "vllm:kv_cache_usage_perc"):
            assert value(samples, gauge, **model) == 0
        assert value(samples, "vllm:num_preemptions_total", **model) == 0
    assert set(FINISH_REASONS) == {
        dict(labels)["finished_reason"] for n, labels in samples if n.endswith("success_total")
    }


async def _gauges(served: Served, model: Mapping[str, str]) -> tuple[float, ...]:
    samples, _ = await scrape(served)
    return tuple(
        value(samples, name, **model)
        for name in ("vllm:num_requests_running", "vllm:num_requests_waiting", "vllm:kv_cache_usage_perc")
    )


async def test_running_waiting_kv_cache_and_abort_follow_requests_in_flight(serve: Serve) -> None:
    served = await serve(engine_metrics=True, max_num_seqs=1, kv_cache_tokens=1000, stream_chunks=3)
    model = {"model_name": "m", "engine": "0"}
    body: dict[str, Any] = {"model": "m", "messages": HELLO, "stream": True}
    served.provider.push_faults([Fault(first_token_delay_s=60)])  # the first request holds its slot
    async with served.http.stream("POST", "/v1/chat/completions", json=body) as held:
        assert held.status_code == 200
        second = asyncio.create_task(served.client.chat.completions.create(model="m", messages=HELLO))

        async def one_running_one_waiting() -> bool:
            running, waiting, _ = await _gauges(served, model)
            return (running, waiting) == (1, 1)

        await eventually(one_running_one_waiting, within=5, what="one request running, one waiting for the slot")
        samples, _ = await scrape(served)
        prompt = value(samples, "vllm:prompt_tokens_total", **model)  # the running request's prefill only
        assert prompt > 0
        # KV blocks of 16 tokens: the prompt and the 3-token answer it reserves, over the 62 whole blocks of 1000.
        assert value(samples, "vllm:kv_cache_usage_perc", **model) == pytest.approx(math.ceil((prompt + 3) / 16) / 62)
        assert value(samples, "vllm:time_to_first_token_seconds_count", **model) == 0
    # The client left the held stream: it aborts, frees the slot, and the waiting request runs to the end.
    answer = await second
    assert answer.usage is not None

    async def settled() -> bool:
        samples, _ = await scrape(served)
        return value(samples, "vllm:request_success_total", **model) == 2

    await eventually(settled, within=5, what="both requests finished")
    samples, _ = await scrape(served)
    assert value(samples, "vllm:request_success_total", **model, finished_reason="abort") == 1
    assert value(samples, "vllm:request_success_total", **model, finished_reason="stop") == 1
    assert value(samples, "vllm:generation_tokens_total", **model) == answer.usage.completion_tokens
    assert await _gauges(served, model) == (0, 0, 0)
    assert value(samples, "vllm:num_preemptions_total", **model) == 0
    # The waiting request's wait is part of its latency: its e2e is the longer one.
    assert value(samples, "vllm:e2e_request_latency_seconds_count", **model) == 2


async def test_kv_cache_usage_is_capped_at_full(serve: Serve) -> None:
    served = await serve(engine_metrics=True, kv_cache_tokens=1, stream_chunks=2)
    model = {"model_name": "m", "engine": "0"}
    served.provider.push_faults([Fault(first_token_delay_s=60)])
    body: dict[str, Any] = {"model": "m", "messages": HELLO, "stream": True}
    async with served.http.stream("POST", "/v1/chat/completions", json=body):

        async def full() -> bool:
            return await _gauges(served, model) == (1, 0, 1.0)

        await eventually(full, within=5, what="a full KV cache")


async def test_metrics_need_no_key_and_are_not_counted(serve: Serve) -> None:
    served = await serve(engine_metrics=True, api_key="secret", client_key="secret")
    await served.client.chat.completions.create(model="m", messages=HELLO)
    pending = Fault(status=500)
    served.provider.push_faults([pending])
    samples, _ = await scrape(served)  # no key sent by the raw client
    assert value(samples, "vllm:request_success_total", model_name="m") == 1
    assert served.provider.stats.by_path == {"/v1/chat/completions": 1}
    assert list(served.provider.faults) == [pending]


async def test_module_flag_serves_engine_metrics() -> None:
    async with mock_process("--engine-metrics", "--max-num-seqs", "4", ready_path="/health") as http:
        chat = {"model": "served", "messages": HELLO}
        assert (await http.post("/v1/chat/completions", json=chat)).status_code == 200
        text = (await http.get("/metrics")).text
        assert 'vllm:request_success_total{engine="0",finished_reason="stop",model_name="served"} 1.0' in text


async def test_listed_models_have_series_from_the_start_others_from_their_first_request(serve: Serve) -> None:
    served = await serve(engine_metrics=True, models=["served"])
    samples, _ = await scrape(served)
    assert {dict(labels)["model_name"] for _, labels in samples} == {"served"}
    assert value(samples, "vllm:request_success_total", model_name="served") == 0
    assert value(samples, "vllm:time_to_first_token_seconds_count", model_name="served") == 0
    await served.client.chat.completions.create(model="other", messages=HELLO)
    samples, _ = await scrape(served)
    assert {dict(labels)["model_name"] for _, labels in samples} == {"served", "other"}
    assert value(samples, "vllm:request_success_total", model_name="other") == 1
    assert value(samples, "vllm:request_success_total", model_name="served") == 0
