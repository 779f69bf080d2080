"""Instructions per request, counted by ``valgrind --tool=callgrind``: a figure this VM's drifting speed cannot move.

The gateway starts under callgrind with instrumentation off (imports under it would take minutes). It serves a
warm-up of 256 requests carrying a sampled ``traceparent``: 512 spans, exactly one full batch, so that a traced
gateway builds, encodes and exports spans once (lazy imports and the collector connection included) before
anything counts, and leaves nothing queued. Then callgrind counts every instruction of every thread while one
keep-alive client sends ``requests`` requests back to back, and, separately, through the graceful stop that
follows, which exports the last, partial batch of spans. The caller charges the requests with what a variant's stop
costs beyond a gateway without telemetry's (that last batch, the exporter's shutdown).

Valgrind runs the gateway some 50 times slower, so the batch span processor's timer (an export every 5 s) would
fire 50 times as often per request as in real time and its per-export cost would count 50 times over. Under
callgrind it only exports full batches of 512 spans (``OTEL_BSP_SCHEDULE_DELAY`` of an hour), which is what it does
in real time at the benchmark's rates anyway.

Instructions leave out what the kernel does (socket reads and writes) and what caches and the GIL cost; they
show the Python work that telemetry adds, exactly, where CPU seconds on this machine vary by ±10 % round to round.
"""

from __future__ import annotations

import re
import subprocess
import time
from pathlib import Path

import httpx

from gatewaybench.procs import Service
from gatewaybench.targets import Target

__all__ = ["count_instructions", "under_callgrind"]

_SAMPLED_PARENT = "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01"
_WARMUP = 256  # traced requests: two spans each, one batch of 512
_TOTALS = re.compile(r"^totals: (\d+)", re.MULTILINE)


def under_callgrind(service: Service, out_dir: Path) -> Service:
    """``service`` to be started under callgrind, instrumentation off until ``count_instructions`` turns it on."""
    out_dir.mkdir(parents=True, exist_ok=True)
    service.argv = [
        "valgrind", "--tool=callgrind", "--instr-atstart=no", f"--callgrind-out-file={out_dir}/callgrind.%p",
        *service.argv,
    ]  # fmt: skip
    service.env = {**service.env, "PYTHONHASHSEED": "0", "OTEL_BSP_SCHEDULE_DELAY": "3600000"}
    return service


def _totals(dump: Path) -> int:
    match = _TOTALS.search(dump.read_text(errors="replace"))
    if match is None:
        raise RuntimeError(f"no totals in {dump}")
    return int(match.group(1))


def count_instructions(service: Service, target: Target, *, requests: int, out_dir: Path) -> tuple[int, int]:
    """Instructions of ``service`` (started ``under_callgrind``) while it served ``requests`` of ``target``'s, and
    while it stopped (it is stopped on return)."""
    pid = service.pid
    with httpx.Client(headers=target.headers, timeout=120) as client:

        def send(count: int, headers: dict[str, str] | None = None) -> None:
            for _ in range(count):
                response = client.post(target.chat_url, content=target.body(), headers=headers)
                if response.status_code != 200:
                    raise RuntimeError(f"{target.name}: {response.status_code} {response.text[:200]}")

        send(_WARMUP, {"traceparent": _SAMPLED_PARENT})
        time.sleep(5)  # the warm-up batch goes out
        subprocess.run(["callgrind_control", "--instr=on", str(pid)], check=True, capture_output=True, timeout=60)
        send(requests)
    time.sleep(5)  # a full batch the last requests completed is exported
    subprocess.run(["callgrind_control", "--dump", str(pid)], check=True, capture_output=True, timeout=60)
    service.stop(timeout_s=300)  # callgrind writes the rest when the process exits
    return _totals(out_dir / f"callgrind.{pid}.1"), _totals(out_dir / f"callgrind.{pid}")
