"""What the usage journal puts on a request's path: encoding its usage event and writing it into the kernel
(``os.write``), which the gateway does before the answer's last byte leaves, so the answer waits for it.

    .venv/bin/python bench/gatewaybench/journalcost.py

A realistic event (four spans), 20 rounds of 2,000 events, the spool's sync task running between rounds as in the
gateway. The end-to-end p50 of a request with and without metering is in ``enforcement.py``.
"""

from __future__ import annotations

import asyncio
import statistics
import tempfile
import time
from collections.abc import Callable
from typing import Any

from interlock.gateway.usage.metering import Usage
from interlock.gateway.usage.recorder import Row, encode_event
from interlock.gateway.usage.spool import AsyncSpool

SPANS: tuple[tuple[Any, ...], ...] = (
    ("auth", 0.0, 1e-5, {"tenant": "bench"}),
    ("route", 1e-5, 2e-5, {"route": "chat"}),
    ("upstream", 2e-5, 3e-4, {"backend": "mock", "model": "m1", "status": 200, "failure": None}),
    ("respond", 3e-4, 4e-4, {"status": 200}),
)


def row(seq: int) -> Row:
    return (
        seq, f"ab12cd34ef56ab12{seq:016x}", "7c9e6679-7425-40de-944b-e07fc1f90ae7", "b1c2d3e4-key", "chat", "mock",
        "m1", 200, Usage(12, 16, 0), 0.000044, 1.7e9, 0.00041, None, SPANS, "ab12cd34ef56ab12",
    )  # fmt: skip


async def main() -> None:
    spool = AsyncSpool(tempfile.mkdtemp(prefix="interlock-journalcost-"), sync_interval_s=0.05)
    await spool.open()
    steps: dict[str, Callable[[int], object]] = {
        "encode the event": lambda seq: encode_event("bench/gw/one", row(seq)),
        "encode + os.write into the journal": lambda seq: spool.append(seq, encode_event("bench/gw/one", row(seq))[3]),
    }
    seq = 0
    for label, step in steps.items():
        per_event = []
        for _ in range(20):
            started = time.perf_counter()
            for _ in range(2000):
                seq += 1
                step(seq)
            per_event.append((time.perf_counter() - started) / 2000 * 1e6)
            await asyncio.sleep(0.06)  # the sync thread's fdatasync runs between rounds, as in the gateway
        print(f"{label}: median {statistics.median(per_event):.1f} µs per request (fastest round {min(per_event):.1f})")
    await spool.close()


if __name__ == "__main__":
    asyncio.run(main())
