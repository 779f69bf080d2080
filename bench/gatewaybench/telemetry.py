"""What metrics and traces cost the gateway: CPU per request of gateway processes that differ only in telemetry.

    bench/telemetry [--rounds 8] [--seconds 4] [--instructions 2000] [--out FILE]

Variants, each its own ``interlock gateway`` process on core 0, on the same mock upstream (core 1):
no telemetry (``INTERLOCK_GATEWAY_METRICS_ENABLED=false``, no exporter), metrics only (the default), and metrics
plus OpenTelemetry traces exported over OTLP/HTTP to a stand-in collector (core 1) with every request, 10 % and 1 %
of requests sampled. ``wrk`` (core 1) drives each at saturation, round after round, the variants' order rotating
from round to round, so the machine's drift falls on each alike.

The headline figure is each process's CPU from its first request to the end of the run (after the batch span
processor's last export), divided by the requests it served: a traced gateway exports its batches on a timer,
partly while the others are measured, and that work must count. The per-round figures (CPU while ``wrk`` ran)
show the spread.

This VM's speed drifts by up to ±30 % from round to round, far more than the effects measured here; pooled over
the rounds it still moves a few points from run to run. ``--instructions N`` adds a second measure that does not
drift: each variant again under callgrind, instructions per request over ``N`` requests
(``gatewaybench.instructions``).
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import sys
import time
import urllib.request
from contextlib import ExitStack
from dataclasses import dataclass, field
from pathlib import Path

from gatewaybench.args import telemetry_parser
from gatewaybench.configs import CLIENT_KEY
from gatewaybench.instructions import count_instructions, under_callgrind
from gatewaybench.machine import describe_machine
from gatewaybench.procs import Service, cpu_seconds, thread_cpu_seconds, wait_quiet
from gatewaybench.services import Pacing, gateway_service, mock_service, otlp_sink_service
from gatewaybench.targets import Target
from gatewaybench.wrkload import run_wrk

__all__ = ["main"]

BENCH = Path(__file__).resolve().parent.parent
PROXY_CORE, LOADGEN_CORE = "0", "1"
OFF = "no telemetry"
METRICS = "metrics"
RATIOS = (1.0, 0.1, 0.05, 0.01)
EXPORT_DELAY_S = 5.0  # the batch span processor's default schedule delay


@dataclass
class Variant:
    name: str
    ratio: float  # share of requests traced
    service: Service
    target: Target
    cpu_start: float = 0.0
    main_start: float = 0.0  # the main thread: the event loop
    requests: int = 0  # every request it served, warm-ups included
    rounds: list[float] = field(default_factory=list)  # µs of CPU per request while wrk measured
    rps: list[float] = field(default_factory=list)
    total_us: float = 0.0
    main_us: float = 0.0
    instructions: float | None = None  # per request, under callgrind


def _settings(sink: Service) -> list[tuple[str, float, dict[str, str | None]]]:
    """(name, share traced, environment) of each variant."""
    traces = {
        "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT": f"{sink.base_url}/v1/traces",
        "OTEL_TRACES_SAMPLER": "parentbased_traceidratio",
    }
    settings: list[tuple[str, float, dict[str, str | None]]] = [
        (OFF, 0.0, {"INTERLOCK_GATEWAY_METRICS_ENABLED": "false"}),
        (METRICS, 0.0, {}),
    ]
    for ratio in RATIOS:
        settings.append(
            (f"metrics + traces, {ratio:.0%} sampled", ratio, {**traces, "OTEL_TRACES_SAMPLER_ARG": str(ratio)})
        )
    return settings


def _start(stack: ExitStack, service: Service) -> Service:
    stack.callback(service.stop)
    print(f"starting {service.name} on core {service.cores} ...", flush=True)
    service.start(ready_timeout_s=30)
    return service


def _wrk(target: Target, seconds: float, connections: int) -> tuple[int, float]:
    result = run_wrk(
        target.chat_url,
        authorization=target.authorization,
        body=target.body(),
        duration_s=seconds,
        connections=connections,
        cores=LOADGEN_CORE,
    )
    if result.errors:
        raise RuntimeError(f"{target.name}: {result.errors} failed requests")
    return result.requests, result.rps


def _measure(variants: list[Variant], args: argparse.Namespace, mock: Service) -> None:
    pids = [mock.pid, *(v.service.pid for v in variants)]
    for variant in variants:
        variant.cpu_start = cpu_seconds(variant.service.pid)
        variant.main_start = thread_cpu_seconds(variant.service.pid, variant.service.pid)
    for round_ in range(args.rounds):
        shift = round_ % len(variants)
        for variant in variants[shift:] + variants[:shift]:
            wait_quiet(pids, timeout_s=30)
            print(f"  round {round_ + 1}/{args.rounds}: {variant.name} ...", flush=True)
            variant.requests += _wrk(variant.target, args.warmup, args.connections)[0]
            before = cpu_seconds(variant.service.pid)
            requests, rps = _wrk(variant.target, args.seconds, args.connections)
            variant.rounds.append((cpu_seconds(variant.service.pid) - before) / requests * 1e6)
            variant.rps.append(rps)
            variant.requests += requests
    print(f"waiting {EXPORT_DELAY_S + 1:.0f} s for the last span batches ...", flush=True)
    time.sleep(EXPORT_DELAY_S + 1)
    for variant in variants:
        pid = variant.service.pid
        variant.total_us = (cpu_seconds(pid) - variant.cpu_start) / variant.requests * 1e6
        variant.main_us = (thread_cpu_seconds(pid, pid) - variant.main_start) / variant.requests * 1e6


def _instructions(variants: list[Variant], args: argparse.Namespace, mock: Service, sink: Service) -> None:
    counts: dict[str, tuple[int, int]] = {}
    for name, _ratio, env in _settings(sink):
        with ExitStack() as stack:
            service = gateway_service(args.workdir, mock, PROXY_CORE, name=f"{name} (callgrind)", env=env)
            print(f"counting instructions: {name} (a slow start under valgrind) ...", flush=True)
            out_dir = args.workdir / "callgrind"
            service = under_callgrind(service, out_dir)
            stack.callback(service.stop)
            service.start(ready_timeout_s=600)
            target = Target(name, service.base_url, f"Bearer {CLIENT_KEY}", service.pid)
            counts[name] = count_instructions(service, target, requests=args.instructions, out_dir=out_dir)
    baseline_stop = counts[OFF][1]
    for variant in variants:
        serving, stopping = counts[variant.name]
        variant.instructions = (serving + max(0, stopping - baseline_stop)) / args.instructions


def _percent(ratio: float) -> str:
    return f"{(ratio - 1) * 100:+.1f} %"


def _report(variants: list[Variant], args: argparse.Namespace, sink_stats: dict[str, int]) -> str:
    off = variants[0]
    counted = off.instructions is not None
    lines = [
        "## Telemetry overhead",
        "",
        f"`{os.environ.get('BENCH_COMMAND') or 'bench/telemetry ' + ' '.join(sys.argv[1:])}`",
        "",
        "; ".join(f"{key}: {value}" for key, value in describe_machine()),
        "",
        "| gateway | CPU µs/request, whole run | against none | of which event loop | per round: median (min to max)"
        " | req/s |" + (" instructions/request | against none |" if counted else ""),
        "|---|---:|---:|---:|---|---:|" + ("---:|---:|" if counted else ""),
    ]
    for variant in variants:
        against = "" if variant is off else _percent(variant.total_us / off.total_us)
        rounds = variant.rounds
        spread = f"{statistics.median(rounds):.0f} µs ({min(rounds):.0f} to {max(rounds):.0f})"
        row = (
            f"| {variant.name} | {variant.total_us:.1f} | {against} | {variant.main_us:.1f} | {spread} "
            f"| {statistics.median(variant.rps):,.0f} |"
        )
        if variant.instructions is not None and off.instructions is not None:
            versus = "" if variant is off else _percent(variant.instructions / off.instructions)
            row += f" {variant.instructions:,.0f} | {versus} |"
        lines.append(row)
    expected = sum(2 * v.requests * v.ratio for v in variants)
    lines += [
        "",
        f"{args.rounds} rounds of {args.seconds:g} s per variant (after {args.warmup:g} s of warm-up each), "
        f"{args.connections} connections. The collector received {sink_stats['spans']:,} spans in "
        f"{sink_stats['requests']:,} exports; two per traced request make about {expected:,.0f}.",
    ]
    if counted:
        lines.append(
            f"Instructions: {args.instructions:,} requests per variant from one keep-alive connection, under "
            "callgrind, plus what the variant's graceful stop (its last span batch) costs beyond the one without "
            "telemetry."
        )
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    args = telemetry_parser().parse_args(argv)
    if len(os.sched_getaffinity(0)) < 2:
        print("bench/telemetry: needs two cores (gateways on 0, load on 1)", file=sys.stderr)
        return 2
    if args.instructions and not (shutil.which("valgrind") and shutil.which("callgrind_control")):
        print("bench/telemetry: --instructions needs valgrind (Debian package valgrind) on PATH", file=sys.stderr)
        return 2
    os.sched_setaffinity(0, {int(LOADGEN_CORE)})
    args.workdir.mkdir(parents=True, exist_ok=True)
    with ExitStack() as stack:
        mock = _start(stack, mock_service(args.workdir, Pacing(chunks=50, delay_s=0.02), LOADGEN_CORE))
        sink = _start(stack, otlp_sink_service(args.workdir, LOADGEN_CORE))
        variants = []
        for name, ratio, env in _settings(sink):
            service = _start(stack, gateway_service(args.workdir, mock, PROXY_CORE, name=name, env=env))
            target = Target(name, service.base_url, f"Bearer {CLIENT_KEY}", service.pid)
            variants.append(Variant(name, ratio, service, target))
        _measure(variants, args, mock)
        with urllib.request.urlopen(f"{sink.base_url}/stats", timeout=5) as response:
            sink_stats = json.loads(response.read())
        if args.instructions:
            for variant in variants:
                variant.service.stop()
            _instructions(variants, args, mock, sink)
        print("stopping ...", flush=True)
    text = _report(variants, args, sink_stats)
    print("\n" + text)
    if args.out is not None:
        args.out.write_text(text + "\n", encoding="utf-8")
    return 0


if __name__ == "__main__":
    sys.exit(main())
