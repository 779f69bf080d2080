"""Where Postgres spends an ingested batch: ``EXPLAIN (ANALYZE, BUFFERS, WAL)`` of the ingest statement
(``interlock.api.crud.ingest._ingest_sql``) on one batch as the bench sends it, in a transaction rolled back, then
the statement run as the API runs it (prepared by asyncpg) a few times, each rolled back, with Postgres's count of
generic and custom plans for it.

``python -m bench.controlplane.explain_ingest --database interlock_bench_xxxx [--batch 500] [--spans 3]``
"""

from __future__ import annotations

import argparse
import asyncio
import random
import secrets

import asyncpg

from bench.controlplane.__main__ import ADMIN_DSN
from bench.controlplane.ingest import _event
from interlock.api.crud.ingest import _ingest_sql, batch_document
from interlock.api.schemas import UsageEventWire


async def main(args: argparse.Namespace) -> None:
    dsn = f"{ADMIN_DSN.rpartition('/')[0]}/{args.database}"
    connection = await asyncpg.connect(dsn, max_cacheable_statement_size=1 << 20)  # as the API (interlock.db.session)
    rng, run_id = random.Random(3), secrets.token_hex(8)
    try:
        tenants = [str(r[0]) for r in await connection.fetch("SELECT id FROM tenants ORDER BY id LIMIT 2000")]

        def document(first: int) -> str:
            raw = [
                _event("bench/gw/explain", first + i, rng.choice(tenants), args.spans, rng, run_id)
                for i in range(args.batch)
            ]
            return batch_document([UsageEventWire.model_validate(event) for event in raw])

        sql = _ingest_sql()
        for n in range(7):  # the first explained, then six as the API runs it; every one rolled back
            transaction = connection.transaction()
            await transaction.start()
            try:
                if n == 0:
                    rows = await connection.fetch("EXPLAIN (ANALYZE, BUFFERS, WAL) " + sql, document(1))
                    print("\n".join(str(row[0]) for row in rows))
                else:
                    await connection.fetchval(sql, document(1 + args.batch * n))
            finally:
                await transaction.rollback()
        plans = await connection.fetch(
            "SELECT generic_plans, custom_plans FROM pg_prepared_statements WHERE statement = $1", sql
        )
        print("the ingest statement, prepared (generic plans, custom plans):", [tuple(p) for p in plans])
    finally:
        await connection.close()


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--database", required=True)
    parser.add_argument("--batch", type=int, default=500)
    parser.add_argument("--spans", type=int, default=3)
    asyncio.run(main(parser.parse_args()))
