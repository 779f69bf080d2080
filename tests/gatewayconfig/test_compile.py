"""``compile_config``: pure, deterministic, never leaks a secret, and one bad route never takes down the others."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import orjson
import pytest
from pydantic import ValidationError

from interlock.gatewayconfig import (
    BackendConfig,
    CredentialRef,
    DiscoveryConfig,
    GatewayConfig,
    ModelPrice,
    RetryConfig,
    TimeoutConfig,
    compile_config,
    self_hosted_pods_service,
    self_hosted_url,
)
from interlock.resources import LLMBackend, Route, load_manifests
from interlock.resources.manifests import manifest_files

EXAMPLES = Path(__file__).resolve().parents[2] / "examples"


def backend(name: str, *, namespace: str = "default", **spec: Any) -> LLMBackend:
    spec.setdefault("provider", "mock")
    spec.setdefault("models", [{"name": "m1"}, {"name": "m2"}])
    return LLMBackend.model_validate({"metadata": {"name": name, "namespace": namespace}, "spec": spec})


def route(name: str, *, namespace: str = "default", **spec: Any) -> Route:
    spec.setdefault("model", name)
    spec.setdefault("targets", [{"backend": "mock", "model": "m1"}])
    return Route.model_validate({"metadata": {"name": name, "namespace": namespace}, "spec": spec})


def _examples(name: str) -> tuple[list[LLMBackend], list[Route]]:
    manifests = load_manifests(manifest_files(EXAMPLES / name))
    return manifests.backends, manifests.routes


def test_compile_is_deterministic_and_pure() -> None:
    backends, routes = _examples("cluster")
    before = [o.model_dump() for o in [*backends, *routes]]
    first = compile_config(backends, routes)
    again = compile_config(list(reversed(backends)), list(reversed(routes)))
    assert first == again
    assert first.to_json() == again.to_json()
    assert len(first.version) == 16
    assert int(first.version, 16) >= 0
    assert [o.model_dump() for o in [*backends, *routes]] == before


def test_version_follows_content() -> None:
    base = compile_config([backend("mock")], [route("chat")])
    assert compile_config([backend("mock")], [route("chat")]).version == base.version
    changed = compile_config([backend("mock")], [route("chat", retry={"attempts": 3})])
    assert changed.version != base.version
    assert compile_config([backend("mock")], [route("chat")], gateway="default", namespace="default") == base


def test_compiled_examples() -> None:
    config = compile_config(*_examples("local"))
    assert config.gateway == "default/default"
    assert config.rejected == {}
    assert sorted(config.routes) == ["chat-default", "chat-large", "text-embedding"]
    chat = config.routes["chat-default"]
    assert chat.name == "chat-default"
    assert [(t.backend, t.model, t.weight) for t in chat.targets] == [
        ("mock", "mock-small", 80),
        ("mock", "mock-large", 20),
    ]
    assert chat.retry == RetryConfig(attempts=2, backoff_s=0.25, on=("connect", "429", "5xx"))
    assert chat.timeouts == TimeoutConfig(request_s=300.0, first_token_s=30.0)
    large = config.routes["chat-large"]
    assert [(f.backend, f.model, f.weight) for f in large.fallbacks] == [("mock", "mock-small", 1)]
    assert config.routes["text-embedding"].name == "embeddings"


def test_prices_and_cached_price_default() -> None:
    config = compile_config(*_examples("local"))
    models = config.backends["mock"].models
    assert models["mock-small"] == ModelPrice(
        input_per_million=0.15, output_per_million=0.60, cached_input_per_million=0.075
    )
    assert models["mock-large"].cached_input_per_million == 2.50, "cached input defaults to the input price"
    assert models["mock-embed"] == ModelPrice(input_per_million=0.02, cached_input_per_million=0.02)


def test_backend_urls() -> None:
    config = compile_config(
        [
            backend("mock"),
            backend("hosted", provider="openai", url="https://api.example.com/v1/"),
            backend("llama", namespace="ml", provider="vllm", serving={"model": "meta-llama/Llama-3.1-8B-Instruct"}),
        ],
        [],
    )
    assert config.backends["mock"].url is None
    assert config.backends["hosted"].url == "https://api.example.com/v1"
    assert "llama" not in config.backends, "backends of other namespaces are left out"
    ml = compile_config([backend("llama", namespace="ml", provider="vllm", serving={"model": "x"})], [], namespace="ml")
    assert ml.backends["llama"].url == self_hosted_url("llama", "ml") == "http://llama.ml.svc:8000/v1"


def test_cluster_backends() -> None:
    config = compile_config(*_examples("cluster"))
    openai = config.backends["openai"]
    assert openai == BackendConfig(
        name="openai",
        provider="openai",
        url="https://api.openai.com/v1",
        credentials=CredentialRef(secret="openai", key="api-key"),
        models={
            "gpt-4o-mini": ModelPrice(input_per_million=0.15, output_per_million=0.6, cached_input_per_million=0.075)
        },
        max_concurrency=64,
    )
    assert config.backends["llama-8b"].url == "http://llama-8b.default.svc:8000/v1"
    # The key the operator generates for the engine, which the gateway sends.
    assert config.backends["llama-8b"].credentials == CredentialRef(secret="llama-8b-engine-key", key="api-key")


def test_circuit_breaker_and_route_limits() -> None:
    config = compile_config(
        [backend("mock", circuitBreaker={"consecutiveFailures": 2, "cooldown": "1m30s"})],
        [route("chat", tenants=["acme"], limits={"requestsPerMinute": 5, "tokensPerMinute": 100})],
    )
    breaker = config.backends["mock"].circuit_breaker
    assert (breaker.consecutive_failures, breaker.cooldown_s) == (2, 90.0)
    chat = config.routes["chat"]
    assert (chat.tenants, chat.requests_per_minute, chat.tokens_per_minute) == (("acme",), 5, 100)


def test_picker_batch_size_is_configured_or_the_queueing_threshold() -> None:
    endpoints = [{"url": "http://10.0.0.1:8000/v1"}, {"url": "http://10.0.0.2:8000/v1"}]
    spec: dict[str, Any] = {"provider": "vllm", "endpoints": endpoints}
    config = compile_config(
        [
            backend("given", **spec, picker={"batchSize": 64}, queueing={"maxInflightPerEndpoint": 8}),
            backend("queued", **spec, queueing={"maxInflightPerEndpoint": 8}),
            backend("learned", **spec),
        ],
        [],
    )
    assert {name: b.picker.batch_size for name, b in config.backends.items()} == {
        "given": 64,
        "queued": 8,
        "learned": 0,
    }


def test_picker_kv_cache_threshold_is_compiled_with_its_default() -> None:
    spec: dict[str, Any] = {"provider": "vllm", "endpoints": [{"url": "http://10.0.0.1:8000/v1"}]}
    config = compile_config([backend("set", **spec, picker={"kvCacheThreshold": 0.5}), backend("defaults", **spec)], [])
    assert {name: b.picker.kv_cache_threshold for name, b in config.backends.items()} == {"set": 0.5, "defaults": 0.8}
    with pytest.raises(ValidationError, match="kvCacheThreshold"):  # the KV term is scaled by 1 / (1 - threshold)
        backend("full", **spec, picker={"kvCacheThreshold": 1})


def test_queueing_headroom_and_its_target_are_compiled_with_their_defaults() -> None:
    endpoints = [{"url": "http://10.0.0.1:8000/v1"}]
    spec: dict[str, Any] = {"provider": "vllm", "endpoints": endpoints}
    config = compile_config(
        [
            backend("set", **spec, queueing={"maxInflightPerEndpoint": 8, "headroom": 2, "headroomTarget": 0.01}),
            backend("fixed", **spec, queueing={"maxInflightPerEndpoint": 8, "headroomTarget": 0}),
            backend("defaults", **spec, queueing={"maxInflightPerEndpoint": 8}),
        ],
        [],
    )
    assert {name: (b.queueing.headroom, b.queueing.headroom_target) for name, b in config.backends.items()} == {
        "set": (2, 0.01),
        "fixed": (1, 0.0),
        "defaults": (1, 0.005),
    }


def test_routes_of_other_gateways_and_namespaces_are_ignored() -> None:
    routes = [
        route("mine"),
        route("edge", gateway="edge"),
        route("elsewhere", namespace="team-b"),
    ]
    config = compile_config([backend("mock")], routes)
    assert sorted(config.routes) == ["mine"]
    assert config.rejected == {}
    edge = compile_config([backend("mock")], routes, gateway="edge")
    assert sorted(edge.routes) == ["edge"]
    assert edge.gateway == "default/edge"


def test_unservable_routes_are_rejected_and_the_rest_compile() -> None:
    routes = [
        route("good"),
        route("missing-backend", targets=[{"backend": "nope", "model": "m1"}]),
        route("unserved-model", targets=[{"backend": "mock", "model": "m9"}]),
        route("bad-fallback", fallbacks=[{"backend": "gone", "model": "m2"}]),
    ]
    config = compile_config([backend("mock")], routes)
    assert sorted(config.routes) == ["good"]
    assert config.rejected == {
        "missing-backend": "backend 'nope' does not exist (LLMBackends here: mock)",
        "unserved-model": "backend 'mock' does not serve model 'm9' (it serves: m1, m2)",
        "bad-fallback": "backend 'gone' does not exist (LLMBackends here: mock)",
    }


def test_a_misspelt_backend_gets_the_closest_name() -> None:
    config = compile_config([backend("mock")], [route("chat", targets=[{"backend": "mokc", "model": "m1"}])])
    assert config.rejected == {"chat": "backend 'mokc' does not exist; did you mean 'mock'?"}


def test_backend_in_another_namespace_does_not_resolve() -> None:
    config = compile_config([backend("mock", namespace="team-b")], [route("chat")])
    assert config.routes == {}
    assert config.rejected == {"chat": "backend 'mock' does not exist (LLMBackends here: none)"}


def test_duplicate_public_model_names() -> None:
    routes = [route("b-second", model="chat"), route("a-first", model="chat")]
    config = compile_config([backend("mock")], routes)
    assert config.routes["chat"].name == "a-first", "the route whose name sorts first wins, whatever the input order"
    assert config.rejected == {"b-second": "model 'chat' is already served by route 'a-first'"}


def test_empty_config() -> None:
    config = compile_config([], [])
    assert (config.backends, config.routes, config.rejected) == ({}, {}, {})
    assert config.version


def test_json_round_trip() -> None:
    config = compile_config(*_examples("cluster"))
    data = config.to_json()
    assert isinstance(data, bytes)
    assert GatewayConfig.from_json(data) == config
    assert GatewayConfig.from_json(data.decode()) == config
    parsed = orjson.loads(data)
    assert parsed["schemaVersion"] == 1
    assert parsed["version"] == config.version
    assert "firstTokenS" in parsed["routes"]["chat-default"]["timeouts"]
    assert data == orjson.dumps(parsed, option=orjson.OPT_SORT_KEYS), "canonical: sorted keys, no whitespace"


def test_from_json_rejects_unknown_fields() -> None:
    data = orjson.loads(compile_config([], []).to_json())
    data["surprise"] = True
    with pytest.raises(ValueError, match="surprise"):
        GatewayConfig.from_json(orjson.dumps(data))


def test_no_secret_value_in_the_compiled_config() -> None:
    manifests = load_manifests(manifest_files(EXAMPLES / "cluster"))
    assert "sk-replace-me" in str(manifests.secrets), "the example must hold a secret value for this test to mean much"
    config = compile_config(manifests.backends, manifests.routes)
    assert b"sk-replace-me" not in config.to_json()
    assert "sk-replace-me" not in repr(config)


def test_spillover_names_its_backend_as_target_or_backend() -> None:
    hosted = backend("hosted", models=[{"name": "gpt"}])
    two = backend("two")  # serves m1 and m2
    routes = [
        # The form: the backend as ``target``, its only model implied.
        route("a", spillover={"target": "hosted", "whenPredictedFirstToken": "2s"}),
        route("b", spillover={"backend": "hosted", "model": "gpt", "whenPredictedFirstToken": "500ms"}),
        # No model, several served: the Route's public model name when the backend serves it...
        route("m2", spillover={"target": "two"}),
        # ...else the route cannot be served, and says what to write.
        route("c", spillover={"target": "two"}),
        route("d", spillover={"target": "hosted", "model": "nope"}),
        route("e", spillover={"target": "ghost"}),
    ]
    config = compile_config([backend("mock"), hosted, two], routes)
    spill = {name: (r.spillover.target.backend, r.spillover.target.model, r.spillover.first_token_s)
             for name, r in config.routes.items() if r.spillover is not None}  # fmt: skip
    assert spill == {"a": ("hosted", "gpt", 2.0), "b": ("hosted", "gpt", 0.5), "m2": ("two", "m2", 2.0)}
    assert config.rejected == {
        "c": "spillover: backend 'two' serves several models (m1, m2) and not 'c': name one with spillover.model",
        "d": "backend 'hosted' does not serve model 'nope' (it serves: gpt)",
        "e": "backend 'ghost' does not exist; did you mean 'hosted'?",
    }


@pytest.mark.parametrize(
    ("spillover", "expected"),
    [
        ({"target": "hosted", "backend": "hosted"}, "spillover needs exactly one of target and backend"),
        ({"model": "gpt"}, "spillover needs exactly one of target and backend"),
        ({"target": "Not A Name"}, "String should match pattern"),
    ],
)
def test_spillover_refuses_both_or_neither_target_and_backend(spillover: dict[str, Any], expected: str) -> None:
    with pytest.raises(ValueError, match=expected):
        route("a", spillover=spillover)


def test_route_priority_is_unset_unless_written() -> None:
    config = compile_config([backend("mock")], [route("a"), route("b", priority="sheddable")])
    assert config.routes["a"].priority is None  # the tenant's quota decides, standard without one
    assert config.routes["b"].priority == "sheddable"


def test_discovery_mode_follows_the_backend_shape() -> None:
    """The contract says per backend how the gateway finds its endpoints: one url, a static list, or DNS."""
    pool = backend(
        "pool",
        provider="vllm",
        endpoints=[{"url": "http://127.0.0.1:8001/v1/"}, {"url": "http://127.0.0.1:8002/v1"}],
    )
    hosted = backend("hosted", provider="openai", url="https://api.example.com/v1")
    llama = backend("llama", provider="vllm", serving={"model": "x"})
    tgi = backend("tgi", provider="openai", serving={"model": "x", "engine": "tgi"})
    config = compile_config([pool, hosted, llama, tgi, backend("mock")], [])
    assert config.backends["tgi"].discovery.port == 80  # the engine's own port in its pod
    static = config.backends["pool"]
    assert static.discovery == DiscoveryConfig(
        mode="static", endpoints=("http://127.0.0.1:8001/v1", "http://127.0.0.1:8002/v1")
    )
    assert static.url == "http://127.0.0.1:8001/v1"
    assert config.backends["hosted"].discovery == DiscoveryConfig(mode="url")
    assert config.backends["mock"].discovery == DiscoveryConfig(mode="url")
    dns = config.backends["llama"]
    assert dns.discovery == DiscoveryConfig(
        mode="dns", host=f"{self_hosted_pods_service('llama')}.default.svc", port=8000
    )
    assert dns.discovery.host == "llama-pods.default.svc"
    assert dns.url == self_hosted_url("llama", "default")  # used while the name resolves to nothing
    assert GatewayConfig.from_json(config.to_json()) == config
    assert b'"discovery":{"endpoints":[],"host":"llama-pods.default.svc","mode":"dns","port":8000,"refreshS":2.0}' in (
        config.to_json()
    )
