"""The measurement phases, each bounded in time, for every target in turn with the machine settled in between.

The latency and streams phases run in short rounds that alternate between the targets, and pool the rounds'
samples: on a shared machine the noise then falls on every target alike instead of on whichever ran last.
"""

from __future__ import annotations

import time
import traceback
from collections.abc import Callable
from dataclasses import dataclass, field

from gatewaybench.openloop import fixed_rate_latency
from gatewaybench.procs import cpu_seconds, machine_busy_seconds, own_cpu_seconds, wait_quiet
from gatewaybench.report import TargetResults
from gatewaybench.streams import concurrent_streams
from gatewaybench.targets import Target
from gatewaybench.wrkload import WrkResult, run_wrk

__all__ = ["FULL", "QUICK", "Checks", "Durations", "Plan", "Usage", "run_phases"]

# An overloaded proxy (LiteLLM at 200 requests/s) works off its backlog after the clients gave up; wait for it.
_SETTLE_TIMEOUT_S = 90.0


@dataclass(frozen=True)
class Durations:
    throughput_warmup_s: float
    throughput_s: float
    latency_warmup_s: float  # per round
    latency_s: float  # measured, all rounds together
    latency_rounds: int
    streams_warmup_s: float  # per round
    streams_s: float  # measured, all rounds together
    streams_rounds: int
    profile_s: int


FULL = Durations(3, 10, 1, 10, 5, 2, 10, 2, profile_s=10)
QUICK = Durations(1, 3, 1, 3, 1, 2, 3, 1, profile_s=5)


@dataclass(frozen=True)
class Plan:
    durations: Durations
    upstream_pid: int
    connections: int = 64
    rate: float = 200.0
    streams: int = 100
    loadgen_cores: str = "1"


@dataclass
class Usage:
    """CPU seconds used while one phase measured one target, summed over its rounds."""

    wall: float = 0.0
    loadgen_core: float = 0.0  # this process (the Python load generator), wrk, and the upstream: core 1
    proxy: float = 0.0  # the proxy under test: core 0
    others: float = 0.0  # every other process on the machine: the noise

    def busy(self, attribute: str) -> float:
        """Average cores used (1.0 = one core fully busy)."""
        value: float = getattr(self, attribute)
        return value / self.wall if self.wall else 0.0


@dataclass
class Checks:
    """What shows the load generator was not the bottleneck, how noisy the machine was, and what went wrong."""

    usage: dict[tuple[str, str], Usage] = field(default_factory=dict)  # (phase, target) -> usage
    problems: list[str] = field(default_factory=list)


class _Meter:
    """Reads CPU counters now and, on ``add_to``, adds what each group used since."""

    def __init__(self, plan: Plan, target: Target, all_pids: list[int]) -> None:
        self.upstream, self.proxy, self.all_pids = plan.upstream_pid, target.pid, all_pids
        self.start = self._read()

    def _read(self) -> tuple[float, float, float, float, float]:
        ours = sum(cpu_seconds(pid) for pid in self.all_pids)
        own, upstream = own_cpu_seconds(), cpu_seconds(self.upstream)
        proxy = cpu_seconds(self.proxy) if self.proxy is not None else 0.0
        return time.perf_counter(), own + upstream, proxy, machine_busy_seconds(), ours + own

    def add_to(self, usage: Usage) -> None:
        wall, loadgen, proxy, machine, ours = (b - a for a, b in zip(self.start, self._read(), strict=True))
        usage.wall += wall
        usage.loadgen_core += loadgen
        usage.proxy += proxy
        usage.others += max(0.0, machine - ours)


def _throughput(plan: Plan, target: Target, result: TargetResults) -> None:
    def wrk(duration_s: float) -> WrkResult:
        return run_wrk(
            target.chat_url,
            authorization=target.authorization,
            body=target.body(),
            duration_s=duration_s,
            connections=plan.connections,
            cores=plan.loadgen_cores,
        )

    wrk(plan.durations.throughput_warmup_s)
    pid = target.pid or plan.upstream_pid
    before = cpu_seconds(pid)
    result.throughput = wrk(plan.durations.throughput_s)
    if result.throughput.requests:
        result.cpu_per_request_us = (cpu_seconds(pid) - before) / result.throughput.requests * 1e6


def _latency(plan: Plan, target: Target, result: TargetResults) -> None:
    d = plan.durations
    part = fixed_rate_latency(
        target, rate=plan.rate, duration_s=d.latency_s / d.latency_rounds, warmup_s=d.latency_warmup_s
    )
    result.latency = part if result.latency is None else result.latency.merge(part)


def _streams(plan: Plan, target: Target, result: TargetResults) -> None:
    d = plan.durations
    part = concurrent_streams(
        target,
        concurrency=plan.streams,
        duration_s=d.streams_s / d.streams_rounds,
        warmup_s=d.streams_warmup_s,
        cpu_pid=target.pid or plan.upstream_pid,
    )
    result.streams = part if result.streams is None else result.streams.merge(part)


def _failures(results: dict[str, TargetResults]) -> list[str]:
    problems = []
    for name, result in results.items():
        for what, failures in (("fixed rate", result.latency), ("streams", result.streams)):
            if failures is not None and failures.failures:
                kinds = ", ".join(f"{kind} x{count}" for kind, count in failures.failures.items())
                problems.append(f"{what} via {name}: {failures.failed} failed ({kinds})")
    return problems


def run_phases(plan: Plan, targets: list[Target], results: dict[str, TargetResults]) -> Checks:
    """Throughput, then latency, then streams; each for every target (round by round) before the next phase.

    A failure is recorded and the run goes on: one broken target must not hide the others' figures.
    """
    d, checks = plan.durations, Checks()
    # Once each: Interlock's targets share one process, which must not count twice.
    pids = list(dict.fromkeys([plan.upstream_pid, *(t.pid for t in targets if t.pid is not None)]))
    phases: list[tuple[str, int, Callable[[Plan, Target, TargetResults], None]]] = [
        ("throughput", 1, _throughput),
        ("latency", d.latency_rounds, _latency),
        ("streams", d.streams_rounds, _streams),
    ]
    for phase, rounds, measure in phases:
        for round_ in range(rounds):
            for target in targets:
                if not wait_quiet(pids, timeout_s=_SETTLE_TIMEOUT_S):
                    checks.problems.append(f"a process was still busy {_SETTLE_TIMEOUT_S:.0f} s after a measurement")
                print(f"  {phase} {round_ + 1}/{rounds}: {target.name} ...", flush=True)
                meter = _Meter(plan, target, pids)
                try:
                    measure(plan, target, results[target.name])
                except Exception as exc:
                    checks.problems.append(f"{phase} via {target.name} failed: {exc!r}")
                    traceback.print_exc()
                meter.add_to(checks.usage.setdefault((phase, target.name), Usage()))
    checks.problems += _failures(results)
    return checks
