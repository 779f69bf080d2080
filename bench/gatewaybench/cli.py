"""``bench/run [--quick] [--no-litellm] [--profile] [--out FILE]``: start everything, measure, print the report."""

from __future__ import annotations

import argparse
import json
import os
import shlex
import signal
import subprocess
import sys
import time
import urllib.request
from contextlib import ExitStack
from pathlib import Path
from types import FrameType

from gatewaybench.args import run_parser
from gatewaybench.configs import CLIENT_KEY, TRANSLATED_MODEL, UPSTREAM_KEY
from gatewaybench.document import Report
from gatewaybench.machine import describe_machine
from gatewaybench.phases import FULL, QUICK, Plan, run_phases
from gatewaybench.procs import Service, StartupError, peak_memory_mb
from gatewaybench.profileruns import profile_targets
from gatewaybench.report import (
    BARE,
    DIRECT,
    INTERLOCK,
    LITELLM,
    TRACED_ALL,
    TRACED_SAMPLE_RATIO,
    TRACED_SAMPLED,
    TRANSLATED,
    TargetResults,
)
from gatewaybench.services import Pacing, gateway_service, litellm_service, mock_service, otlp_sink_service
from gatewaybench.targets import Target

__all__ = ["main"]

BENCH = Path(__file__).resolve().parent.parent
PROXY_CORE, LOADGEN_CORE = "0", "1"


def _exit_on_sigterm(signum: int, frame: FrameType | None) -> None:
    raise SystemExit(128 + signum)  # unwinds the ExitStack, which stops every process we started


def _start(stack: ExitStack, service: Service, timeout_s: float) -> Service:
    stack.callback(service.stop)
    print(f"starting {service.name} on core {service.cores} ...", flush=True)
    service.start(ready_timeout_s=timeout_s)
    return service


def _litellm_version(litellm_bin: Path) -> str:
    code = "import importlib.metadata as m; print(m.version('litellm'))"
    done = subprocess.run([str(litellm_bin.with_name("python")), "-c", code], capture_output=True, text=True)
    return done.stdout.strip() or "?"


def _start_litellm(stack: ExitStack, args: argparse.Namespace, mock: Service) -> tuple[Service | None, str]:
    if args.no_litellm:
        return None, "unavailable (left out with --no-litellm)"
    if args.litellm_unavailable:
        return None, f"unavailable ({args.litellm_unavailable})"
    if not args.litellm_bin.exists():
        return None, f"unavailable ({args.litellm_bin} does not exist)"
    service = litellm_service(args.workdir, mock, args.litellm_bin, PROXY_CORE)
    try:
        _start(stack, service, timeout_s=120)
    except StartupError as exc:
        service.stop()
        first = str(exc).splitlines()[0]
        print(f"LiteLLM did not start: {exc}", file=sys.stderr)
        return None, f"unavailable (startup failed: {first}; log: {service.log_path})"
    return service, f"`litellm[proxy]=={_litellm_version(args.litellm_bin)}`, one worker, no database"


def _telemetry_targets(stack: ExitStack, workdir: Path, mock: Service, sink: Service) -> list[Target]:
    """Gateways that differ from Interlock only in telemetry (see the report's note)."""
    traces = {"OTEL_EXPORTER_OTLP_TRACES_ENDPOINT": f"{sink.base_url}/v1/traces"}
    variants: list[tuple[str, dict[str, str | None]]] = [
        (BARE, {"INTERLOCK_GATEWAY_METRICS_ENABLED": "false"}),
        (TRACED_ALL, {**traces, "OTEL_TRACES_SAMPLER": "parentbased_traceidratio", "OTEL_TRACES_SAMPLER_ARG": "1.0"}),
        (
            TRACED_SAMPLED,
            {
                **traces,
                "OTEL_TRACES_SAMPLER": "parentbased_traceidratio",
                "OTEL_TRACES_SAMPLER_ARG": str(TRACED_SAMPLE_RATIO),
            },
        ),
    ]
    targets = []
    for name, env in variants:
        service = _start(stack, gateway_service(workdir, mock, PROXY_CORE, name=name, env=env), timeout_s=30)
        targets.append(Target(name, service.base_url, f"Bearer {CLIENT_KEY}", service.pid))
    return targets


def _exported(sink: Service) -> str:
    """What the stand-in collector received (the traced gateways' spans, once their batches are flushed)."""
    time.sleep(6)  # the batch span processor exports every 5 s
    with urllib.request.urlopen(f"{sink.base_url}/stats", timeout=5) as response:
        stats = json.loads(response.read())
    return (
        f"The collector received {stats['spans']:,} spans in {stats['requests']:,} exports during the run "
        "(2 spans per traced request: the request and its upstream attempt)."
    )


def main(argv: list[str] | None = None) -> int:
    try:
        return _run(run_parser().parse_args(argv), argv)
    except StartupError as exc:
        print(f"bench: {exc}", file=sys.stderr)
        return 1


def _run(args: argparse.Namespace, argv: list[str] | None) -> int:
    signal.signal(signal.SIGTERM, _exit_on_sigterm)
    if len(os.sched_getaffinity(0)) < 2 or os.cpu_count() in (None, 1):
        print("bench: needs two cores (proxy on 0, load on 1)", file=sys.stderr)
        return 2
    os.sched_setaffinity(0, {int(LOADGEN_CORE)})  # this process is the Python load generator
    args.workdir.mkdir(parents=True, exist_ok=True)
    durations = QUICK if args.quick else FULL
    pacing = Pacing(chunks=50, delay_s=args.chunk_delay)
    command = os.environ.get("BENCH_COMMAND") or shlex.join(["bench/run", *(argv or sys.argv[1:])])
    report = Report(command, describe_machine(), "", durations, pacing)
    with ExitStack() as stack:
        mock = _start(stack, mock_service(args.workdir, pacing, LOADGEN_CORE), timeout_s=30)
        gateway = _start(stack, gateway_service(args.workdir, mock, PROXY_CORE), timeout_s=30)
        targets = [
            Target(DIRECT, mock.base_url, f"Bearer {UPSTREAM_KEY}"),
            Target(INTERLOCK, gateway.base_url, f"Bearer {CLIENT_KEY}", gateway.pid),
            # The same gateway process, a route whose backend speaks Anthropic Messages: only the crossing differs.
            Target(TRANSLATED, gateway.base_url, f"Bearer {CLIENT_KEY}", gateway.pid, model=TRANSLATED_MODEL),
        ]
        sink = None
        if not args.no_telemetry:
            sink = _start(stack, otlp_sink_service(args.workdir, LOADGEN_CORE), timeout_s=30)
            targets += _telemetry_targets(stack, args.workdir, mock, sink)
        litellm, report.litellm = _start_litellm(stack, args, mock)
        if litellm is not None:
            targets.append(Target(LITELLM, litellm.base_url, f"Bearer {CLIENT_KEY}", litellm.pid))
        else:
            print(f"LiteLLM: {report.litellm}", flush=True)
        report.results = {t.name: TargetResults() for t in targets}
        plan = Plan(durations, upstream_pid=mock.pid, loadgen_cores=LOADGEN_CORE)
        report.checks = run_phases(plan, targets, report.results)
        for target in targets:
            if target.pid is not None:
                report.results[target.name].peak_memory_mb = peak_memory_mb(target.pid)
        if sink is not None:
            report.telemetry = _exported(sink)
        if args.profile:
            try:
                report.profiles = profile_targets(plan, targets, report.results, args.workdir)
            except Exception as exc:
                report.checks.problems.append(f"profile failed: {exc!r}")
        print("stopping ...", flush=True)
    text = report.markdown()
    print("\n" + text)
    if args.out is not None:
        args.out.write_text(text, encoding="utf-8")
        print(f"written to {args.out}")
    return 0
