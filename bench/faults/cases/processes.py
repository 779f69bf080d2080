"""Faults of Interlock's own processes: the gateway killed with ``kill -9`` under load; the control plane down
(stopped) and hung (it accepts connections and never answers) while requests flow.

Real processes throughout: ``interlock api`` on a fresh Postgres database, ``interlock gateway``, the mock provider,
an HTTP client. Each case compares what the client was answered with what the control plane's ledger holds:

- lost: requests answered 200 whose usage row never arrived;
- counted twice: usage rows beyond the answered requests (a replayed journal or a resent batch counted again),
  and rows sharing an idempotency id;
- leaked: nothing here can leak a secret; a gateway that did not exit cleanly at the end counts.
"""

from __future__ import annotations

import asyncio
import signal
import time

from bench.faults import Case, Outcome
from bench.faults.services import HangingProxy
from bench.faults.stack import Gateway, Load, Stack, stack, wait_for

__all__ = ["CASES"]

REQUESTS = 2000


def _account(seen: Load, rows: int, ok_rows: int, distinct: int, what: str, **facts: float) -> Outcome:
    lost = max(0, seen.ok - ok_rows)
    double = max(0, ok_rows - seen.ok) + (rows - distinct)
    failed = ", ".join(f"{n} {why}" for why, n in sorted(seen.failed.items())) or "none"
    detail = f"{what}; client: {seen.ok} of {seen.sent} answered 200 (failed: {failed}); ledger: {ok_rows} rows 200"
    return Outcome(
        lost=lost,
        double_counted=double,
        detail=detail,
        facts={"requests": seen.sent, "200s": seen.ok, "metered": ok_rows, **facts},
    )


async def _finish(st: Stack, gateway: Gateway) -> tuple[int, int, int, int]:
    """Drain the spool, stop the gateway (SIGTERM), read the ledger; the exit code last."""
    await st.settled(gateway)
    code = await gateway.stop() or 0
    rows, ok_rows, distinct = await st.ledger()
    return rows, ok_rows, distinct, code


async def kill_minus_nine(requests: int = REQUESTS) -> Outcome:
    """``kill -9`` of the gateway halfway through ``requests``, then a restart on the same spool and port."""
    async with stack() as st:
        gateway = st.gateway()
        await gateway.start()
        outage = 0.0

        async def kill_and_restart() -> None:
            nonlocal outage
            started = time.monotonic()
            await gateway.stop(signal.SIGKILL)
            await gateway.start()
            outage = time.monotonic() - started

        seen = await st.load(gateway, requests, actions={requests // 2: kill_and_restart})
        rows, ok_rows, distinct, code = await _finish(st, gateway)
    outcome = _account(seen, rows, ok_rows, distinct, "killed with SIGKILL halfway, restarted", restart_s=outage)
    return Outcome(
        lost=outcome.lost,
        double_counted=outcome.double_counted,
        leaked=int(code not in (0, -signal.SIGTERM)),
        detail=outcome.detail,
        facts=outcome.facts,
    )


async def control_plane_down(requests: int = 1500) -> Outcome:
    """The control plane stops (SIGTERM) a third of the way in and starts again at two thirds: answers go on from
    the gateway's snapshot, usage waits in the spool, then arrives once."""
    async with stack() as st:
        gateway = st.gateway()
        await gateway.start()
        shown: list[str] = []

        async def down() -> None:
            await st.cp.stop()

        async def up() -> None:
            async def visible() -> bool:
                usage = (await gateway.readyz())["control_plane"]["usage"]
                if usage["last_error"]:
                    shown.append(usage["last_error"])
                return bool(usage["last_error"])

            await wait_for(visible, within=30, what="/readyz to show the control plane is gone")
            await st.cp.start()

        seen = await st.load(gateway, requests, actions={requests // 3: down, 2 * requests // 3: up})
        rows, ok_rows, distinct, code = await _finish(st, gateway)
    what = f"control plane stopped for a third of the load; /readyz said: {shown[-1][:80] if shown else 'nothing'}"
    outcome = _account(seen, rows, ok_rows, distinct, what)
    return Outcome(
        lost=outcome.lost + (0 if seen.ok == seen.sent else seen.sent - seen.ok),
        double_counted=outcome.double_counted,
        leaked=int(code not in (0, -signal.SIGTERM)),
        detail=outcome.detail,
        facts=outcome.facts,
    )


async def control_plane_hung(requests: int = 1500) -> Outcome:
    """The control plane stops answering (connections accepted, nothing sent back) for a third of the load:
    requests are not held up, /readyz shows the timeouts, and the usage arrives once it answers again."""
    async with stack() as st:
        proxy = HangingProxy(st.cp.port)
        await proxy.start()
        gateway = Gateway(st.config, proxy.url, st.work)
        try:
            await gateway.start()
            shown: list[str] = []
            slowest = 0.0

            async def hang() -> None:
                proxy.hang()

            async def resume() -> None:
                async def visible() -> bool:
                    status = (await gateway.readyz())["control_plane"]
                    error = status["usage"]["last_error"] or status["snapshot"]["last_error"]
                    if error:
                        shown.append(error)
                    return bool(error)

                await wait_for(visible, within=30, what="/readyz to show the control plane does not answer")
                proxy.resume()

            started = time.monotonic()
            seen = await st.load(gateway, requests, actions={requests // 3: hang, 2 * requests // 3: resume})
            slowest = time.monotonic() - started
            rows, ok_rows, distinct, code = await _finish(st, gateway)
        finally:
            await gateway.stop()
            await proxy.stop()
    what = f"control plane hung for a third of the load; /readyz said: {shown[-1][:80] if shown else 'nothing'}"
    outcome = _account(seen, rows, ok_rows, distinct, what, load_s=round(slowest, 1))
    return Outcome(
        lost=outcome.lost + (seen.sent - seen.ok),
        double_counted=outcome.double_counted,
        leaked=int(code not in (0, -signal.SIGTERM)),
        detail=outcome.detail,
        facts=outcome.facts,
    )


CASES = [
    Case("gateway kill -9 under load", kill_minus_nine),
    Case("control plane down", control_plane_down),
    Case("control plane hung", control_plane_hung),
]

if __name__ == "__main__":  # one case by hand: python -m bench.faults.cases.processes
    print(asyncio.run(kill_minus_nine()))
