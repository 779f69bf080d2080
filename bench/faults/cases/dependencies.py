"""Faults of what Interlock depends on: Redis refusing connections, hung (``SIGSTOP``: connections accepted, nothing
answered) and with a wrong password; the control plane's Postgres stopped under ingest.

A Redis fault must not cost answers (the gateway decides from memory for a while) and must show on ``/readyz``
(a silent fallback is a failure of the case); a Postgres outage must not cost usage (the gateway's spool keeps it
until the control plane can write again). Private servers only: the shared Redis and Postgres are never touched.
"""

from __future__ import annotations

import asyncio
import signal
from typing import Any

from bench.faults import Case, Outcome
from bench.faults.services import free_port, private_postgres, private_redis
from bench.faults.stack import Gateway, Load, Stack, stack, wait_for

__all__ = ["CASES"]

REQUESTS = 600
QUOTA = {"requests_per_minute": 1_000_000, "tokens_per_minute": 100_000_000}
"""Limits the tenant meets on every request, so every request asks Redis."""


async def _limits(gateway: Gateway) -> dict[str, Any]:
    limits: dict[str, Any] = (await gateway.readyz())["limits"]
    return limits


async def _shows(gateway: Gateway, words: tuple[str, ...], within: float = 15.0) -> str:
    """Wait until /readyz reports the limiter unhealthy with an error naming one of ``words``; the error."""
    seen: list[str] = []

    async def shown() -> bool:
        limits = await _limits(gateway)
        error = str(limits.get("last_error") or "")
        seen.append(error)
        return limits.get("healthy") is False and any(w.lower() in error.lower() for w in words)

    try:
        await wait_for(shown, within=within, what=f"/readyz to show a Redis error ({' or '.join(words)})")
    except TimeoutError as exc:
        raise AssertionError(f"/readyz stayed silent about Redis: last said {seen[-1:]!r}") from exc
    return seen[-1]


async def _settle(st: Stack, gateway: Gateway, seen: Load, what: str) -> Outcome:
    await st.settled(gateway)
    code = await gateway.stop() or 0
    rows, ok_rows, distinct = await st.ledger()
    failed = ", ".join(f"{n} {why}" for why, n in sorted(seen.failed.items())) or "none"
    return Outcome(
        lost=max(0, seen.ok - ok_rows) + (seen.sent - seen.ok),
        double_counted=max(0, ok_rows - seen.ok) + (rows - distinct),
        leaked=int(code not in (0, -signal.SIGTERM)),
        detail=f"{what}; client: {seen.ok} of {seen.sent} answered 200 (failed: {failed}); ledger: {ok_rows} rows",
        facts={"requests": seen.sent, "200s": seen.ok, "metered": ok_rows},
    )


async def _redis_case(redis_url: str, words: tuple[str, ...], during: Any = None, recovers: bool = False) -> Outcome:
    async with stack() as st:
        await st.tenant("limited", **QUOTA)
        gateway = st.gateway(INTERLOCK_GATEWAY_REDIS_URL=redis_url, INTERLOCK_GATEWAY_REDIS_TIMEOUT_S="0.25")
        await gateway.start()
        try:
            said: list[str] = []

            async def check() -> None:
                said.append(await _shows(gateway, words))

            actions = during(gateway, check) if during is not None else {REQUESTS // 2: check}
            seen = await st.load(gateway, REQUESTS, actions=actions)
            if not said:
                said.append(await _shows(gateway, words))
            if recovers:  # a little more traffic until a request finds Redis answering again (one try a second)
                for _ in range(40):
                    more = await st.load(gateway, 10, concurrency=2)
                    seen.sent, seen.ok = seen.sent + more.sent, seen.ok + more.ok
                    for why, count in more.failed.items():
                        seen.failed[why] = seen.failed.get(why, 0) + count
                    if (await _limits(gateway))["healthy"]:
                        break
                    await asyncio.sleep(0.25)
                else:
                    raise AssertionError("the limiter never went back to Redis after it answered again")
                said.append("healthy again")
            then = f"; then {said[-1]}" if recovers else ""
            return await _settle(st, gateway, seen, f"/readyz said: {said[0][:90]}{then}")
        finally:
            await gateway.stop()


async def redis_refused() -> Outcome:
    """Nothing listens at the Redis URL: answers from memory buckets, the connect error on /readyz."""
    return await _redis_case(f"redis://127.0.0.1:{free_port()}/0", ("connect", "refused"))


async def redis_wrong_password() -> Outcome:
    """Redis wants a password the gateway does not have: answers from memory, the AUTH error on /readyz."""
    async with private_redis(password="the-right-one") as redis:
        return await _redis_case(redis.url("a-wrong-one"), ("WRONGPASS", "invalid password", "AUTH"))


async def redis_hung() -> Outcome:
    """Redis stops answering (SIGSTOP) for the middle third of the load, then comes back (SIGCONT): answers go on
    from memory within the Redis timeout, /readyz says so, and Redis decides again afterwards."""
    async with private_redis() as redis:

        def during(gateway: Gateway, check: Any) -> dict[int, Any]:
            async def freeze() -> None:
                redis.pause()

            async def thaw() -> None:
                await check()
                redis.resume()

            return {REQUESTS // 3: freeze, 2 * REQUESTS // 3: thaw}

        return await _redis_case(redis.url(), ("did not answer", "timed out", "connection"), during, recovers=True)


async def postgres_stopped_under_ingest(requests: int = 1500) -> Outcome:
    """The control plane's own Postgres (a private one) stops like a crash (``pg_ctl stop -m immediate``) a third
    of the way in and starts again at two thirds: the control plane answers 5xx meanwhile, the gateway keeps the
    events and sends them again, and each is counted once."""
    async with private_postgres() as pg, stack(database_url=pg.url) as st:
        gateway = st.gateway()
        await gateway.start()
        shown: list[str] = []

        async def crash() -> None:
            await asyncio.to_thread(pg.stop, "immediate")

        async def recover() -> None:
            async def visible() -> bool:
                usage = (await gateway.readyz())["control_plane"]["usage"]
                if usage["last_error"]:
                    shown.append(usage["last_error"])
                return bool(usage["last_error"]) and usage["pending"] > 0

            await wait_for(visible, within=30, what="/readyz to show that usage cannot be written")
            await asyncio.to_thread(pg.start)

        seen = await st.load(gateway, requests, actions={requests // 3: crash, 2 * requests // 3: recover})
        return await _settle(
            st,
            gateway,
            seen,
            f"Postgres crashed for a third of the load; /readyz said: {shown[-1][:70] if shown else ''}",
        )


CASES = [
    Case("redis refused", redis_refused),
    Case("redis hung", redis_hung),
    Case("redis wrong password", redis_wrong_password),
    Case("postgres stopped under ingest", postgres_stopped_under_ingest),
]
