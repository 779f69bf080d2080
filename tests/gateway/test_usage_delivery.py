"""Usage events through an outage of the control plane and a gateway restart: every event arrives exactly once."""

from __future__ import annotations

import asyncio
from contextlib import AsyncExitStack

import pytest
from prometheus_client.parser import text_string_to_metric_families

from tests.gateway.contract_server import gateway_id
from tests.gateway.enforcement_support import HELLO, chat_config, cp_settings, ops_get
from tests.gateway.harness import Servers, start_gateway
from tests.support import eventually


async def test_events_wait_out_an_outage_and_a_restart_and_arrive_exactly_once(upstream, control_plane, tmp_path):
    cp = control_plane
    tenant = cp.add_tenant("acme")
    _, key = cp.add_key(tenant)
    up = await upstream()
    settings = cp_settings(cp, tmp_path / "spool", gateway_id=gateway_id("gw-delivery"))
    answers: list[tuple[float, int]] = []

    async def send(gw, count: int) -> None:
        async def one() -> None:
            response = await gw.http.post("/v1/chat/completions", json={"model": "chat", "messages": HELLO})
            assert response.status_code == 200, response.text
            answers.append((float(response.headers["x-interlock-cost-usd"]), response.json()["usage"]["total_tokens"]))

        await asyncio.gather(*(one() for _ in range(count)))

    async with AsyncExitStack() as first_stack:
        first = await start_gateway(
            first_stack, Servers(first_stack), chat_config(up), keys=None, api_key=key, **settings
        )
        await send(first, 20)
        await eventually(lambda: len(cp.events) == 20, what="the first events arrived")
        await cp.stop()
        await send(first, 20)
        status = (await first.ops.get("/readyz")).json()["control_plane"]["usage"]
        assert status["pending"] == 20 or status["last_error"] is not None
    # The first gateway stopped gracefully: its events are in the spool, not lost.

    async with AsyncExitStack() as second_stack:
        second = await start_gateway(
            second_stack, Servers(second_stack), chat_config(up), keys=None, api_key=key, **settings
        )
        assert (await second.ops.get("/readyz")).json()["control_plane"]["snapshot"]["source"] == "stored"
        await send(second, 20)
        assert len(cp.events) == 20, "nothing could have been delivered while the control plane was down"
        await cp.start()
        await eventually(lambda: len(cp.events) == 60, within=10, what="every event delivered")
        await eventually(
            lambda: second.core.link.source.policy.ingested_seq == 60, what="the snapshot counts every event"
        )
        usage = (await second.ops.get("/readyz")).json()["control_plane"]["usage"]
        assert usage["pending"] == 0
        assert usage["last_error"] is None

    events = list(cp.events.values())
    assert sorted(e.seq for e in events) == list(range(1, 61)), "one event per request, seq strictly increasing"
    assert {e.gateway_id for e in events} == {gateway_id("gw-delivery")}
    assert sum(e.cost_usd for e in events) == pytest.approx(sum(cost for cost, _ in answers), abs=1e-9)
    assert sum(e.input_tokens + e.output_tokens for e in events) == sum(tokens for _, tokens in answers)
    assert cp.spent(tenant) == pytest.approx(sum(cost for cost, _ in answers), abs=1e-9)


async def test_a_full_spool_refuses_new_requests_with_503_and_the_gauges_show_it(
    upstream, gateway, control_plane, tmp_path
):
    cp = control_plane
    tenant = cp.add_tenant("acme")
    _, key = cp.add_key(tenant)
    up = await upstream()
    gw = await gateway(chat_config(up), keys=None, api_key=key, **cp_settings(cp, tmp_path / "spool"))
    spool = gw.core.link.spool

    def gauges(text: str) -> dict[str, float]:
        return {s.name: s.value for f in text_string_to_metric_families(text) for s in f.samples}

    await cp.stop()  # nothing is acknowledged from now on
    assert (await gw.client.chat.completions.create(model="chat", messages=HELLO)).choices
    spool.max_bytes = spool.pending_bytes + 1  # the next event fills it (a cap of a few bytes, for the test)
    assert (await gw.client.chat.completions.create(model="chat", messages=HELLO)).choices
    refused = await gw.http.post("/v1/chat/completions", json={"model": "chat", "messages": HELLO})
    assert refused.status_code == 503
    assert refused.json()["error"]["code"] == "usage_spool_full"
    assert refused.headers["retry-after"] == "5"
    assert up.requests == 2, "a refused request never reached the upstream"
    usage = (await ops_get(gw, "/readyz")).json()["control_plane"]["usage"]
    assert usage["pending"] == 2
    assert "usage events wait" in usage["refusing"]
    seen = gauges((await ops_get(gw, "/metrics")).text)
    assert seen["interlock_usage_spool_events"] == 2
    assert seen["interlock_usage_spool_bytes"] == spool.pending_bytes > 0
    assert seen["interlock_snapshot_age_seconds"] >= 0

    await cp.start()  # the control plane takes the events: room again
    await eventually(lambda: len(cp.events) == 2, what="both events delivered")
    await eventually(lambda: spool.pending_bytes == 0, what="the spool emptied")
    assert (await gw.client.chat.completions.create(model="chat", messages=HELLO)).choices
    assert gauges((await ops_get(gw, "/metrics")).text)["interlock_usage_spool_events"] <= 1
