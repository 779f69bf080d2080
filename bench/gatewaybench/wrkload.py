"""Closed-loop throughput with ``wrk``: a fixed number of connections, each sending the next request at once."""

from __future__ import annotations

import json
import os
import subprocess
from dataclasses import dataclass
from pathlib import Path

__all__ = ["WrkResult", "run_wrk"]

_SCRIPT = Path(__file__).with_name("post.lua")


@dataclass(frozen=True)
class WrkResult:
    requests: int
    duration_s: float
    non_2xx: int
    socket_errors: int
    p50_ms: float
    p99_ms: float

    @property
    def rps(self) -> float:
        return self.requests / self.duration_s if self.duration_s else 0.0

    @property
    def errors(self) -> int:
        return self.non_2xx + self.socket_errors


def run_wrk(
    url: str, *, authorization: str, body: bytes, duration_s: float, connections: int = 64, cores: str = "1"
) -> WrkResult:
    """Run ``wrk -t1`` pinned to ``cores`` and return its counts; raises when wrk fails or prints no summary."""
    argv = [
        "taskset", "-c", cores,
        "wrk", "-t1", f"-c{connections}", f"-d{max(1, round(duration_s))}s", "--timeout", "10s",
        "-s", str(_SCRIPT), url,
    ]  # fmt: skip
    env = {**os.environ, "BENCH_AUTHORIZATION": authorization, "BENCH_BODY": body.decode()}
    done = subprocess.run(argv, capture_output=True, text=True, env=env, timeout=duration_s + 60, check=False)
    for line in done.stdout.splitlines():
        if line.startswith("WRK_JSON "):
            raw = json.loads(line.removeprefix("WRK_JSON "))
            return WrkResult(
                requests=raw["requests"],
                duration_s=raw["duration_us"] / 1e6,
                non_2xx=raw["non_2xx"],
                socket_errors=raw["connect"] + raw["read"] + raw["write"] + raw["timeout"],
                p50_ms=raw["p50_us"] / 1e3,
                p99_ms=raw["p99_us"] / 1e3,
            )
    raise RuntimeError(f"wrk printed no summary (exit {done.returncode}): {done.stderr.strip() or done.stdout[-500:]}")
