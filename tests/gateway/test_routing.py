"""Weighted targets, fallbacks, retries, timeouts, circuit breakers and concurrency caps, over real HTTP."""

from __future__ import annotations

import asyncio
import time

import pytest

from interlock.mockprovider import Fault
from tests.gateway.harness import backend, config, route
from tests.support import eventually

HELLO = [{"role": "user", "content": "Hello"}]


async def post(gw, **extra):
    return await gw.http.post("/v1/chat/completions", json={"model": "chat", "messages": HELLO, **extra})


async def test_weighted_targets_split_traffic_by_weight(upstream, gateway):
    a, b = await upstream(), await upstream()
    gw = await gateway(
        config(backend("a", a.url), backend("b", b.url), route("chat", [("a", "m1", 3), ("b", "m1", 1)]))
    )

    responses = [r for _ in range(20) for r in await asyncio.gather(*(post(gw) for _ in range(20)))]

    assert all(r.status_code == 200 for r in responses)
    served = [r.headers["x-interlock-backend"] for r in responses]
    # 300 expected on a; six standard deviations (sqrt(400 * .75 * .25) = 8.7) either side.
    assert 248 <= served.count("a") <= 352
    assert (a.requests, b.requests) == (served.count("a"), served.count("b"))


async def test_zero_weight_target_gets_no_traffic(upstream, gateway):
    a, b = await upstream(), await upstream()
    gw = await gateway(
        config(backend("a", a.url), backend("b", b.url), route("chat", [("a", "m1", 1), ("b", "m1", 0)]))
    )
    await asyncio.gather(*(post(gw) for _ in range(30)))
    assert (a.requests, b.requests) == (30, 0)


async def test_fallback_on_upstream_500(upstream, gateway):
    primary, spare = await upstream(), await upstream()
    gw = await gateway(
        config(
            backend("primary", primary.url),
            backend("spare", spare.url, models=["m2"]),
            route("chat", [("primary", "m1")], fallbacks=[("spare", "m2")], retry={"attempts": 1}),
        )
    )
    primary.provider.push_faults([Fault(status=500)])

    raw = await gw.client.chat.completions.with_raw_response.create(model="chat", messages=HELLO)

    assert raw.headers["x-interlock-backend"] == "spare"
    assert raw.parse().model == "m2"
    assert (primary.requests, spare.requests) == (1, 1)
    metrics = (await gw.ops.get("/metrics")).text
    assert 'interlock_fallbacks_total{backend="spare",route="chat"} 1.0' in metrics
    assert 'interlock_upstream_errors_total{backend="primary",reason="5xx"} 1.0' in metrics


async def test_retry_on_429_honours_retry_after(upstream, gateway):
    up = await upstream()
    gw = await gateway(
        config(backend("a", up.url), route("chat", [("a", "m1")], retry={"attempts": 2, "backoff": "1ms"}))
    )
    up.provider.push_faults([Fault(status=429, retry_after=0.6)])

    started = time.monotonic()
    response = await post(gw)
    elapsed = time.monotonic() - started

    assert response.status_code == 200
    assert up.requests == 2
    assert elapsed >= 0.6, "the retry waited for the upstream's Retry-After"
    first, second = up.provider.stats.recent[0], up.provider.stats.recent[1]
    assert first.body == second.body


async def test_retry_after_beyond_the_deadline_moves_on_instead_of_waiting(upstream, gateway):
    a, b = await upstream(), await upstream()
    gw = await gateway(
        config(
            backend("a", a.url),
            backend("b", b.url),
            route("chat", [("a", "m1")], fallbacks=[("b", "m1")], timeouts={"request": "2s"}),
        )
    )
    a.provider.push_faults([Fault(status=429, retry_after=30)])
    started = time.monotonic()
    response = await post(gw)
    assert response.status_code == 200
    assert response.headers["x-interlock-backend"] == "b"
    assert time.monotonic() - started < 1.5


async def test_retries_only_the_configured_failures(upstream, gateway):
    up = await upstream()
    gw = await gateway(
        config(
            backend("a", up.url),
            route("chat", [("a", "m1")], retry={"attempts": 3, "backoff": "1ms", "retryOn": ["429"]}),
        )
    )
    up.provider.push_faults([Fault(status=500)])
    assert (await post(gw)).status_code == 502
    assert up.requests == 1
    up.provider.push_faults([Fault(status=429), Fault(status=429)])
    assert (await post(gw)).status_code == 200
    assert up.requests == 4


async def test_first_token_timeout_falls_back(upstream, gateway):
    slow, fast = await upstream(), await upstream()
    gw = await gateway(
        config(
            backend("slow", slow.url),
            backend("fast", fast.url),
            route(
                "chat", [("slow", "m1")], fallbacks=[("fast", "m1")], timeouts={"firstToken": "200ms", "request": "10s"}
            ),
        )
    )
    slow.provider.push_faults([Fault(first_token_delay_s=5)])

    started = time.monotonic()
    stream = await gw.client.chat.completions.create(model="chat", messages=HELLO, stream=True)
    chunks = [chunk async for chunk in stream]

    assert chunks[-1].choices[0].finish_reason == "stop"
    assert time.monotonic() - started < 2
    assert (slow.requests, fast.requests) == (1, 1)


async def test_first_token_timeout_without_fallback_is_504(upstream, gateway):
    up = await upstream()
    gw = await gateway(config(backend("a", up.url), route("chat", [("a", "m1")], timeouts={"firstToken": "200ms"})))
    up.provider.push_faults([Fault(first_token_delay_s=5)])
    response = await post(gw, stream=True)
    assert response.status_code == 504
    assert response.json()["error"]["code"] == "timeout"


async def test_circuit_breaker_takes_a_failing_backend_out_of_rotation(upstream, gateway):
    bad, good = await upstream(), await upstream()
    gw = await gateway(
        config(
            backend("bad", bad.url, circuitBreaker={"consecutiveFailures": 2, "cooldown": "300ms"}),
            backend("good", good.url),
            route("chat", [("bad", "m1")], fallbacks=[("good", "m1")], retry={"attempts": 1}),
        )
    )
    bad.provider.push_faults([Fault(status=500)] * 2)
    for _ in range(2):
        assert (await post(gw)).headers["x-interlock-backend"] == "good"
    opened = time.monotonic()
    assert bad.requests == 2

    for _ in range(5):
        assert (await post(gw)).headers["x-interlock-backend"] == "good"
    assert bad.requests == 2, "an open breaker sends nothing to the backend"

    async def served_by_bad() -> bool:
        return (await post(gw)).headers["x-interlock-backend"] == "bad"

    await eventually(served_by_bad, within=3, interval=0.05, what="backend back after its cooldown")
    assert time.monotonic() - opened >= 0.3


async def test_open_breaker_with_nothing_else_is_503(upstream, gateway):
    up = await upstream()
    gw = await gateway(
        config(
            backend("a", up.url, circuitBreaker={"consecutiveFailures": 1, "cooldown": "60s"}),
            route("chat", [("a", "m1")], retry={"attempts": 1}),
        )
    )
    up.provider.push_faults([Fault(status=500)])
    assert (await post(gw)).status_code == 502
    response = await post(gw)
    assert response.status_code == 503
    assert "cooling down" in response.json()["error"]["message"]
    assert response.headers["retry-after"] == "1"


async def test_max_concurrency_caps_requests_in_flight(upstream, gateway):
    capped, spare = await upstream(), await upstream()
    gw = await gateway(
        config(
            backend("capped", capped.url, limits={"maxConcurrency": 3}),
            backend("spare", spare.url),
            route("chat", [("capped", "m1")], fallbacks=[("spare", "m1")]),
        )
    )
    capped.provider.push_faults([Fault(delay_s=0.3)] * 20)

    responses = await asyncio.gather(*(post(gw) for _ in range(10)))

    assert all(r.status_code == 200 for r in responses)
    assert capped.provider.stats.max_inflight == 3
    served = [r.headers["x-interlock-backend"] for r in responses]
    assert served.count("capped") == 3
    assert served.count("spare") == 7


@pytest.mark.parametrize("status", [401, 403, 404])
async def test_upstream_rejecting_the_gateway_falls_back_without_retry(upstream, gateway, status):
    a, b = await upstream(), await upstream()
    gw = await gateway(
        config(backend("a", a.url), backend("b", b.url), route("chat", [("a", "m1")], fallbacks=[("b", "m1")]))
    )
    a.provider.push_faults([Fault(status=status)])
    response = await post(gw)
    assert response.headers["x-interlock-backend"] == "b"
    assert a.requests == 1


async def test_backend_credentials_are_sent_upstream(upstream, gateway):
    up = await upstream(api_key="sk-upstream-secret")
    gw = await gateway(
        config(
            backend("a", up.url, credentialsSecretRef={"name": "openai", "key": "api-key"}),
            route("chat", [("a", "m1")]),
        ),
        secrets={"openai": {"api-key": "sk-upstream-secret"}},
    )
    assert (await post(gw)).status_code == 200
    assert up.provider.stats.last.headers["authorization"] == "Bearer sk-upstream-secret"
    assert "sk-upstream-secret" not in (await gw.ops.get("/readyz")).text
