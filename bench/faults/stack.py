"""The real parts a fault case runs: a fresh Postgres database, the control plane (``interlock api``) and gateway
(``interlock gateway``) as processes, the mock provider in this process (so a case can count what it served), a
tenant and key, a closed-loop load, and the ledger's count at the end.

Everything binds 127.0.0.1 on free ports, and every process and database is gone when a case returns.
"""

from __future__ import annotations

import asyncio
import os
import shutil
import signal
import sys
import tempfile
import time
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import asyncpg
import httpx
import orjson

from bench.faults.services import free_port
from interlock.asgiserver import EmbeddedServer
from interlock.contract.gatewaycred import mint_gateway_credential
from interlock.mockprovider import MockProvider, MockSettings, create_app

__all__ = [
    "ADMIN",
    "ControlPlane",
    "Gateway",
    "Load",
    "Stack",
    "fresh_database",
    "mock_upstream",
    "stack",
    "wait_for",
]

ROOT = Path(__file__).resolve().parents[2]
ADMIN = "faults-admin-token-0123456789"
SIGNING_KEY = "faults-gateway-signing-key-0123456789abcdef"
SCOPE = "faults/gw"
POSTGRES = os.environ.get("INTERLOCK_TEST_POSTGRES", "postgresql://postgres@127.0.0.1:5432/postgres")
BODY = orjson.dumps({"model": "chat", "messages": [{"role": "user", "content": "Hello there"}], "max_tokens": 16})


async def wait_for(check: Callable[[], Awaitable[bool]], *, within: float, what: str, interval: float = 0.05) -> None:
    deadline = time.monotonic() + within
    while True:
        if await check():
            return
        if time.monotonic() > deadline:
            raise TimeoutError(f"timed out after {within:g}s waiting for {what}")
        await asyncio.sleep(interval)


@asynccontextmanager
async def fresh_database() -> AsyncIterator[str]:
    """A new database on the shared Postgres, dropped at the end."""
    name = f"interlock_faults_{uuid.uuid4().hex[:10]}"
    admin = await asyncpg.connect(POSTGRES, timeout=10)
    base = POSTGRES.rsplit("/", 1)[0]
    try:
        await admin.execute(f'CREATE DATABASE "{name}"')
        yield f"{base}/{name}"
    finally:
        await admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        await admin.close()


@asynccontextmanager
async def mock_upstream(**settings: Any) -> AsyncIterator[tuple[MockProvider, str]]:
    provider = create_app(MockSettings.model_validate(settings))
    server = EmbeddedServer(provider, lifespan="off")
    url = await server.start()
    try:
        yield provider, f"{url}/v1"
    finally:
        await server.stop()


class _Process:
    def __init__(self, args: list[str], env: Mapping[str, str], log: Path) -> None:
        self.args = args
        self.env = env
        self.log = log
        self.proc: asyncio.subprocess.Process | None = None

    async def spawn(self) -> None:
        with self.log.open("ab") as out:
            self.proc = await asyncio.create_subprocess_exec(
                *self.args, cwd=ROOT, env={**os.environ, **self.env}, stdout=out, stderr=out
            )

    @property
    def running(self) -> bool:
        return self.proc is not None and self.proc.returncode is None

    def tail(self) -> str:
        return self.log.read_text(errors="replace")[-1500:] if self.log.exists() else ""

    async def stop(self, sig: signal.Signals = signal.SIGTERM, grace_s: float = 30.0) -> int | None:
        proc, self.proc = self.proc, None
        if proc is None:
            return None
        if proc.returncode is None:
            proc.send_signal(sig)
        try:
            async with asyncio.timeout(grace_s):
                return await proc.wait()
        except TimeoutError:
            proc.kill()
            return await proc.wait()


class ControlPlane(_Process):
    """``interlock api --migrate`` on ``database_url``, restartable on the same port."""

    def __init__(self, database_url: str, work: Path, port: int | None = None) -> None:
        self.port = port or free_port()
        env = {"DATABASE_URL": database_url, "INTERLOCK_API_ADMIN_TOKEN": ADMIN}
        env["INTERLOCK_API_GATEWAY_SIGNING_KEY"] = SIGNING_KEY
        args = [
            sys.executable,
            "-m",
            "interlock",
            "--log-level",
            "WARNING",
            "api",
            "--migrate",
            "--port",
            str(self.port),
        ]
        super().__init__(args, env, work / "control-plane.log")

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    async def start(self) -> None:
        await self.spawn()
        async with httpx.AsyncClient(base_url=self.url, headers={"authorization": f"Bearer {ADMIN}"}) as http:

            async def up() -> bool:
                if not self.running:
                    raise RuntimeError(f"the control plane exited: {self.tail()}")
                try:
                    return (await http.get("/v1/tenants")).status_code == 200
                except httpx.TransportError:
                    return False

            await wait_for(up, within=60, what="the control plane")


class Gateway(_Process):
    """``interlock gateway`` with a control plane, restartable on the same port and spool."""

    def __init__(self, config: Path, cp_url: str, work: Path, *, name: str = "one", **env: str) -> None:
        self.port = free_port()
        self.ops_port = free_port()
        settings = {
            "INTERLOCK_GATEWAY_CONTROL_PLANE_URL": cp_url,
            "INTERLOCK_GATEWAY_CONTROL_PLANE_TOKEN": mint_gateway_credential(SIGNING_KEY.encode(), SCOPE),
            "INTERLOCK_GATEWAY_GATEWAY_ID": f"{SCOPE}/{name}",
            "INTERLOCK_GATEWAY_SPOOL_PATH": str(work / f"spool-{name}"),
            "INTERLOCK_GATEWAY_SNAPSHOT_INTERVAL_S": "0.2",
            "INTERLOCK_GATEWAY_USAGE_RETRY_MAX_S": "0.5",
            "INTERLOCK_GATEWAY_REDIS_URL": "",
            "REDIS_URL": "",
            **env,
        }
        args = [sys.executable, "-m", "interlock", "--log-level", "WARNING", "gateway", "--config", str(config)]
        ports = ["--port", str(self.port), "--ops-port", str(self.ops_port)]
        super().__init__([*args, *ports], settings, work / f"gateway-{name}.log")

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def ops_url(self) -> str:
        """The ops port: ``/readyz`` and ``/metrics``."""
        return f"http://127.0.0.1:{self.ops_port}"

    async def start(self) -> None:
        await self.spawn()
        async with httpx.AsyncClient() as http:

            async def ready() -> bool:
                if not self.running:
                    raise RuntimeError(f"the gateway exited: {self.tail()}")
                try:
                    return (await http.get(f"{self.ops_url}/readyz")).status_code == 200
                except httpx.TransportError:
                    return False

            await wait_for(ready, within=60, what="the gateway")

    async def listening(self) -> bool:
        try:
            _, writer = await asyncio.open_connection("127.0.0.1", self.port)
        except OSError:
            return False
        writer.close()
        return True

    async def readyz(self) -> dict[str, Any]:
        async with httpx.AsyncClient(timeout=10) as http:
            body: dict[str, Any] = (await http.get(f"{self.ops_url}/readyz")).json()
            return body


@dataclass
class Load:
    """What the client saw."""

    sent: int = 0
    ok: int = 0
    failed: dict[str, int] = field(default_factory=dict)
    """Why requests did not get a 200: status codes and exception names."""

    def fail(self, why: str) -> None:
        self.failed[why] = self.failed.get(why, 0) + 1


@dataclass
class Stack:
    work: Path
    cp: ControlPlane
    upstream: MockProvider
    config: Path
    database_url: str
    key: str = ""
    tenant_id: str = ""

    async def tenant(self, name: str = "faults", **quota: Any) -> None:
        async with httpx.AsyncClient(base_url=self.cp.url, headers={"authorization": f"Bearer {ADMIN}"}) as http:
            tenant = (await http.post("/v1/tenants", json={"name": name})).json()
            if quota:
                (await http.put(f"/v1/tenants/{tenant['id']}/quota", json=quota)).raise_for_status()
            self.key = (await http.post(f"/v1/tenants/{tenant['id']}/keys", json={"name": "faults"})).json()["key"]
            self.tenant_id = tenant["id"]

    def gateway(self, name: str = "one", **env: str) -> Gateway:
        return Gateway(self.config, self.cp.url, self.work, name=name, **env)

    async def load(
        self,
        gateway: Gateway,
        requests: int,
        *,
        concurrency: int = 10,
        actions: Mapping[int, Callable[[], Awaitable[None]]] | None = None,
        request_timeout_s: float = 30.0,
    ) -> Load:
        """``requests`` chat completions, ``concurrency`` at a time. ``actions[n]`` runs once the n-th request was
        sent, awaited by that worker while the others go on. A request that cannot connect counts as failed, and
        the workers wait for the gateway to listen again before they send more (a restart does not burn the
        load)."""
        seen = Load()
        numbers = iter(range(1, requests + 1))
        limits = httpx.Limits(max_connections=concurrency, max_keepalive_connections=concurrency)
        headers = {"authorization": f"Bearer {self.key}", "content-type": "application/json"}
        todo = dict(actions or {})
        async with httpx.AsyncClient(
            base_url=gateway.url, headers=headers, limits=limits, timeout=request_timeout_s
        ) as http:

            async def worker() -> None:
                for number in numbers:
                    seen.sent += 1
                    action = todo.pop(number, None)
                    if action is not None:
                        await action()
                    try:
                        response = await http.post("/v1/chat/completions", content=BODY)
                    except (httpx.TransportError, AttributeError) as exc:
                        # AttributeError: after a kill, httpcore's check of an idle pooled connection asks anyio
                        # for the socket of a transport already closed, and anyio 4.16 computes the socket's
                        # attributes from None ('NoneType' object has no attribute 'getpeername'): the request
                        # never left, like a refused connection.
                        seen.fail(type(exc).__name__)
                        await wait_for(gateway.listening, within=60, what="the gateway to listen again")
                        continue
                    if response.status_code == 200:
                        seen.ok += 1
                    else:
                        seen.fail(str(response.status_code))

            await asyncio.gather(*(worker() for _ in range(concurrency)))
        return seen

    async def ledger(self) -> tuple[int, int, int]:
        """The tenant's usage rows in the control plane's database: (rows, of which status 200, distinct
        idempotency ids)."""
        connection = await asyncpg.connect(self.database_url, timeout=10)
        try:
            row = await connection.fetchrow(
                "SELECT count(*), count(*) FILTER (WHERE status = 200), count(DISTINCT idempotency_id) "
                "FROM usage WHERE tenant_id = $1",
                self.tenant_id,
            )
        finally:
            await connection.close()
        assert row is not None
        return int(row[0]), int(row[1]), int(row[2])

    async def settled(self, gateway: Gateway, *, within: float = 60.0) -> None:
        """Wait until the gateway's spool is empty (every event acknowledged by the control plane)."""

        async def empty() -> bool:
            usage = (await gateway.readyz()).get("control_plane", {}).get("usage", {})
            return usage.get("pending") == 0

        await wait_for(empty, within=within, what="the spool to drain", interval=0.1)


def chat_config(upstream_url: str, work: Path) -> Path:
    config = work / "gateway.json"
    config.write_bytes(
        orjson.dumps(
            {
                "schemaVersion": 1,
                "backends": {
                    "mock": {
                        "name": "mock",
                        "provider": "openai",
                        "url": upstream_url,
                        "models": {"m1": {"inputPerMillion": 1.0, "outputPerMillion": 2.0}},
                    }
                },
                "routes": {"chat": {"name": "chat", "model": "chat", "targets": [{"backend": "mock", "model": "m1"}]}},
            }
        )
    )
    return config


@asynccontextmanager
async def stack(database_url: str | None = None, **mock: Any) -> AsyncIterator[Stack]:
    """A mock upstream, a control plane on a fresh database (or ``database_url``) and a tenant with a key."""
    work = Path(tempfile.mkdtemp(prefix="interlock-faults-"))
    try:
        async with mock_upstream(**mock) as (provider, url):
            if database_url is None:
                async with fresh_database() as fresh, _with_cp(work, fresh, provider, url) as built:
                    yield built
            else:
                async with _with_cp(work, database_url, provider, url) as built:
                    yield built
    finally:
        shutil.rmtree(work, ignore_errors=True)  # logs and journals: a case's own, gone with it


@asynccontextmanager
async def _with_cp(work: Path, database_url: str, provider: MockProvider, url: str) -> AsyncIterator[Stack]:
    cp = ControlPlane(database_url, work)
    await cp.start()
    try:
        built = Stack(work, cp, provider, chat_config(url, work), database_url)
        await built.tenant()
        yield built
    finally:
        await cp.stop()
