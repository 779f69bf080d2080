"""A saturated pool over real HTTP: tenant-fair queueing, priorities, shedding in the API's own format, the
tenant's id to the engine, queue metrics; and spill-over to a hosted target through translation."""

from __future__ import annotations

import asyncio
from typing import Any

import anthropic
import openai
import pytest
from prometheus_client.parser import text_string_to_metric_families

from interlock.mockprovider import Fault
from tests.gateway.enforcement_support import cp_settings
from tests.gateway.harness import Gateway, Upstream, backend, config, route
from tests.support import eventually

KEYS = {"sk-il-noisy": "noisy", "sk-il-quiet": "quiet"}
# A simulated engine: 10 output tokens at 20 ms each, so each request holds its slot for about 0.2 s.
ENGINE = {"engine_metrics": True, "stream_chunks": 10, "decode_s_per_token": 0.02, "max_num_seqs": 4}


def pool(*engines: Upstream, **spec: Any) -> dict[str, Any]:
    return backend(
        "pool",
        None,
        provider="vllm",
        endpoints=[{"url": e.url} for e in engines],
        queueing={"maxInflightPerEndpoint": 1, "maxWait": "20s", **spec.pop("queueing", {})},
        **spec,
    )


def ask(gw: Gateway, key: str, model: str = "chat", text: str = "hello") -> Any:
    return gw.http.post(
        "/v1/chat/completions",
        json={"model": model, "messages": [{"role": "user", "content": text}]},
        headers={"authorization": f"Bearer {key}"},
    )


async def metrics(gw: Gateway) -> dict[str, Any]:
    return {f.name: f for f in text_string_to_metric_families((await gw.ops.get("/metrics")).text)}


async def test_a_quiet_tenant_gets_through_a_noisy_tenants_backlog(upstream, gateway):
    a = await upstream(**ENGINE)
    gw = await gateway(config(pool(a), route("chat", [("pool", "m1")])), keys=KEYS)
    done: list[str] = []

    async def request(key: str, tenant: str, i: int) -> None:
        response = await ask(gw, key, text=f"{tenant} {i}")
        assert response.status_code == 200, response.text
        done.append(tenant)

    noisy = [asyncio.create_task(request("sk-il-noisy", "noisy", i)) for i in range(8)]
    queue = gw.core.services.runtime.backends["pool"].queue  # type: ignore[union-attr]
    assert queue is not None
    await eventually(lambda: queue.waiting.get("noisy") == 7, what="noisy's backlog queued")
    quiet = asyncio.create_task(request("sk-il-quiet", "quiet", 0))
    await asyncio.gather(*noisy, quiet)
    # One slot, served in fair order: the quiet request is let in next, ahead of six of noisy's.
    assert done.index("quiet") <= 2, done
    # Every request told the engine whose it is.
    tenants = {r.headers.get("x-gateway-inference-fairness-id") for r in a.provider.stats.recent if r.body}
    assert tenants == {"noisy", "quiet"}
    families = await metrics(gw)
    waits = {
        s.labels["tenant"]: s.value
        for s in families["interlock_queue_wait_seconds"].samples
        if s.name.endswith("_count")
    }
    assert waits["noisy"] == 7
    assert waits["quiet"] == 1
    assert all(s.value == 0 for s in families["interlock_queued_requests"].samples)


async def test_sheddable_traffic_is_refused_with_retry_after_in_the_api_format(upstream, gateway):
    a = await upstream(**ENGINE)
    gw = await gateway(
        config(
            pool(a),
            route("chat", [("pool", "m1")]),
            route("batch", [("pool", "m1")], priority="sheddable"),
        ),
        keys=KEYS,
    )
    a.provider.push_faults([Fault(delay_s=60)])
    held = asyncio.create_task(ask(gw, "sk-il-noisy"))  # the pool's only slot
    pool_runtime = gw.core.services.runtime.backends["pool"]  # type: ignore[union-attr]
    await eventually(lambda: pool_runtime.inflight == 1, what="the slot taken")
    openai_client = openai.AsyncOpenAI(base_url=f"{gw.root}/v1", api_key="sk-il-quiet", max_retries=0)
    with pytest.raises(openai.APIStatusError) as refused:
        await openai_client.chat.completions.create(model="batch", messages=[{"role": "user", "content": "x"}])
    await openai_client.close()
    assert refused.value.status_code == 503
    assert refused.value.response.headers["retry-after"] == "1"
    body = refused.value.response.json()
    assert body["error"]["code"] == "pool_shed"
    assert "saturated" in body["error"]["message"]
    # Anthropic clients get their own envelope.
    claude = anthropic.AsyncAnthropic(base_url=gw.root, api_key="sk-il-quiet", max_retries=0)
    with pytest.raises(anthropic.APIStatusError) as shed:
        await claude.messages.create(model="batch", max_tokens=5, messages=[{"role": "user", "content": "x"}])
    await claude.close()
    assert shed.value.status_code == 503
    assert shed.value.response.json()["type"] == "error"
    assert shed.value.response.headers["retry-after"] == "1"
    rejected = (await metrics(gw))["interlock_queue_rejected"].samples
    assert {(s.labels["tenant"], s.labels["reason"], s.value) for s in rejected} == {("quiet", "shed", 2.0)}
    held.cancel()
    await asyncio.gather(held, return_exceptions=True)


async def test_a_tenant_over_its_queue_bound_gets_429(upstream, gateway):
    a = await upstream(**ENGINE)
    gw = await gateway(config(pool(a, queueing={"maxQueuedPerTenant": 1}), route("chat", [("pool", "m1")])), keys=KEYS)
    a.provider.push_faults([Fault(delay_s=60)] * 2)
    held = asyncio.create_task(ask(gw, "sk-il-noisy"))
    queue = gw.core.services.runtime.backends["pool"].queue  # type: ignore[union-attr]
    assert queue is not None
    await eventually(lambda: gw.core.services.runtime.backends["pool"].inflight == 1)  # type: ignore[union-attr]
    waiting = asyncio.create_task(ask(gw, "sk-il-noisy"))
    await eventually(lambda: queue.waiting.get("noisy") == 1)
    over = await ask(gw, "sk-il-noisy")
    assert over.status_code == 429
    assert over.json()["error"]["code"] == "tenant_queue_full"
    assert int(over.headers["retry-after"]) >= 1
    for task in (held, waiting):
        task.cancel()
    await asyncio.gather(held, waiting, return_exceptions=True)


async def test_spillover_sends_what_the_pool_would_answer_late_to_the_hosted_target(upstream, gateway):
    a = await upstream(**{**ENGINE, "decode_s_per_token": 0.05})  # each request holds the slot ~0.5 s
    hosted = await upstream()
    manifests = (
        pool(a),
        backend(
            "hosted", hosted.url, provider="anthropic", models=["claude-x"]
        ),  # translated: OpenAI in, Anthropic out
        route(
            "chat",
            [("pool", "m1")],
            spillover={"target": "hosted", "whenPredictedFirstToken": "200ms"},  # the form
        ),
    )
    gw = await gateway(config(*manifests), keys=KEYS)
    first = await ask(gw, "sk-il-quiet", text="learn the service time")
    assert first.headers["x-interlock-backend"] == "pool"
    answers = await asyncio.gather(*(ask(gw, "sk-il-noisy", text=f"burst {i}") for i in range(6)))
    assert all(r.status_code == 200 for r in answers)
    served = [r.headers["x-interlock-backend"] for r in answers]
    assert served.count("pool") >= 1
    assert served.count("hosted") >= 3  # the pool serves one at a time; the rest would have waited too long
    assert hosted.provider.stats.by_path.get("/v1/messages", 0) == served.count("hosted")
    spilled = [r for r in answers if r.headers["x-interlock-backend"] == "hosted"]
    assert all(r.json()["object"] == "chat.completion" for r in spilled)  # translated back to the client's API
    families = await metrics(gw)
    counts = {(s.labels["tenant"], s.labels["route"], s.labels["backend"]): s.value
              for s in families["interlock_spillovers"].samples}  # fmt: skip
    assert counts == {("noisy", "chat", "hosted"): served.count("hosted")}


async def test_no_spillover_while_the_pool_has_room(upstream, gateway):
    a, b = await upstream(**ENGINE), await upstream()
    manifests = (
        pool(a),
        backend("hosted", b.url, models=["m2"]),
        route("chat", [("pool", "m1")], spillover={"backend": "hosted", "model": "m2"}),
    )
    gw = await gateway(config(*manifests), keys=KEYS)
    for i in range(3):
        assert (await ask(gw, "sk-il-quiet", text=f"{i}")).headers["x-interlock-backend"] == "pool"
    assert b.provider.stats.by_path == {}


async def test_the_tenants_quota_priority_orders_the_queue_unless_the_route_sets_one(
    upstream, gateway, control_plane, tmp_path
):
    """Priority from the control plane's tenant quota, over real HTTP: a sheddable tenant is refused at once with
    Retry-After while a critical one waits and is let in ahead of a standard one; a Route's own priority wins."""
    cp = control_plane
    keys = {}
    for name, priority in (("batch", "sheddable"), ("vip", "critical"), ("plain", None)):
        tenant = cp.add_tenant(name, **({"priority": priority} if priority else {}))
        keys[name] = cp.add_key(tenant)[1]
    a = await upstream(**ENGINE)
    manifests = (
        pool(a),
        route("chat", [("pool", "m1")]),  # no priority: the tenant's
        backend("pool-b", None, provider="vllm", endpoints=[{"url": a.url}], queueing={"maxInflightPerEndpoint": 1}),
        route("pinned", [("pool-b", "m1")], priority="standard"),  # the Route's wins over the tenant's
    )
    gw = await gateway(config(*manifests), keys=None, api_key=keys["plain"], **cp_settings(cp, tmp_path / "spool"))

    async def snapshot_loaded() -> bool:
        return (await ask(gw, keys["vip"])).status_code == 200

    await eventually(snapshot_loaded, what="the snapshot's keys")
    runtime = gw.core.services.runtime.backends["pool"]  # type: ignore[union-attr]
    queue = runtime.queue
    assert queue is not None

    a.provider.push_faults([Fault(delay_s=1.0)])
    held = asyncio.create_task(ask(gw, keys["plain"], text="holds the only slot"))
    await eventually(lambda: runtime.inflight == 1, what="the slot taken")
    done: list[str] = []

    async def request(name: str) -> None:
        response = await ask(gw, keys[name], text=f"{name} waits")
        assert response.status_code == 200, response.text
        done.append(name)

    plain = asyncio.create_task(request("plain"))
    await eventually(lambda: queue.waiting.get("plain") == 1, what="the standard tenant queued")
    vip = asyncio.create_task(request("vip"))
    await eventually(lambda: queue.waiting.get("vip") == 1, what="the critical tenant queued")

    shed = await ask(gw, keys["batch"])
    assert shed.status_code == 503
    assert shed.json()["error"]["code"] == "pool_shed"
    assert int(shed.headers["retry-after"]) >= 1

    await asyncio.gather(held, plain, vip)
    assert done == ["vip", "plain"]  # critical was let in first though it came second

    # The same sheddable tenant on a Route that says standard waits its turn instead of being shed.
    other = gw.core.services.runtime.backends["pool-b"]  # type: ignore[union-attr]
    a.provider.push_faults([Fault(delay_s=0.5)])
    held = asyncio.create_task(ask(gw, keys["plain"], model="pinned", text="holds pool-b"))
    await eventually(lambda: other.inflight == 1, what="pool-b's slot taken")
    waited = await ask(gw, keys["batch"], model="pinned")
    assert waited.status_code == 200, waited.text
    assert (await held).status_code == 200
    rejected = (await metrics(gw))["interlock_queue_rejected"].samples
    assert {(s.labels["backend"], s.labels["tenant"], s.labels["reason"], s.value) for s in rejected} == {
        ("pool", "batch", "shed", 1.0)
    }
