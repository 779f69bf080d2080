"""Keys, limits, budgets and cost over real HTTP, with the openai SDK, a real mock upstream and a real control
plane speaking the contract (``contract_server``)."""

from __future__ import annotations

import asyncio
import datetime as dt
import time

import openai
import orjson
import pytest

from interlock.contract.controlplane import PriceRecord
from interlock.mockprovider import Fault
from tests.gateway.contract_server import gateway_id
from tests.gateway.enforcement_support import HELLO, chat_config, client_for, start_cp_gateway
from tests.gateway.harness import KEY
from tests.support import eventually


async def test_snapshot_key_works_and_a_revoked_key_stops_within_the_poll_interval(
    upstream, gateway, control_plane, tmp_path
):
    cp = control_plane
    tenant = cp.add_tenant("acme")
    key_id, key = cp.add_key(tenant)
    up = await upstream()
    gw = await start_cp_gateway(gateway, cp, up, tmp_path, key=key, snapshot_interval_s=0.2)

    answer = await gw.client.chat.completions.create(model="chat", messages=HELLO)
    assert answer.choices[0].message.content

    cp.revoke(key_id)
    revoked_at = time.monotonic()

    async def refused() -> bool:
        response = await gw.http.post("/v1/chat/completions", json={"model": "chat", "messages": HELLO})
        if response.status_code == 200:
            return False
        assert response.status_code == 401
        assert response.json()["error"]["code"] == "invalid_api_key"
        return True

    await eventually(refused, within=3, interval=0.02, what="the revoked key is refused")
    assert time.monotonic() - revoked_at < 0.2 + 0.5, "refused within one poll interval (plus a poll's latency)"


async def test_unknown_expired_and_break_glass_keys(upstream, gateway, control_plane, tmp_path, stack):
    cp = control_plane
    tenant = cp.add_tenant("acme")
    _, key = cp.add_key(tenant)
    _, expired = cp.add_key(tenant, expires_at=dt.datetime.now(dt.UTC) + dt.timedelta(seconds=0.5))
    up = await upstream()
    gw = await start_cp_gateway(gateway, cp, up, tmp_path, key=key, api_keys=[KEY])

    assert (await client_for(gw, KEY, stack).chat.completions.create(model="chat", messages=HELLO)).choices
    forged = key[:-4] + ("AAAA" if not key.endswith("AAAA") else "BBBB")  # right lookup prefix, wrong key
    for bad in (forged, "sk-il-nope", "not-a-key"):
        with pytest.raises(openai.AuthenticationError):
            await client_for(gw, bad, stack).chat.completions.create(model="chat", messages=HELLO)

    async def expired_refused() -> bool:
        try:
            await client_for(gw, expired, stack).chat.completions.create(model="chat", messages=HELLO)
        except openai.AuthenticationError:
            return True
        return False

    await eventually(expired_refused, within=3, what="a key past its expiry is refused by the gateway itself")


async def test_requests_per_minute_429_envelope_and_headers(upstream, gateway, control_plane, tmp_path):
    cp = control_plane
    tenant = cp.add_tenant("acme", requests_per_minute=3, tokens_per_minute=100_000)
    _, key = cp.add_key(tenant)
    up = await upstream()
    gw = await start_cp_gateway(gateway, cp, up, tmp_path, key=key)

    remaining = []
    for _ in range(3):
        raw = await gw.client.chat.completions.with_raw_response.create(model="chat", messages=HELLO)
        assert raw.headers["x-ratelimit-limit-requests"] == "3"
        assert raw.headers["x-ratelimit-limit-tokens"] == "100000"
        remaining.append(int(raw.headers["x-ratelimit-remaining-requests"]))
    assert remaining == [2, 1, 0]

    response = await gw.http.post("/v1/chat/completions", json={"model": "chat", "messages": HELLO})
    assert response.status_code == 429
    error = response.json()["error"]
    assert error["type"] == "rate_limit_exceeded"
    assert error["code"] == "rate_limit_exceeded"
    assert "requests per minute" in error["message"]
    assert 1 <= int(response.headers["retry-after"]) <= 21, "one request refills in 20 s"
    assert response.headers["x-ratelimit-remaining-requests"] == "0"
    assert response.headers["x-ratelimit-limit-requests"] == "3"
    assert "x-ratelimit-remaining-tokens" in response.headers
    assert up.requests == 3, "a refused request never reaches the upstream"

    with pytest.raises(openai.RateLimitError) as caught:
        await gw.client.chat.completions.create(model="chat", messages=HELLO)
    assert caught.value.code == "rate_limit_exceeded"

    anthropic = await gw.http.post(
        "/v1/messages", json={"model": "chat", "max_tokens": 10, "messages": HELLO}, headers={"x-api-key": key}
    )
    assert anthropic.status_code == 429
    assert anthropic.json()["error"]["type"] == "rate_limit_error", "Anthropic clients get their own envelope"

    metrics = (await gw.ops.get("/metrics")).text
    assert 'interlock_ratelimited_total{route="chat",tenant="acme"} 3.0' in metrics


async def test_tokens_per_minute_reserves_the_worst_case_and_settles_to_the_real_usage(
    upstream, gateway, control_plane, tmp_path
):
    cp = control_plane
    limit = 400
    tenant = cp.add_tenant("acme", tokens_per_minute=limit)
    _, key = cp.add_key(tenant)
    up = await upstream(min_answer_tokens=40, max_answer_tokens=40)
    gw = await start_cp_gateway(gateway, cp, up, tmp_path, key=key)
    body = orjson.dumps({"model": "chat", "messages": HELLO, "max_tokens": 50})
    reserve = len(body) + 50  # input bound (the body's bytes) plus the output cap
    headers = {"content-type": "application/json"}

    used = 0
    admitted = 0
    while True:
        response = await gw.http.post("/v1/chat/completions", content=body, headers=headers)
        if response.status_code == 429:
            break
        assert response.status_code == 200
        assert response.headers["x-ratelimit-limit-tokens"] == str(limit)
        # Left after this request's reservation: the limit less the real usage of the earlier ones (their
        # reservations were settled) less this one's worst case, plus a refill of 400/60 tokens a second.
        expected = max(0, limit - used - reserve)
        assert expected <= int(response.headers["x-ratelimit-remaining-tokens"]) <= expected + 8
        used += response.json()["usage"]["total_tokens"]
        admitted += 1
        assert admitted < 20
    assert used >= limit, "requests are admitted while the bucket holds tokens"
    error = response.json()["error"]
    assert "tokens per minute" in error["message"]
    assert response.headers["x-ratelimit-remaining-tokens"] == "0"
    per_request = used // admitted
    assert per_request < reserve, "the reservation is the worst case, the usage less"
    assert used == per_request * admitted, "the mock's answers all have the same size"
    assert admitted == -(-limit // per_request), "the answers' real token counts were charged, not the reservations"


async def test_concurrent_requests_overrun_tokens_per_minute_by_one_reservation_at_most(
    upstream, gateway, control_plane, tmp_path
):
    cp = control_plane
    up = await upstream(min_answer_tokens=40, max_answer_tokens=40)
    body = orjson.dumps({"model": "chat", "messages": HELLO, "max_tokens": 50})
    reserve = len(body) + 50
    tenant = cp.add_tenant("acme", tokens_per_minute=reserve * 5 // 2)  # room for two reservations and a half
    _, key = cp.add_key(tenant)
    gw = await start_cp_gateway(gateway, cp, up, tmp_path, key=key)
    up.provider.push_faults([Fault(delay_s=0.5)] * 10)
    headers = {"content-type": "application/json"}
    answers = await asyncio.gather(
        *(gw.http.post("/v1/chat/completions", content=body, headers=headers) for _ in range(10))
    )
    statuses = sorted(a.status_code for a in answers)
    assert statuses == [200] * 3 + [429] * 7, "in flight, each holds its reservation: the third crosses the limit"


async def test_concurrency_cap(upstream, gateway, control_plane, tmp_path, stack):
    cp = control_plane
    tenant = cp.add_tenant("acme", max_concurrency=2)
    _, key = cp.add_key(tenant)
    up = await upstream()
    gw = await start_cp_gateway(gateway, cp, up, tmp_path, key=key)
    up.provider.push_faults([Fault(delay_s=1.0), Fault(delay_s=1.0)])

    slow = [asyncio.create_task(gw.client.chat.completions.create(model="chat", messages=HELLO)) for _ in range(2)]
    await eventually(lambda: gw.core.services.enforcer.inflight.get(tenant) == 2, what="two requests in flight")
    response = await gw.http.post("/v1/chat/completions", json={"model": "chat", "messages": HELLO})
    assert response.status_code == 429
    assert response.json()["error"]["code"] == "concurrency_limit_exceeded"
    assert response.headers["retry-after"] == "1"
    for answer in await asyncio.gather(*slow):
        assert answer.choices[0].message.content
    assert gw.core.services.enforcer.inflight == {}, "slots are given back"
    assert (await gw.client.chat.completions.create(model="chat", messages=HELLO)).choices

    other = cp.add_tenant("other", max_concurrency=1)
    _, other_key = cp.add_key(other)
    await eventually(lambda: gw.core.link.source.policy.tenants.get(other), what="the new tenant's snapshot")
    assert (await client_for(gw, other_key, stack).chat.completions.create(model="chat", messages=HELLO)).choices


@pytest.mark.parametrize("sync_snapshots", [False, True], ids=["ledger-only", "snapshot-synced"])
async def test_budget_stops_the_tenant_within_one_request(upstream, gateway, control_plane, tmp_path, sync_snapshots):
    """Prices from the control plane's override; the request after the one that crossed the budget is refused,
    whether the spend is still only this gateway's ledger or already in the snapshot."""
    cp = control_plane
    budget = 0.30
    tenant = cp.add_tenant("acme", monthly_budget_usd=budget)
    _, key = cp.add_key(tenant)
    cp.prices.append(
        PriceRecord(
            backend="a", model="m1", input_per_million=1000.0, output_per_million=2000.0, cached_input_per_million=500
        )
    )
    up = await upstream(min_answer_tokens=40, max_answer_tokens=40)
    interval = 0.05 if sync_snapshots else 3600.0
    gw = await start_cp_gateway(gateway, cp, up, tmp_path, key=key, snapshot_interval_s=interval)
    if not sync_snapshots:
        await eventually(lambda: gw.core.link.source.policy.prices, what="the first snapshot has the price override")

    spent = 0.0
    for number in range(1, 20):
        response = await gw.http.post("/v1/chat/completions", json={"model": "chat", "messages": HELLO})
        if response.status_code == 429:
            break
        usage = response.json()["usage"]
        cost = (usage["prompt_tokens"] * 1000.0 + usage["completion_tokens"] * 2000.0) / 1e6
        assert float(response.headers["x-interlock-cost-usd"]) == pytest.approx(cost, abs=1e-9)
        assert spent < budget, "admitted only while under budget"
        spent += cost
        if sync_snapshots:
            await eventually(
                lambda n=number: gw.core.link.source.policy.ingested_seq == n, what="the snapshot counts the event"
            )
            assert len(gw.core.link.ledger) == 0, "the snapshot's spend replaced the ledger's"
    assert spent >= budget, "refused only once the budget was spent"
    assert spent - cost < budget, "the refused request is the first after the budget was crossed"
    error = response.json()["error"]
    assert error["type"] == "insufficient_quota"
    assert error["code"] == "insufficient_quota"
    assert int(response.headers["retry-after"]) >= 1
    with pytest.raises(openai.RateLimitError) as caught:
        await gw.client.chat.completions.create(model="chat", messages=HELLO)
    assert caught.value.code == "insufficient_quota"
    assert number >= 3


async def test_cost_header_metric_and_usage_events(upstream, gateway, control_plane, tmp_path):
    cp = control_plane
    tenant = cp.add_tenant("acme", requests_per_minute=100)
    key_id, key = cp.add_key(tenant)
    up = await upstream(cached_tokens=2)
    gw = await start_cp_gateway(gateway, cp, up, tmp_path, key=key)

    raw = await gw.client.chat.completions.with_raw_response.create(model="chat", messages=HELLO)
    usage = raw.parse().usage
    assert usage is not None
    assert usage.prompt_tokens_details is not None
    cached = usage.prompt_tokens_details.cached_tokens or 0
    assert cached == 2
    # harness prices: input 1.0, output 2.0 per million, cached input defaults to the input price
    expected = ((usage.prompt_tokens - cached) * 1.0 + cached * 1.0 + usage.completion_tokens * 2.0) / 1e6
    assert float(raw.headers["x-interlock-cost-usd"]) == pytest.approx(expected, abs=1e-10)

    chunks = [c async for c in await gw.client.chat.completions.create(model="chat", messages=HELLO, stream=True)]
    assert chunks

    await eventually(lambda: len(cp.events) == 2, what="both usage events reached the control plane")
    events = sorted(cp.events.values(), key=lambda e: e.seq)
    unary, streamed = events
    assert [e.seq for e in events] == [1, 2]
    assert (unary.tenant_id, unary.key_id, unary.route, unary.backend, unary.model, unary.status) == (
        tenant,
        key_id,
        "chat",
        "a",
        "m1",
        200,
    )
    assert (unary.input_tokens, unary.output_tokens, unary.cached_tokens) == (
        usage.prompt_tokens,
        usage.completion_tokens,
        cached,
    )
    assert unary.cost_usd == pytest.approx(expected, abs=1e-12)
    assert [s.name for s in unary.spans] == ["auth", "route", "upstream", "respond"]
    attempt = unary.spans[2]
    assert attempt.attributes["backend"] == "a"
    assert attempt.attributes["status"] == 200
    assert attempt.duration_ms > 0
    assert unary.latency_ms >= attempt.start_ms + attempt.duration_ms
    assert streamed.ttft_ms is not None
    assert streamed.output_tokens > 0
    assert streamed.cost_usd > 0
    assert unary.idempotency_id != streamed.idempotency_id

    metrics = (await gw.ops.get("/metrics")).text
    line = next(x for x in metrics.splitlines() if x.startswith("interlock_cost_usd_total{"))
    assert float(line.rsplit(" ", 1)[1]) == pytest.approx(unary.cost_usd + streamed.cost_usd, abs=1e-12)


async def test_readyz_shows_an_unreachable_control_plane_and_the_snapshot_survives_a_restart(
    upstream, gateway, control_plane, tmp_path, servers
):
    cp = control_plane
    tenant = cp.add_tenant("acme")
    _, key = cp.add_key(tenant)
    up = await upstream()
    gw = await start_cp_gateway(gateway, cp, up, tmp_path, key=key, gateway_id=gateway_id("gw-restart"))
    ready = (await gw.ops.get("/readyz")).json()
    assert ready["status"] == "ready"
    assert ready["control_plane"]["snapshot"]["last_error"] is None
    await eventually(lambda: cp.snapshot_gets >= 2, what="a second poll (the snapshot is stored meanwhile)")

    await cp.stop()
    # The first failed poll may be the kept-alive connection being closed (RemoteProtocolError); the ones after it
    # cannot connect at all.
    await eventually(
        lambda: "ConnectError" in (gw.core.link.source.status.last_error or ""),
        what="the gateway notices the control plane left",
    )
    response = await gw.ops.get("/readyz")
    body = response.json()
    assert response.status_code == 200, "the last good snapshot keeps serving"
    assert "ConnectError" in body["control_plane"]["snapshot"]["last_error"]
    assert (await gw.client.chat.completions.create(model="chat", messages=HELLO)).choices

    # A second gateway process on the same spool, started while the control plane is still down.
    again = await start_cp_gateway(gateway, cp, up, tmp_path, key=key, gateway_id=gateway_id("gw-restart"))
    body = (await again.ops.get("/readyz")).json()
    assert body["status"] == "ready"
    assert body["control_plane"]["snapshot"]["source"] == "stored"
    assert (await again.client.chat.completions.create(model="chat", messages=HELLO)).choices


async def test_without_a_control_plane_nothing_changes(upstream, gateway):
    up = await upstream()
    gw = await gateway(chat_config(up), keys=None, api_keys=[KEY])
    raw = await gw.client.chat.completions.with_raw_response.create(model="chat", messages=HELLO)
    assert "x-ratelimit-limit-requests" not in raw.headers
    assert float(raw.headers["x-interlock-cost-usd"]) > 0
    assert gw.core.services.usage is None
    assert gw.core.link is None
    body = orjson.loads((await gw.ops.get("/readyz")).content)
    assert body["status"] == "ready"
    assert "control_plane" not in body


async def test_route_limits_apply_per_tenant(upstream, gateway, stack):
    up = await upstream()
    other = "sk-il-other-tenant"
    gw = await gateway(chat_config(up, limits={"requestsPerMinute": 2}), keys={KEY: "acme", other: "globex"})
    for remaining in ("1", "0"):
        raw = await gw.client.chat.completions.with_raw_response.create(model="chat", messages=HELLO)
        assert raw.headers["x-ratelimit-limit-requests"] == "2"
        assert raw.headers["x-ratelimit-remaining-requests"] == remaining
    response = await gw.http.post("/v1/chat/completions", json={"model": "chat", "messages": HELLO})
    assert response.status_code == 429
    assert "on model 'chat'" in response.json()["error"]["message"]
    assert (await client_for(gw, other, stack).chat.completions.create(model="chat", messages=HELLO)).choices, (
        "another tenant has its own bucket on the route"
    )
