"""``python -m bench.routing.client``: one tenant's load client in a process of its own.

The benchmark's load generator drives every tenant from one event loop. In the noisy-tenant workload that loop
reads ten noisy streams for every quiet one and holds hundreds of noisy requests open, so a quiet request's first
chunk can wait in it behind noisy chunks: a delay of the benchmark's own client, which no real quiet client (a
different program, usually on a different machine) shares. With ``--quiet-client process`` the quiet tenant's
requests are sent and timed here instead, on the same schedule (``start``, ``time.monotonic()``, the machine's
clock) and with the same code (``run_load``).

Reads a JSON job on stdin (``root``, ``start``, ``keys``, ``models``, ``requests``: [at, tenant, messages,
measured], ``lag``: whether to sample the event loop's lag) and writes one JSON object on stdout: the outcomes, in
the job's order, the lag samples and collections, and the CPU seconds it used and spent waiting for a CPU meanwhile.
"""

from __future__ import annotations

import os
import sys
import time
from dataclasses import asdict

import orjson
import uvloop

from bench.routing.load import run_load
from bench.routing.timeline import LoopLag, run_delay_s
from bench.routing.workloads import Request


async def main_async() -> None:
    job = orjson.loads(sys.stdin.buffer.read())
    requests = [
        Request(at, tenant, tuple((r, c) for r, c in messages), measured)
        for at, tenant, messages, measured in job["requests"]
    ]
    lag = LoopLag() if job.get("lag") else None
    if lag is not None:
        lag.start()
    print("ready", flush=True)
    cpu, delay = time.process_time(), run_delay_s(os.getpid())
    outcomes, _elapsed = await run_load(job["root"], requests, job["keys"], job["models"], start=job["start"])
    cpu, delay = time.process_time() - cpu, run_delay_s(os.getpid()) - delay
    samples = lag.stop() if lag is not None else []
    collections = lag.collections if lag is not None else []
    answer = {
        "outcomes": [asdict(o) for o in outcomes], "lag": samples, "gc": collections, "cpu_s": cpu,
        "run_delay_s": delay,
    }  # fmt: skip
    sys.stdout.buffer.write(orjson.dumps(answer) + b"\n")


def main() -> None:
    uvloop.run(main_async())


if __name__ == "__main__":
    main()
