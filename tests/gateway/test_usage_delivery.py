"""Usage events through an outage of the control plane and a gateway restart: every event arrives exactly once."""

from __future__ import annotations

import asyncio
from contextlib import AsyncExitStack

import pytest

from tests.gateway.contract_server import gateway_id
from tests.gateway.enforcement_support import HELLO, chat_config, cp_settings
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
        status = (await first.http.get("/readyz")).json()["control_plane"]["usage"]
        assert status["pending"] == 20 or status["last_error"] is not None
    # The first gateway stopped gracefully: its events are in the spool, not lost.

    async with AsyncExitStack() as second_stack:
        second = await start_gateway(
            second_stack, Servers(second_stack), chat_config(up), keys=None, api_key=key, **settings
        )
        assert (await second.http.get("/readyz")).json()["control_plane"]["snapshot"]["source"] == "stored"
        await send(second, 20)
        assert len(cp.events) == 20, "nothing could have been delivered while the control plane was down"
        await cp.start()
        await eventually(lambda: len(cp.events) == 60, within=10, what="every event delivered")
        await eventually(
            lambda: second.core.link.source.policy.ingested_seq == 60, what="the snapshot counts every event"
        )
        usage = (await second.http.get("/readyz")).json()["control_plane"]["usage"]
        assert usage["pending"] == 0
        assert usage["last_error"] is None

    events = list(cp.events.values())
    assert sorted(e.seq for e in events) == list(range(1, 61)), "one event per request, seq strictly increasing"
    assert {e.gateway_id for e in events} == {gateway_id("gw-delivery")}
    assert sum(e.cost_usd for e in events) == pytest.approx(sum(cost for cost, _ in answers), abs=1e-9)
    assert sum(e.input_tokens + e.output_tokens for e in events) == sum(tokens for _, tokens in answers)
    assert cp.spent(tenant) == pytest.approx(sum(cost for cost, _ in answers), abs=1e-9)
