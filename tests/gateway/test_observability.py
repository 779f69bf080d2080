"""/healthz, /readyz, /metrics and the models list."""

from __future__ import annotations

from prometheus_client.parser import text_string_to_metric_families

from interlock.telemetry.names import METRIC_NAMES
from tests.gateway.harness import backend, config, route

HELLO = [{"role": "user", "content": "Hello"}]


def samples(text: str) -> dict[tuple[str, frozenset[tuple[str, str]]], float]:
    return {
        (s.name, frozenset(s.labels.items())): s.value
        for family in text_string_to_metric_families(text)
        for s in family.samples
    }


async def test_metrics_count_requests_tokens_and_cost(upstream, gateway):
    up = await upstream()
    gw = await gateway(config(backend("a", up.url), route("chat", [("a", "m1")])))
    answer = await gw.client.chat.completions.create(model="chat", messages=HELLO)
    stream = await gw.client.chat.completions.create(model="chat", messages=HELLO, stream=True)
    [chunk async for chunk in stream]

    text = (await gw.http.get("/metrics")).text
    got = samples(text)
    labels = {"tenant": "default", "route": "chat", "backend": "a", "model": "m1"}
    key = lambda name, **extra: (name, frozenset({**labels, **extra}.items()))  # noqa: E731
    assert got[key("interlock_requests_total", status="200")] == 2
    assert got[key("interlock_tokens_total", type="input")] == 2 * answer.usage.prompt_tokens
    assert got[key("interlock_tokens_total", type="output")] == 2 * answer.usage.completion_tokens
    expected_cost = 2 * (answer.usage.prompt_tokens * 1.0 + answer.usage.completion_tokens * 2.0) / 1e6
    assert abs(got[key("interlock_cost_usd_total")] - expected_cost) < 1e-12
    assert got[key("interlock_request_duration_seconds_count")] == 2
    assert got[key("interlock_time_to_first_token_seconds_count")] == 1
    assert got[("interlock_inflight_requests", frozenset())] == 0


async def test_every_exported_family_is_a_known_name(upstream, gateway):
    up = await upstream()
    gw = await gateway(config(backend("a", up.url), route("chat", [("a", "m1")])))
    await gw.client.chat.completions.create(model="chat", messages=HELLO)
    families = {f.name for f in text_string_to_metric_families((await gw.http.get("/metrics")).text)}
    exposed = {n.removesuffix("_total") for n in METRIC_NAMES}
    assert families == exposed


async def test_errors_are_counted_with_bounded_labels(upstream, gateway):
    up = await upstream()
    gw = await gateway(config(backend("a", up.url), route("chat", [("a", "m1")])))
    for model in ("nope-1", "nope-2", "nope-3"):
        await gw.http.post("/v1/chat/completions", json={"model": model, "messages": HELLO})
    text = (await gw.http.get("/metrics")).text
    assert "nope-" not in text, "a raw client string never becomes a label"
    got = samples(text)
    no_route = {"tenant": "default", "route": "", "backend": "", "model": "", "status": "404"}
    assert got[("interlock_requests_total", frozenset(no_route.items()))] == 3


async def test_models_lists_the_routes_the_caller_may_use(upstream, gateway):
    up = await upstream()
    manifests = (
        backend("a", up.url),
        route("chat", [("a", "m1")]),
        route("team-a-only", [("a", "m1")], tenants=["team-a"]),
    )
    gw = await gateway(config(*manifests), keys={"sk-a": "team-a", "sk-b": "team-b"})

    async def models(key: str) -> list[str]:
        response = await gw.http.get("/v1/models", headers={"authorization": f"Bearer {key}"})
        return [m["id"] for m in response.json()["data"]]

    assert await models("sk-a") == ["chat", "team-a-only"]
    assert await models("sk-b") == ["chat"]
    denied = await gw.http.post(
        "/v1/chat/completions",
        json={"model": "team-a-only", "messages": HELLO},
        headers={"authorization": "Bearer sk-b"},
    )
    assert denied.status_code == 404, "another tenant's route does not exist for this caller"


async def test_embeddings_through_the_gateway(upstream, gateway):
    up = await upstream(embedding_dim=64)
    gw = await gateway(config(backend("a", up.url, models=["embed"]), route("text-embedding", [("a", "embed")])))

    result = await gw.client.embeddings.create(model="text-embedding", input=["one", "two"])

    assert [len(item.embedding) for item in result.data] == [64, 64]
    assert result.usage.prompt_tokens > 0
    assert up.provider.stats.last.body["model"] == "embed"
    missing = await gw.http.post("/v1/embeddings", json={"model": "text-embedding"})
    assert missing.status_code == 400
    assert missing.json()["error"]["param"] == "input"


async def test_metrics_can_be_turned_off(upstream, gateway):
    up = await upstream()
    gw = await gateway(config(backend("a", up.url), route("chat", [("a", "m1")])), metrics_enabled=False)
    await gw.client.chat.completions.create(model="chat", messages=HELLO)
    response = await gw.http.get("/metrics")
    assert response.status_code == 200
    names = {name for name, _ in samples(response.text)}
    assert "interlock_requests_total" not in names
    assert "interlock_request_duration_seconds_count" not in names
