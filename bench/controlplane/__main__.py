"""The control plane at fleet scale, on Postgres: ``bench/controlplane/run [--scale 0.1] [...]``.

Creates a throwaway database ``interlock_bench_<random>`` on $INTERLOCK_TEST_POSTGRES (default
postgresql://postgres@127.0.0.1:5432/postgres), migrates it, loads the synthetic history (``history``), starts one
real ``interlock api`` process and measures, in turn: sustained ingest (``ingest``), snapshot polling by a fleet of
gateways (``polls``) and query latency (``queries``). Prints a Markdown report; drops the database unless
``--keep``. See bench/README.md.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import platform
import secrets
import sys
import time

import asyncpg

from bench.controlplane.args import parser
from bench.controlplane.history import FULL_TENANTS, load_history, loaded_history
from bench.controlplane.ingest import run_ingest
from bench.controlplane.polls import back_to_back_cost, full_snapshot_cost, idle_cpu, run_polls
from bench.controlplane.queries import run_queries
from bench.controlplane.server import ApiProcess
from interlock.db.migrate import migrate

ADMIN_DSN = os.environ.get("INTERLOCK_TEST_POSTGRES", "postgresql://postgres@127.0.0.1:5432/postgres")


def log(message: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {message}", file=sys.stderr, flush=True)


async def _admin_sql(sql: str) -> str:
    connection = await asyncpg.connect(ADMIN_DSN, timeout=5)
    try:
        await connection.execute(sql)
        return str(await connection.fetchval("SHOW server_version"))
    finally:
        await connection.close()


async def main(args: argparse.Namespace) -> int:
    phases = set(args.phases.split(","))
    name = args.database or f"interlock_bench_{secrets.token_hex(4)}"
    dsn = f"{ADMIN_DSN.rpartition('/')[0]}/{name}"
    url = dsn.replace("postgresql://", "postgresql+asyncpg://", 1)
    server_version = await _admin_sql("SELECT 1" if args.database else f'CREATE DATABASE "{name}"')
    log(f"database {name}")
    out = [
        f"Control plane ({platform.machine()}, {os.cpu_count()} CPUs, PostgreSQL "
        f"{server_version}; one `interlock api` process)",
        "",
    ]
    try:
        if args.database:
            await migrate(url)  # a database kept by an earlier checkout: upgraded
            history = await loaded_history(dsn)
            tenants = len(history.tenants)
        else:
            await migrate(url)
            tenants = args.tenants or FULL_TENANTS
            history = await load_history(dsn, scale=args.scale, tenants=tenants, log=log)
        out.append(f"History: {tenants:,} tenants, {tenants * 3:,} keys, {history.rows:,} usage rows over 365 days "
                   f"(scale {history.rows / 10_000_000:g}).")  # fmt: skip
        async with ApiProcess(url) as api:
            if "ingest" in phases:
                log("ingest")
                result = await run_ingest(api, dsn, history.tenants, events=args.ingest_events, batch=args.batch,
                                          senders=args.senders, spans=args.spans)  # fmt: skip
                out += [
                    "",
                    f"### Ingest: {args.senders} gateways, batches of {args.batch}, {args.spans} spans per event",
                    "",
                    "| events | seconds | events/s | API CPU s | API CPU per event | Postgres CPU per event | "
                    "resent: duplicates | stored | fold s | fold Postgres CPU per event | events/s with the fold |",
                    "|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
                    f"| {result.events:,} | {result.seconds:.2f} | {result.rate:,.0f} | {result.api_cpu_s:.2f} | "
                    f"{1e6 * result.api_cpu_s / result.events:.0f} µs | "
                    f"{1e6 * result.postgres_cpu_s / result.events:.0f} µs | {result.duplicates_on_resend:,} | "
                    f"{result.stored:,} (exactly once) | {result.fold_seconds:.2f} | "
                    f"{1e6 * result.fold_postgres_cpu_s / result.events:.1f} µs | {result.rate_with_fold:,.0f} |",
                ]
                log(out[-1])
            if "snapshot" in phases:
                log("snapshot polls")
                full_cpu, full_size = await full_snapshot_cost(api)
                idle = await idle_cpu(api)
                single = await back_to_back_cost(api)
                polls = await run_polls(api, history.tenants[100:], gateways=args.gateways,
                                        interval=args.poll_interval, seconds=args.poll_seconds)  # fmt: skip
                out += [
                    "",
                    f"### Snapshot: {args.gateways} gateways polling snapshot and spend every {args.poll_interval} s",
                    "",
                    f"Full snapshot ({tenants:,} tenants, {tenants * 3:,} keys): {full_size:,} bytes, "
                    f"{1000 * full_cpu:.0f} ms API CPU each.",
                    "",
                    "| phase | answers (status: count) | snapshot bytes sent | API CPU per answer | less idle CPU |",
                    "|---|---|---:|---:|---:|",
                ]
                for poll in polls:
                    counts = ", ".join(f"{status}: {n:,}" for status, n in sorted(poll.answers.items()))
                    busy = max(0.0, poll.cpu_s - idle * poll.seconds)
                    per, less = 1000 * poll.cpu_s / poll.total, 1000 * busy / poll.total
                    out.append(f"| {poll.phase} | {counts} | {poll.snapshot_bytes:,} | {per:.2f} ms | {less:.2f} ms |")
                    log(out[-1])
                out += ["", f"Idle API process: {1000 * idle:.1f} ms CPU per second. Back to back (1,000 polls, one "
                        "after another):", ""]  # fmt: skip
                out += [f"- {name}: {1000 * cpu:.3f} ms API CPU per answer" for name, cpu in single.items()]
            if "queries" in phases:
                log("queries")
                rows = await run_queries(api, url, history.tenants[0], repeat=args.repeat)
                out += [
                    "",
                    f"### Queries: p50 and p95 of {args.repeat} runs (tenant: the heaviest one)",
                    "",
                    "| query | window | caller | p50 ms | p95 ms | result |",
                    "|---|---|---|---:|---:|---|",
                    *[f"| {' | '.join(row)} |" for row in rows],
                ]
        print("\n".join(out))
        return 0
    finally:
        if args.keep or args.database:
            log(f"kept database {name}")
        else:
            await _admin_sql(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


if __name__ == "__main__":
    sys.exit(asyncio.run(main(parser().parse_args())))
