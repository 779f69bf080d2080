"""Several endpoints of one backend over real HTTP: static lists, DNS discovery following scale up and down,
engine metrics (fresh and stale), least in flight and prompt-prefix affinity, against simulated engines."""

from __future__ import annotations

import asyncio
from typing import Any

import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families

from interlock.gateway.dispatch.plan import BackendRuntime
from interlock.gateway.pool import EndpointPool
from interlock.gateway.pool.discovery import system_resolver
from interlock.gateway.pool.upkeep import INDEX_SHARE_OF_KV
from interlock.mockprovider import Fault
from tests.gateway.harness import Gateway, Upstream, backend, config, route
from tests.support import eventually

SYSTEM_A = "You are the billing assistant of a large utility company. Be exact. " * 60  # 4 KB
SYSTEM_B = "You translate engineering notes into plain English for managers. " * 60
ENGINE = {"engine_metrics": True, "max_answer_tokens": 20}


def chat(system: str, question: str) -> dict[str, Any]:
    return {
        "model": "chat",
        "messages": [{"role": "system", "content": system}, {"role": "user", "content": question}],
    }


def chats(up: Upstream) -> int:
    """Chat requests the engine got (its /metrics scrapes are not requests)."""
    return up.provider.stats.by_path.get("/v1/chat/completions", 0)


def pool_of(gw: Gateway, name: str = "pool") -> EndpointPool:
    runtime = gw.core.services.runtime
    assert runtime is not None
    backend_runtime: BackendRuntime = runtime.backends[name]
    assert backend_runtime.pool is not None
    return backend_runtime.pool


def pooled(*upstreams: Upstream, **spec: Any) -> dict[str, Any]:
    return backend("pool", None, provider="vllm", endpoints=[{"url": u.url} for u in upstreams], **spec)


async def test_static_endpoints_share_an_idle_pool(upstream, gateway):
    a, b = await upstream(), await upstream()
    gw = await gateway(config(pooled(a, b), route("chat", [("pool", "m1")])))
    for i in range(10):  # one at a time: both idle at each pick, so ties rotate
        response = await gw.client.chat.completions.with_raw_response.create(
            model="chat", messages=[{"role": "user", "content": f"question {i}"}]
        )
        assert response.headers["x-interlock-backend"] == "pool"
    assert (chats(a), chats(b)) == (5, 5)


async def test_least_in_flight_when_engine_metrics_are_missing(upstream, gateway):
    """No /metrics (a plain OpenAI-compatible server): the pick is least in flight, never a wrong guess."""
    a, b = await upstream(), await upstream()
    gw = await gateway(config(pooled(a, b), route("chat", [("pool", "m1")])))
    a.provider.push_faults([Fault(first_token_delay_s=60)] * 3)
    b.provider.push_faults([Fault(first_token_delay_s=60)] * 3)
    body = {"model": "chat", "messages": [{"role": "user", "content": "hold"}], "stream": True}
    held = [asyncio.create_task(gw.http.post("/v1/chat/completions", json=body)) for _ in range(2)]
    pool = pool_of(gw)
    await eventually(lambda: sorted(e.inflight for e in pool.endpoints) == [1, 1], what="one held on each")
    # A third request goes to whichever; then the next must go to the other one (least in flight).
    third = asyncio.create_task(gw.http.post("/v1/chat/completions", json=body))
    await eventually(lambda: sorted(e.inflight for e in pool.endpoints) == [1, 2], what="three held")
    fourth = asyncio.create_task(gw.http.post("/v1/chat/completions", json=body))
    await eventually(lambda: sorted(e.inflight for e in pool.endpoints) == [2, 2], what="four held, two each")
    assert all(e.scraped_at is None and e.scrape_errors > 0 for e in pool.endpoints)
    assert sum(e.picks_stale for e in pool.endpoints) == 4
    for task in (*held, third, fourth):
        task.cancel()
    await asyncio.gather(*held, third, fourth, return_exceptions=True)


async def test_a_shared_prefix_sticks_to_the_engine_that_cached_it(upstream, gateway):
    a, b = await upstream(**ENGINE), await upstream(**ENGINE)
    gw = await gateway(config(pooled(a, b), route("chat", [("pool", "m1")])))
    pool = pool_of(gw)
    await eventually(lambda: all(e.scraped_at is not None for e in pool.endpoints), what="engines scraped")
    for i in range(6):
        assert (await gw.http.post("/v1/chat/completions", json=chat(SYSTEM_A, f"bill {i}?"))).status_code == 200
    for i in range(6):
        assert (await gw.http.post("/v1/chat/completions", json=chat(SYSTEM_B, f"note {i}?"))).status_code == 200
    counts = sorted((chats(a), chats(b)))
    # Each system prompt stayed on one engine (the two may share one: an idle engine has no load to avoid).
    assert counts in ([6, 6], [0, 12])
    for served in (a, b):
        systems = {r.body["messages"][0]["content"] for r in served.provider.stats.recent}
        assert len(systems) <= (2 if counts == [0, 12] else 1)
    assert sum(e.picks_prefix for e in pool.endpoints) >= 10  # all but each prompt's first request
    # The picker's inputs and choices, on the ops port.
    families = {f.name: f for f in text_string_to_metric_families((await gw.ops.get("/metrics")).text)}
    assert [s.value for s in families["interlock_endpoints"].samples] == [2]
    picks = families["interlock_endpoint_picks"].samples
    assert {s.labels["endpoint"] for s in picks} == {a.root.removeprefix("http://"), b.root.removeprefix("http://")}
    assert sum(s.value for s in picks if s.labels["reason"] == "prefix") >= 10
    assert sum(s.value for s in picks) == 12
    ages = families["interlock_endpoint_metrics_age_seconds"].samples
    assert len(ages) == 2
    assert all(0 <= s.value < 5 for s in ages)
    assert {s.labels["backend"] for s in families["interlock_endpoint_kv_cache_usage_ratio"].samples} == {"pool"}
    # The engines' own prefix caches confirm it: every repeat hit.
    hits = [e.prefix_hit_rate for e in pool.endpoints if e.prefix_hit_rate is not None]

    async def rates() -> bool:
        return bool(hits) or any(e.prefix_hit_rate for e in pool.endpoints)

    await eventually(rates, what="prefix hit rates scraped")
    assert max(e.prefix_hit_rate or 0 for e in pool.endpoints) > 0.5


async def test_a_busy_engine_loses_its_prefix_affinity(upstream, gateway):
    """Affinity is worth ``prefixWeight`` requests: an engine holding more than that many more loses it."""
    a, b = await upstream(**ENGINE), await upstream(**ENGINE)
    gw = await gateway(
        config(pooled(a, b, picker={"prefixWeight": 1.5, "kvCacheWeight": 0}), route("chat", [("pool", "m1")]))
    )
    home, other, held = await _three_held_after_a_home(gw, a, b)
    # Two stay home (a bonus of 1.5 beats one request more), the third goes elsewhere (it does not beat two).
    assert (home.inflight, other.inflight) == (2, 1)
    assert home.picks_prefix >= 2
    for task in held:
        task.cancel()
    await asyncio.gather(*held, return_exceptions=True)


@pytest.mark.parametrize(("batch_size", "expected"), [(2, (2, 1)), (0, (3, 0))])
async def test_a_request_that_would_wait_for_a_slot_leaves_its_prefix_home(upstream, gateway, batch_size, expected):
    """With the engines' batch size known (``picker.batchSize``), a request the home engine could not run at once
    (every slot taken) goes to an endpoint with a free slot; not knowing it (and no metrics to learn it from),
    affinity keeps it home."""
    a, b = await upstream(**ENGINE), await upstream(**ENGINE)
    picker = {"prefixWeight": 4, "kvCacheWeight": 0, "batchSize": batch_size, "scrapeInterval": "0s"}
    gw = await gateway(config(pooled(a, b, picker=picker), route("chat", [("pool", "m1")])))
    home, other, held = await _three_held_after_a_home(gw, a, b)
    # Two fill the home's two slots; the third would wait there (2 + 4 x 1 - 4 > 0) unless the batch is unknown.
    assert (home.inflight, other.inflight) == expected
    for task in held:
        task.cancel()
    await asyncio.gather(*held, return_exceptions=True)


async def test_fresh_engine_metrics_see_load_the_gateway_did_not_send(upstream, gateway):
    """Another gateway's traffic shows only in the engine's own numbers: with them fresh, the pick avoids it."""
    a, b = await upstream(**ENGINE), await upstream(**ENGINE)
    gw = await gateway(config(pooled(a, b), route("chat", [("pool", "m1")])))
    pool = pool_of(gw)
    a.provider.push_faults([Fault(first_token_delay_s=60)] * 3)
    body = {"model": "m1", "messages": [{"role": "user", "content": "elsewhere"}], "stream": True}
    direct = httpx.AsyncClient(base_url=a.root, timeout=60)
    other_gateway = [asyncio.create_task(direct.post("/v1/chat/completions", json=body)) for _ in range(3)]

    def a_looks_busy() -> bool:
        endpoint = next(e for e in pool.endpoints if e.url == a.url)
        return endpoint.engine_load == 3 and endpoint.external_load == 3

    await eventually(a_looks_busy, what="the busy engine's metrics scraped")
    for i in range(4):  # prompts that share no prefix: only load decides
        assert (await gw.http.post("/v1/chat/completions", json=chat(f"{i} {SYSTEM_B}", "q"))).status_code == 200
    assert chats(b) == 4
    assert sum(e.picks_load for e in pool.endpoints) == 4
    for task in other_gateway:
        task.cancel()
    await asyncio.gather(*other_gateway, return_exceptions=True)
    await direct.aclose()


async def test_stale_metrics_degrade_to_least_in_flight(upstream, gateway):
    a, b = await upstream(**ENGINE), await upstream(**ENGINE)
    # Metrics are trusted for 0s: always stale, so the engine's own (busy) numbers must be ignored.
    gw = await gateway(config(pooled(a, b, picker={"metricsMaxAge": "0s"}), route("chat", [("pool", "m1")])))
    pool = pool_of(gw)
    await eventually(lambda: all(e.scraped_at is not None for e in pool.endpoints), what="engines scraped")
    for endpoint in pool.endpoints:
        endpoint.external_load = 100.0 if endpoint.url == a.url else 0.0  # what a wrong pick would follow
    for i in range(4):
        assert (await gw.http.post("/v1/chat/completions", json=chat(f"{i} {SYSTEM_B}", "q"))).status_code == 200
    assert (chats(a), chats(b)) == (2, 2)
    assert sum(e.picks_stale for e in pool.endpoints) == 4


async def test_kv_usage_counts_only_near_a_full_cache(upstream, gateway):
    """Fresh engine metrics: KV usage below ``kvCacheThreshold`` (0.8 by default) leaves ties to rotate; an engine
    near a full cache is avoided while another has room."""
    a, b = await upstream(**ENGINE), await upstream(**ENGINE)
    gw = await gateway(config(pooled(a, b, picker={"scrapeInterval": "60s"}), route("chat", [("pool", "m1")])))
    pool = pool_of(gw)
    await eventually(lambda: all(e.scraped_at is not None for e in pool.endpoints), what="engines scraped")

    async def send(count: int, start: int) -> tuple[int, int]:
        before = chats(a), chats(b)
        for i in range(start, start + count):
            assert (await gw.http.post("/v1/chat/completions", json=chat(f"{i} {SYSTEM_B}", "q"))).status_code == 200
        return chats(a) - before[0], chats(b) - before[1]

    for endpoint in pool.endpoints:  # as if the one scrape had read these (the next is a minute away)
        endpoint.kv_usage = 0.6 if endpoint.url == a.url else 0.1
    assert await send(4, 0) == (2, 2)
    for endpoint in pool.endpoints:
        endpoint.kv_usage = 0.95 if endpoint.url == a.url else 0.1
    assert await send(4, 4) == (0, 4)
    assert sum(e.picks_load for e in pool.endpoints) >= 4


async def test_the_prefix_index_forgets_what_an_engine_cannot_hold(upstream, gateway):
    """The engine says its KV cache's size (``vllm:cache_config_info``) and its prompt tokens; the gateway sizes
    the engine's share of the prefix index to that cache, so a conversation the engine must have evicted since no
    longer pulls requests to it (before, the index kept it until 65,536 other blocks had passed)."""
    kv_tokens = 4096
    engine = {**ENGINE, "kv_cache_tokens": kv_tokens, "models": ["m1"]}  # one model: one engine, one cache
    a, b = await upstream(**engine), await upstream(**engine)
    gw = await gateway(config(pooled(a, b, picker={"scrapeInterval": "60s"}), route("chat", [("pool", "m1")])))
    runtime = gw.core.services.runtime
    assert runtime is not None
    upkeep = runtime.backends["pool"].upkeep
    assert upkeep is not None
    pool = pool_of(gw)
    await eventually(lambda: all(e.scraped_at is not None for e in pool.endpoints), what="engines scraped")
    assert [e.kv_capacity_tokens for e in pool.endpoints] == [kv_tokens, kv_tokens]
    assert [pool.index.limit(e.bit) for e in pool.endpoints] == [None, None]  # nothing sent yet to measure by

    async def ask(system: str) -> None:
        assert (await gw.http.post("/v1/chat/completions", json=chat(system, "q"))).status_code == 200

    for i in range(12):  # distinct conversations of four 1 KB blocks each: at least 16 blocks per engine
        await ask(f"{i} {SYSTEM_A}")
    await upkeep.scrape()
    for e in pool.endpoints:
        assert e.tokens_per_block is not None
        assert e.sent_blocks >= 16
        assert e.prompt_tokens_seen is not None
        assert e.tokens_per_block == e.prompt_tokens_seen / e.sent_blocks
        assert pool.index.limit(e.bit) == int(kv_tokens * INDEX_SHARE_OF_KV / e.tokens_per_block)
    limit = max(pool.index.limit(e.bit) or 0 for e in pool.endpoints)
    assert 8 <= limit < 100

    prefix_picks = sum(e.picks_prefix for e in pool.endpoints)
    await ask(f"kept {SYSTEM_B}")
    await ask(f"kept {SYSTEM_B}")  # the index sends it where it went
    assert sum(e.picks_prefix for e in pool.endpoints) == prefix_picks + 1
    for i in range(limit):  # more new conversations than either engine's share of the index holds
        await ask(f"{i} other {SYSTEM_A}")
    prefix_picks = sum(e.picks_prefix for e in pool.endpoints)
    await ask(f"kept {SYSTEM_B}")
    assert sum(e.picks_prefix for e in pool.endpoints) == prefix_picks  # forgotten, as the engine forgot it


async def test_dns_discovery_follows_scale_up_and_down(upstream, gateway):
    """A self-hosted backend (``serving``) is found by DNS; the test's resolver stands in for cluster DNS."""
    a, b = await upstream(), await upstream()
    records: dict[str, list[tuple[str, int | None]]] = {}
    failing = False

    async def resolver(host: str) -> list[tuple[str, int | None]]:
        if failing:
            raise OSError("DNS is down")
        return list(records.get(host, []))

    def address(up: Upstream) -> tuple[str, int]:
        host, port = up.root.removeprefix("http://").split(":")
        return host, int(port)

    llama = backend("llama", None, provider="vllm", serving={"model": "x"}, models=["m1"])
    gw = await gateway(
        config(llama, route("chat", [("llama", "m1")])),
        dns_resolver=resolver,
        secrets={"llama-engine-key": {"api-key": "engine-key"}},
    )
    pool = pool_of(gw, "llama")
    # Nothing resolves yet: the Service's own URL is the one endpoint.
    assert [e.url for e in pool.endpoints] == ["http://llama.default.svc:8000/v1"]

    records["llama-pods.default.svc"] = [address(a)]
    await eventually(lambda: [e.url for e in pool.endpoints] == [a.url], within=10, what="one pod")
    assert (await gw.http.post("/v1/chat/completions", json=chat(SYSTEM_A, "one"))).status_code == 200

    records["llama-pods.default.svc"] = [address(a), address(b)]  # scale up
    await eventually(lambda: len(pool.endpoints) == 2, within=10, what="scaled up to two pods")
    for i in range(6):
        assert (await gw.http.post("/v1/chat/completions", json=chat(f"{i}", "q"))).status_code == 200
    assert chats(b) > 0
    assert a.provider.stats.recent[-1].headers["authorization"] == "Bearer engine-key"

    failing = True  # a DNS outage keeps the pods the gateway knows
    upkeep = gw.core.services.runtime.backends["llama"].upkeep  # type: ignore[union-attr]
    assert upkeep is not None
    errors = upkeep.resolve_errors
    await eventually(lambda: upkeep.resolve_errors > errors, within=10, what="a failed resolution")
    assert len(pool.endpoints) == 2
    failing = False

    records["llama-pods.default.svc"] = [address(b)]  # scale down
    await eventually(lambda: [e.url for e in pool.endpoints] == [b.url], within=10, what="scaled down to one pod")
    before = chats(a)
    for i in range(4):
        assert (await gw.http.post("/v1/chat/completions", json=chat(f"later {i}", "q"))).status_code == 200
    assert chats(a) == before

    records["llama-pods.default.svc"] = []  # no ready pod: back to the Service's URL
    await eventually(lambda: len(pool.endpoints) == 1 and "llama.default.svc" in pool.endpoints[0].url, within=10)


async def test_the_system_resolver_reads_the_hosts_file() -> None:
    addresses = await system_resolver("localhost")
    assert ("127.0.0.1", None) in addresses
    assert await system_resolver("no-such-name.invalid") == []


@pytest.mark.parametrize("bad", ["ftp://127.0.0.1/v1", "not a url"])
def test_a_bad_endpoint_url_is_refused_by_the_manifest(bad: str) -> None:
    with pytest.raises(ValueError, match="endpoints"):
        config(backend("pool", None, provider="vllm", endpoints=[{"url": bad}]), route("chat", [("pool", "m1")]))


async def _three_held_after_a_home(gw, a, b):
    """One request gives SYSTEM_A a home engine; then three streams with that prefix are held (their first token
    delayed) one after another. Returns the home endpoint, the other one and the held requests."""
    pool = pool_of(gw)
    assert (await gw.http.post("/v1/chat/completions", json=chat(SYSTEM_A, "first"))).status_code == 200
    home_up = a if chats(a) == 1 else b
    home = next(e for e in pool.endpoints if e.url == home_up.url)
    other = next(e for e in pool.endpoints if e is not home)
    for up in (a, b):
        up.provider.push_faults([Fault(first_token_delay_s=60)] * 3)
    body = {**chat(SYSTEM_A, "hold"), "stream": True}
    held = []
    for n in range(1, 4):
        held.append(asyncio.create_task(gw.http.post("/v1/chat/completions", json=body)))
        await eventually(lambda n=n: sum(e.inflight for e in pool.endpoints) == n, what=f"{n} held")
    return home, other, held
