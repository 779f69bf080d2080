"""Usage ingestion into Postgres: rows/s by batch size, through a real ``interlock api`` (uvicorn) process.

    .venv/bin/python -m bench.ingest [--rows 4000] [--sizes 1,100,500,2000] [--concurrency 1,4] [--spans 3]

Creates a throwaway database ``interlock_bench_<random>`` on $INTERLOCK_TEST_POSTGRES (default
postgresql://postgres@127.0.0.1:5432/postgres), migrates it, starts ``interlock api`` on a free loopback port, POSTs
pre-encoded ``/v1/gateway/usage`` batches (each event with ``--spans`` spans, as a gateway sends them) from
``--concurrency`` parallel senders, checks that exactly the posted rows landed, and drops the database. Batch
size 1 is capped at 1000 rows to keep the run short. Prints a Markdown table.
"""

from __future__ import annotations

import argparse
import asyncio
import datetime as dt
import os
import platform
import secrets
import socket
import sys
import time
from pathlib import Path

import asyncpg
import httpx
import orjson

from bench.ingest.args import parser

ROOT = Path(__file__).resolve().parents[2]
ADMIN_DSN = os.environ.get("INTERLOCK_TEST_POSTGRES", "postgresql://postgres@127.0.0.1:5432/postgres")
TOKEN = "bench-admin-token-0123456789abcdef"


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def _events(tenant_id: str, start_seq: int, count: int, spans: int) -> list[dict[str, object]]:
    now = dt.datetime.now(dt.UTC).isoformat()
    return [
        {
            "idempotency_id": secrets.token_hex(16),
            "gateway_id": "bench-gw",
            "seq": start_seq + i,
            "started_at": now,
            "tenant_id": tenant_id,
            "key_id": "bench-key",
            "route": "chat-default",
            "backend": "openai",
            "model": "gpt-4o-mini",
            "status": 200,
            "input_tokens": 812,
            "output_tokens": 96,
            "cached_tokens": 256,
            "cost_usd": 0.000123456,
            "latency_ms": 512.25,
            "ttft_ms": 120.5,
            "trace_id": secrets.token_hex(16),
            "spans": [
                {"name": name, "start_ms": float(j), "duration_ms": 1.5, "attributes": {"backend": "openai", "n": j}}
                for j, name in zip(range(spans), ("auth", "route", "upstream", "respond"), strict=False)
            ],
        }
        for i in range(count)
    ]


async def _admin_sql(sql: str) -> None:
    connection = await asyncpg.connect(ADMIN_DSN, timeout=5)
    try:
        await connection.execute(sql)
    finally:
        await connection.close()


async def _count(url: str) -> int:
    connection = await asyncpg.connect(url.replace("postgresql+asyncpg", "postgresql"), timeout=5)
    try:
        value: int = await connection.fetchval("SELECT count(*) FROM usage")
        return value
    finally:
        await connection.close()


async def _run_case(
    client: httpx.AsyncClient, tenant_id: str, seq: int, rows: int, size: int, concurrency: int, spans: int
) -> tuple[float, int]:
    bodies = [
        orjson.dumps({"events": _events(tenant_id, seq + start, min(size, rows - start), spans)})
        for start in range(0, rows, size)
    ]
    queue = list(reversed(bodies))
    headers = {"content-type": "application/json"}

    async def sender() -> int:
        accepted = 0
        while queue:
            body = queue.pop()
            response = await client.post("/v1/gateway/usage", content=body, headers=headers)
            response.raise_for_status()
            accepted += int(response.json()["accepted"])
        return accepted

    began = time.perf_counter()
    accepted = sum(await asyncio.gather(*(sender() for _ in range(concurrency))))
    elapsed = time.perf_counter() - began
    if accepted != rows:
        raise SystemExit(f"batch size {size}: {accepted} rows accepted of {rows}")
    return elapsed, len(bodies)


async def main(args: argparse.Namespace) -> int:
    name = f"interlock_bench_{secrets.token_hex(4)}"
    url = f"{ADMIN_DSN.rpartition('/')[0]}/{name}".replace("postgresql://", "postgresql+asyncpg://", 1)
    await _admin_sql(f'CREATE DATABASE "{name}"')
    port = _free_port()
    env = {**os.environ, "DATABASE_URL": url, "INTERLOCK_API_ENVIRONMENT": "development",
           "INTERLOCK_API_ADMIN_TOKEN": TOKEN}  # fmt: skip
    server = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "interlock", "--log-level", "WARNING", "api", "--migrate", "--port", str(port),
        env=env, cwd=ROOT,
    )  # fmt: skip
    total = 0
    lines = [
        f"Usage ingestion into PostgreSQL via `interlock api` ({platform.machine()}, {os.cpu_count()} CPUs, "
        f"{args.spans} spans per event)",
        "",
        "| batch size | senders | rows | requests | seconds | rows/s | ms per request |",
        "|---:|---:|---:|---:|---:|---:|---:|",
    ]
    try:
        async with httpx.AsyncClient(
            base_url=f"http://127.0.0.1:{port}", headers={"authorization": f"Bearer {TOKEN}"}, timeout=120
        ) as client:
            for _ in range(200):
                try:
                    if (await client.get("/healthz")).status_code == 200:
                        break
                except httpx.TransportError:
                    pass
                await asyncio.sleep(0.1)
            tenant = (await client.post("/v1/tenants", json={"name": "bench"})).json()
            seq = 1
            await _run_case(client, tenant["id"], seq, 200, 100, 1, args.spans)  # warm-up: connections, caches
            seq += 200
            total += 200
            for size in args.sizes:
                for concurrency in args.concurrency:
                    rows = min(args.rows, 1000) if size == 1 else args.rows
                    elapsed, requests = await _run_case(client, tenant["id"], seq, rows, size, concurrency, args.spans)
                    seq += rows
                    total += rows
                    lines.append(
                        f"| {size} | {concurrency} | {rows} | {requests} | {elapsed:.2f} | {rows / elapsed:,.0f} "
                        f"| {1000 * elapsed / requests:.1f} |"
                    )
                    print(lines[-1], file=sys.stderr, flush=True)
        stored = await _count(url)
        if stored != total:
            raise SystemExit(f"{stored} usage rows stored, {total} posted")
        lines += ["", f"All {total} posted rows stored exactly once."]
        print("\n".join(lines))
        return 0
    finally:
        server.terminate()
        await server.wait()
        await _admin_sql(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


if __name__ == "__main__":
    sys.exit(asyncio.run(main(parser().parse_args())))
