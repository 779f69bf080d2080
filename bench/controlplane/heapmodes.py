"""``python -m bench.controlplane.heapmodes DATABASE MODE``: the slowest year-long console queries timed in this
process with its heap never frozen (``asis``), frozen before the first query as ``interlock api`` freezes its
startup heap (``startup``), or frozen once warm (``warm``): how much of their p95 is the garbage collector walking
what is not frozen (bench/RESULTS.md, 2026-12-07 02:30). ``DATABASE`` is a database ``bench.controlplane --keep``
loaded, on the local Postgres."""

from __future__ import annotations

import argparse
import asyncio
import datetime as dt
from collections.abc import Awaitable, Callable
from typing import Any

from sqlalchemy import text

from bench.controlplane.queries import timed
from interlock.api.crud import analytics
from interlock.db.session import create_engine, create_sessionmaker
from interlock.heap import freeze_startup_heap


async def run(database: str, mode: str, days: int, repeat: int) -> None:
    engine = create_engine(f"postgresql+asyncpg://postgres@127.0.0.1/{database}")
    sessions = create_sessionmaker(engine)
    async with sessions() as session:
        heavy = await session.scalar(
            text("SELECT tenant_id FROM tenant_monthly GROUP BY 1 ORDER BY sum(requests) DESC LIMIT 1")
        )
    until = dt.datetime.now(dt.UTC)
    since = until - dt.timedelta(days=days)
    cases: dict[str, Callable[[Any], Awaitable[list[Any]]]] = {
        "top 8 tenants + others": lambda s: analytics.series(
            s, since=since, until=until, bucket="day", group_by="tenant", top=8
        ),
        "latency by day and model": lambda s: analytics.latency(
            s, since=since, until=until, bucket="day", group_by="model"
        ),
        "a tenant's latency by day and route": lambda s: analytics.latency(
            s, since=since, until=until, bucket="day", group_by="route", tenant_id=heavy
        ),
    }

    async def call(case: Callable[[Any], Awaitable[list[Any]]]) -> list[Any]:
        async with sessions() as session:
            return await case(session)

    if mode == "startup":
        freeze_startup_heap()
    for case in cases.values():
        await call(case)
    if mode == "warm":
        freeze_startup_heap()
    for name, case in cases.items():
        p95, p50, _ = await timed(lambda case=case: call(case), repeat)
        print(f"{mode:8} {name:36} p50 {p50:6.1f} ms  p95 {p95:6.1f} ms", flush=True)
    await engine.dispose()


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.controlplane.heapmodes", description=__doc__)
    parser.add_argument("database")
    parser.add_argument("mode", choices=("asis", "startup", "warm"))
    parser.add_argument("--days", type=int, default=365)
    parser.add_argument("--repeat", type=int, default=20)
    args = parser.parse_args()
    asyncio.run(run(args.database, args.mode, args.days, args.repeat))


if __name__ == "__main__":
    main()
