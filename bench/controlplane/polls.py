"""Snapshot polling by a fleet of gateways: each polls ``/v1/gateway/snapshot`` (``If-None-Match``, ``since``) or
``/v1/gateway/spend`` every ``interval`` seconds, spread evenly, one kind per phase so each is measured alone. The
API process's CPU time over a phase divided by the answers it gave is the control-plane CPU per answer (the
database's own CPU is not in it; in the changed phase it includes the admin's one quota change per round)."""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass

import httpx

from bench.controlplane.server import ADMIN_TOKEN, SIGNING_KEY, ApiProcess
from interlock.contract.controlplane import Snapshot
from interlock.contract.gatewaycred import mint_gateway_credential

__all__ = ["PollResult", "back_to_back_cost", "full_snapshot_cost", "idle_cpu", "run_polls"]


@dataclass
class PollResult:
    phase: str
    answers: dict[int, int]
    """HTTP status -> count, snapshot and spend together."""
    snapshot_bytes: int
    """Bytes of snapshot bodies sent (200s)."""
    cpu_s: float
    seconds: float

    @property
    def total(self) -> int:
        return sum(self.answers.values())


class _Gateway:
    def __init__(self, name: str) -> None:
        self.params = {"gateway_id": name}
        self.etag: str | None = None
        self.version: str | None = None
        self.spend_etag: str | None = None

    async def poll(self, client: httpx.AsyncClient, answers: dict[int, int], what: str = "both") -> int:
        sent = 0
        if what in ("both", "snapshot"):
            sent = await self._snapshot(client, answers)
        if what in ("both", "spend"):
            await self._spend(client, answers)
        return sent

    async def _snapshot(self, client: httpx.AsyncClient, answers: dict[int, int]) -> int:
        params = dict(self.params)
        headers = {}
        if self.etag and self.version:
            headers["if-none-match"] = self.etag
            params["since"] = self.version
        response = await client.get("/v1/gateway/snapshot", params=params, headers=headers)
        answers[response.status_code] = answers.get(response.status_code, 0) + 1
        sent = 0
        if response.status_code == 200:
            body = Snapshot.model_validate_json(response.content)
            self.etag, self.version, sent = response.headers["etag"], body.version, len(response.content)
        return sent

    async def _spend(self, client: httpx.AsyncClient, answers: dict[int, int]) -> None:
        spend_headers = {"if-none-match": self.spend_etag} if self.spend_etag else {}
        spend = await client.get("/v1/gateway/spend", params=self.params, headers=spend_headers)
        answers[spend.status_code] = answers.get(spend.status_code, 0) + 1
        if spend.status_code == 200:
            self.spend_etag = spend.headers["etag"]


async def run_polls(
    api: ApiProcess, tenants: list[str], *, gateways: int, interval: float, seconds: float
) -> list[PollResult]:
    credential = mint_gateway_credential(SIGNING_KEY.encode(), "bench/gw")
    fleet = [_Gateway(f"bench/gw/poller-{i}") for i in range(gateways)]
    results = []
    async with (
        httpx.AsyncClient(base_url=api.url, headers={"authorization": f"Bearer {credential}"}, timeout=60) as client,
        httpx.AsyncClient(base_url=api.url, headers={"authorization": f"Bearer {ADMIN_TOKEN}"}, timeout=60) as admin,
    ):
        for gateway in fleet:  # each starts with the full snapshot, as a gateway does
            await gateway.poll(client, {})

        async def phase(name: str, change: bool, what: str) -> PollResult:
            answers: dict[int, int] = {}
            sent = 0
            cpu0, began = api.cpu_seconds(), time.perf_counter()
            rounds = max(1, int(seconds / interval))
            for r in range(rounds):
                round_start = time.perf_counter()
                if change:  # one tenant's quota changes per round (to a new value: an unchanged one is no change)
                    tenant = tenants[r % len(tenants)]
                    quota = {
                        "requests_per_minute": 1000 + (int(time.time()) + r) % 1_000_000,
                        "monthly_budget_usd": 100,
                    }
                    (await admin.put(f"/v1/tenants/{tenant}/quota", json=quota)).raise_for_status()
                for gateway in fleet:
                    sent += await gateway.poll(client, answers, what)
                    await asyncio.sleep(max(0.0, interval / len(fleet) - 0.0005))
                await asyncio.sleep(max(0.0, interval - (time.perf_counter() - round_start)))
            cpu = api.cpu_seconds() - cpu0
            return PollResult(name, answers, sent, cpu, time.perf_counter() - began)

        results.append(await phase("snapshot, nothing changed", change=False, what="snapshot"))
        results.append(await phase("snapshot, one tenant's quota changed per round", change=True, what="snapshot"))
        results.append(await phase("spend, no ingest", change=False, what="spend"))
    return results


async def full_snapshot_cost(api: ApiProcess, *, repeat: int = 10) -> tuple[float, int]:
    """CPU seconds per full snapshot answer (no If-None-Match, no since) and its size in bytes."""
    credential = mint_gateway_credential(SIGNING_KEY.encode(), "bench/gw")
    async with httpx.AsyncClient(base_url=api.url, headers={"authorization": f"Bearer {credential}"},
                                 timeout=120) as client:  # fmt: skip
        size = 0
        cpu0 = api.cpu_seconds()
        for i in range(repeat):  # a different gateway each time: nothing cached
            response = await client.get("/v1/gateway/snapshot", params={"gateway_id": f"bench/gw/full-{i}"})
            response.raise_for_status()
            size = len(response.content)
        return (api.cpu_seconds() - cpu0) / repeat, size


async def idle_cpu(api: ApiProcess, seconds: float = 5.0) -> float:
    """The API process's CPU seconds per second with no request at all (timers, background tasks)."""
    cpu0 = api.cpu_seconds()
    await asyncio.sleep(seconds)
    return (api.cpu_seconds() - cpu0) / seconds


async def back_to_back_cost(api: ApiProcess, *, answers: int = 1000) -> dict[str, float]:
    """CPU seconds per answer of ``answers`` polls sent one after another (no idle time in between): a snapshot
    304 and a spend 304, each alone, and a trivial route (``/healthz``) for what uvicorn and FastAPI cost."""
    credential = mint_gateway_credential(SIGNING_KEY.encode(), "bench/gw")
    out = {}
    async with httpx.AsyncClient(base_url=api.url, headers={"authorization": f"Bearer {credential}"},
                                 timeout=60) as client:  # fmt: skip
        params = {"gateway_id": "bench/gw/back-to-back"}
        first = await client.get("/v1/gateway/snapshot", params=params)
        since = {**params, "since": first.json()["version"]}
        spend = await client.get("/v1/gateway/spend", params=params)
        for name, path, query, etag in (
            ("snapshot 304", "/v1/gateway/snapshot", since, first.headers["etag"]),
            ("spend 304", "/v1/gateway/spend", params, spend.headers["etag"]),
            ("GET /healthz, a trivial route: the floor", "/healthz", {}, None),
        ):
            statuses: dict[int, int] = {}
            cpu0 = api.cpu_seconds()
            for _ in range(answers):
                headers = {"if-none-match": etag} if etag is not None else {}
                response = await client.get(path, params=query, headers=headers)
                statuses[response.status_code] = statuses.get(response.status_code, 0) + 1
                etag = response.headers.get("etag", etag)
            out[f"{name} ({', '.join(f'{k}: {v}' for k, v in sorted(statuses.items()))})"] = (
                api.cpu_seconds() - cpu0
            ) / answers
    return out
