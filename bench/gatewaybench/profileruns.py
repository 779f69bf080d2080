"""``--profile``: py-spy each Interlock target (passthrough, translated) under a non-streaming and a streaming
load, and compare the two where they differ (what the translation costs, function by function)."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from gatewaybench.phases import Plan
from gatewaybench.profilediff import compare_profiles
from gatewaybench.profiling import Load, profile_under_load
from gatewaybench.report import INTERLOCK, TRANSLATED, TargetResults
from gatewaybench.streams import concurrent_streams
from gatewaybench.targets import Target
from gatewaybench.wrkload import run_wrk

__all__ = ["profile_targets"]


def _closed_loop(plan: Plan, target: Target) -> Callable[[float], Load]:
    def load(duration_s: float) -> Load:
        result = run_wrk(
            target.chat_url,
            authorization=target.authorization,
            body=target.body(),
            duration_s=duration_s,
            connections=plan.connections,
            cores=plan.loadgen_cores,
        )
        return Load(
            f"`wrk -t1 -c{plan.connections}`, non-streaming, {result.rps:,.0f} requests/s", result.rps, "request"
        )

    return load


def _streams(plan: Plan, target: Target) -> Callable[[float], Load]:
    def load(duration_s: float) -> Load:
        result = concurrent_streams(target, concurrency=plan.streams, duration_s=duration_s - 1, warmup_s=1)
        described = f"{plan.streams} concurrent 50-chunk streams, {result.streams_per_s:.1f} streams/s"
        return Load(described, result.streams_per_s, "stream")

    return load


def _slug(name: str) -> str:
    return "-".join("".join(c if c.isalnum() else " " for c in name.lower()).split())


def profile_targets(
    plan: Plan, targets: list[Target], results: dict[str, TargetResults], workdir: Path
) -> dict[str, str]:
    """Title -> markdown: a profile per Interlock target and load, then translated-vs-passthrough comparisons.

    The targets alternate (non-streaming for each, then streams for each), so that the machine's drift falls
    between a compared pair as little as it can. The µs columns use the CPU per request (stream) measured
    without the profiler in the phases.
    """
    ours = {t.name: t for t in targets if t.name in (INTERLOCK, TRANSLATED) and t.pid is not None}
    loads = (
        ("nonstreaming", f"non-streaming at {plan.connections} connections", "request", _closed_loop),
        ("streams", f"{plan.streams} concurrent streams", "stream", _streams),
    )
    out: dict[str, str] = {}
    for kind, title, unit, make_load in loads:
        raws: dict[str, tuple[Path, float | None]] = {}
        for name, target in ours.items():
            assert target.pid is not None
            measured = results[name]
            us = measured.cpu_per_request_us if unit == "request" else measured.cpu_per_stream_us
            raw = workdir / f"profile-{_slug(name)}-{kind}.raw"
            raws[name] = (raw, us)
            print(f"  profiling {name}, {title} ...", flush=True)
            out[f"{name}, {title}"] = profile_under_load(
                target.pid, raw, plan.durations.profile_s, make_load(plan, target), us
            )
        (base_raw, base_us), (other_raw, other_us) = (
            raws.get(INTERLOCK, (None, None)),
            raws.get(TRANSLATED, (None, None)),
        )
        if base_raw and other_raw and base_us and other_us:
            out[f"translated vs passthrough, {title}"] = compare_profiles(
                (base_raw, base_us), (other_raw, other_us), unit
            )
    return out
