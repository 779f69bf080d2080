"""No usage lost or counted twice, end to end: the real control plane (``interlock api``) on a fresh Postgres
database, a real gateway process (``interlock gateway``), a real mock upstream; the control plane stops while
requests flow, the gateway restarts once in between, the control plane comes back, and the ledger holds exactly
one row per request with the cost of the upstream's reported usage."""

from __future__ import annotations

import asyncio
import os
import signal
import sys
import uuid
from collections.abc import AsyncIterator
from contextlib import AsyncExitStack, asynccontextmanager
from decimal import Decimal
from pathlib import Path

import asyncpg
import httpx
import pytest_asyncio

from interlock.contract.gatewaycred import mint_gateway_credential
from tests.gateway.enforcement_support import HELLO, chat_config
from tests.gateway.harness import Servers, start_upstream
from tests.gateway.processes import ROOT, free_port, gateway_process, tail
from tests.support import eventually

ADMIN = "e2e-admin-token-0123456789"
SIGNING_KEY = "e2e-gateway-signing-key-0123456789abcdef"
GATEWAY_CREDENTIAL = mint_gateway_credential(SIGNING_KEY.encode(), "e2e/gw")
REQUESTS = 500
# harness prices (per million tokens): input 1.0, output 2.0; the mock reports no cached tokens here
INPUT_PRICE, OUTPUT_PRICE = Decimal("1.0"), Decimal("2.0")


@pytest_asyncio.fixture
async def database() -> AsyncIterator[str]:
    name = f"interlock_e2e_{uuid.uuid4().hex[:10]}"
    try:
        admin = await asyncpg.connect("postgresql://postgres@127.0.0.1:5432/postgres")
    except OSError as exc:
        raise AssertionError(f"this test needs PostgreSQL on 127.0.0.1:5432 (user postgres): {exc}") from None
    await admin.execute(f'CREATE DATABASE "{name}"')
    try:
        yield f"postgresql://postgres@127.0.0.1:5432/{name}"
    finally:
        await admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        await admin.close()


@asynccontextmanager
async def control_plane(database_url: str, port: int, log: Path) -> AsyncIterator[None]:
    env = {
        **os.environ,
        "DATABASE_URL": database_url,
        "INTERLOCK_API_ADMIN_TOKEN": ADMIN,
        "INTERLOCK_API_GATEWAY_SIGNING_KEY": SIGNING_KEY,
    }
    with log.open("ab") as out:
        proc = await asyncio.create_subprocess_exec(
            sys.executable, "-m", "interlock", "--log-level", "WARNING", "api", "--migrate", "--port", str(port),
            cwd=ROOT, env=env, stdout=out, stderr=out,
        )  # fmt: skip
    try:
        async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}") as http:

            async def up() -> bool:
                if proc.returncode is not None:
                    raise AssertionError(f"control plane exited with {proc.returncode}: {tail(log)}")
                try:
                    response = await http.get("/v1/tenants", headers={"authorization": f"Bearer {ADMIN}"})
                except httpx.TransportError:
                    return False
                return response.status_code == 200

            await eventually(up, within=60, interval=0.1, what="control plane up")
        yield
    finally:
        if proc.returncode is None:
            proc.send_signal(signal.SIGTERM)
        async with asyncio.timeout(30):
            await proc.wait()


async def test_500_requests_through_an_outage_and_a_gateway_restart_make_exactly_500_rows(database, tmp_path):
    async with AsyncExitStack() as stack:
        up = await start_upstream(Servers(stack))
        config_file = tmp_path / "gateway.json"
        config_file.write_bytes(chat_config(up).to_json())
        cp_port, gw_port = free_port(), free_port()
        cp_url = f"http://127.0.0.1:{cp_port}"
        admin = await stack.enter_async_context(
            httpx.AsyncClient(base_url=cp_url, headers={"authorization": f"Bearer {ADMIN}"}, timeout=30)
        )
        cp = await stack.enter_async_context(
            _Restartable(lambda: control_plane(database, cp_port, tmp_path / "cp.log"))
        )
        await cp.start()

        tenant = (await admin.post("/v1/tenants", json={"name": "acme"})).json()
        created = await admin.post(f"/v1/tenants/{tenant['id']}/keys", json={"name": "e2e"})
        assert created.status_code == 201, created.text
        key = created.json()["key"]
        env = {
            "INTERLOCK_GATEWAY_CONTROL_PLANE_URL": cp_url,
            "INTERLOCK_GATEWAY_CONTROL_PLANE_TOKEN": GATEWAY_CREDENTIAL,
            "INTERLOCK_GATEWAY_GATEWAY_ID": "e2e/gw/one",
            "INTERLOCK_GATEWAY_SPOOL_PATH": str(tmp_path / "spool"),
            "INTERLOCK_GATEWAY_SNAPSHOT_INTERVAL_S": "0.2",
            "INTERLOCK_GATEWAY_USAGE_RETRY_MAX_S": "0.5",
        }
        expected = Decimal(0)
        tokens = 0

        async def flow(client: httpx.AsyncClient, count: int, at: int, action) -> None:
            nonlocal expected, tokens
            done = 0
            queue = iter(range(count))

            async def worker() -> None:
                nonlocal expected, tokens, done
                for _ in queue:
                    response = await client.post("/v1/chat/completions", json={"model": "chat", "messages": HELLO})
                    assert response.status_code == 200, response.text
                    usage = response.json()["usage"]
                    expected += (usage["prompt_tokens"] * INPUT_PRICE + usage["completion_tokens"] * OUTPUT_PRICE) / (
                        10**6
                    )
                    tokens += usage["total_tokens"]
                    done += 1
                    if done == at:
                        await action()

            await asyncio.gather(*(worker() for _ in range(10)))

        headers = {"authorization": f"Bearer {key}"}
        log = tmp_path / "gateway.log"
        async with (
            gateway_process(config_file, env, log, port=gw_port) as gateway,
            httpx.AsyncClient(base_url=gateway.url, headers=headers, timeout=30) as client,
        ):
            await flow(client, 200, 150, cp.stop)  # the control plane stops while requests flow ...
            await flow(client, 50, 0, cp.stop)  # ... and more come after it is gone (however long stopping took)

            async def sender_failed() -> bool:  # the sender tries within its linger; wait for it, never race it
                usage = (await client.get(f"{gateway.ops_url}/readyz")).json()["control_plane"]["usage"]
                return usage["last_error"] is not None and usage["pending"] > 0

            await eventually(sender_failed, within=30, interval=0.05, what="/readyz shows the control plane is gone")
        # restarted once, the control plane still down: the second process starts from the stored snapshot
        async with (
            gateway_process(config_file, env, log, port=gw_port) as gateway,
            httpx.AsyncClient(base_url=gateway.url, headers=headers, timeout=30) as client,
        ):
            ready = (await client.get(f"{gateway.ops_url}/readyz")).json()
            assert ready["control_plane"]["snapshot"]["source"] == "stored"
            await flow(client, 250, 100, cp.start)  # the control plane comes back while requests flow

            async def all_rows() -> bool:
                response = await admin.get("/v1/usage", params={"tenant_id": tenant["id"], "limit": 1})
                return bool(response.json()["totals"]["requests"] >= REQUESTS)

            await eventually(all_rows, within=60, interval=0.2, what="every usage row in Postgres")

        usage = (await admin.get("/v1/usage", params={"tenant_id": tenant["id"], "limit": 1000})).json()
        rows = usage["data"]
        assert usage["totals"]["requests"] == REQUESTS == len(rows)
        assert len({r["idempotency_id"] for r in rows}) == REQUESTS
        assert sorted(r["seq"] for r in rows) == list(range(1, REQUESTS + 1))
        assert Decimal(str(usage["totals"]["cost_usd"])).quantize(Decimal("1e-9")) == expected.quantize(Decimal("1e-9"))
        assert usage["totals"]["input_tokens"] + usage["totals"]["output_tokens"] == tokens
        for row in rows:
            cost = (row["input_tokens"] * INPUT_PRICE + row["output_tokens"] * OUTPUT_PRICE) / 10**6
            assert abs(Decimal(str(row["cost_usd"])) - cost) < Decimal("1e-12"), row


class _Restartable:
    """A control-plane process that the test can stop and start again (same port, same database)."""

    def __init__(self, factory) -> None:
        self._factory = factory
        self._running = None

    async def __aenter__(self) -> _Restartable:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.stop()

    async def start(self) -> None:
        assert self._running is None
        self._running = self._factory()
        await self._running.__aenter__()

    async def stop(self) -> None:
        if self._running is not None:
            running, self._running = self._running, None
            await running.__aexit__(None, None, None)
