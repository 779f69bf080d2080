"""/healthz, /readyz, /metrics and the models list."""

from __future__ import annotations

from prometheus_client.parser import text_string_to_metric_families

from interlock.telemetry.names import METRIC_NAMES
from tests.gateway.harness import backend, config, route
from tests.support import eventually

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

    text = (await gw.ops.get("/metrics")).text
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
    families = {f.name for f in text_string_to_metric_families((await gw.ops.get("/metrics")).text)}
    exposed = {n.removesuffix("_total") for n in METRIC_NAMES}
    assert families == exposed


async def test_errors_are_counted_with_bounded_labels(upstream, gateway):
    up = await upstream()
    gw = await gateway(config(backend("a", up.url), route("chat", [("a", "m1")])))
    for model in ("nope-1", "nope-2", "nope-3"):
        await gw.http.post("/v1/chat/completions", json={"model": model, "messages": HELLO})
    text = (await gw.ops.get("/metrics")).text
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
    response = await gw.ops.get("/metrics")
    assert response.status_code == 200
    names = {name for name, _ in samples(response.text)}
    assert "interlock_requests_total" not in names
    assert "interlock_request_duration_seconds_count" not in names


async def test_operations_endpoints_are_on_the_ops_port_only(upstream, gateway):
    up = await upstream()
    gw = await gateway(config(backend("a", up.url), route("chat", [("a", "m1")])))
    await gw.client.chat.completions.create(model="chat", messages=HELLO)
    assert (await gw.http.get("/healthz")).json() == {"status": "ok"}
    for path in ("/metrics", "/readyz"):
        response = await gw.http.get(path, headers={"authorization": ""})
        assert response.status_code == 404, f"{path} must not answer on the client port"
        assert "tenant" not in response.text
        assert (await gw.ops.get(path)).status_code == 200
    assert (await gw.ops.get("/healthz")).json() == {"status": "ok"}
    assert (await gw.ops.post("/metrics")).status_code == 405
    ready = (await gw.ops.get("/readyz")).text
    assert "/tmp" not in ready
    assert "sqlite" not in ready, "no file paths on /readyz"


async def test_circuit_breaker_gauge_follows_the_breaker(upstream, gateway):
    from interlock.mockprovider import Fault

    up = await upstream()
    gw = await gateway(
        config(
            backend("a", up.url, circuitBreaker={"consecutiveFailures": 2, "cooldown": "3s"}),
            route("chat", [("a", "m1")], retry={"attempts": 1}),
        )
    )

    async def breaker() -> float:
        return samples((await gw.ops.get("/metrics")).text)[
            ("interlock_circuit_breaker_open", frozenset({("backend", "a")}))
        ]

    assert await breaker() == 0
    up.provider.push_faults([Fault(status=500)] * 2)
    for _ in range(2):
        await gw.http.post("/v1/chat/completions", json={"model": "chat", "messages": HELLO})
    assert await breaker() == 1
    refused = await gw.http.post("/v1/chat/completions", json={"model": "chat", "messages": HELLO})
    assert refused.status_code == 503, "the open breaker keeps requests away"
    assert await eventually(lambda: _closed(breaker), within=10, what="the breaker closes after its cooldown")


async def _closed(breaker) -> bool:
    return await breaker() == 0


async def test_readyz_shows_no_file_paths(upstream, gateway, control_plane, tmp_path):
    from tests.gateway.enforcement_support import chat_config, cp_settings

    up = await upstream()
    gw = await gateway(chat_config(up), keys=None, **cp_settings(control_plane, tmp_path / "spool.sqlite"))
    ready = await gw.ops.get("/readyz")
    assert ready.json()["control_plane"]["usage"]["pending"] == 0
    assert str(tmp_path) not in ready.text, "the spool's path is not shown"
