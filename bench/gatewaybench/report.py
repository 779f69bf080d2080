"""The results table: one column per target, the issue's targets checked against the Interlock column, and the
translation's overhead (Interlock, translated vs Interlock) against its own target."""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass

from gatewaybench.openloop import LatencyResult
from gatewaybench.streams import StreamResult
from gatewaybench.wrkload import WrkResult

__all__ = [
    "BARE",
    "DIRECT",
    "INTERLOCK",
    "LITELLM",
    "TRACED_ALL",
    "TRACED_SAMPLED",
    "TRACED_SAMPLE_RATIO",
    "TRANSLATED",
    "TargetResults",
    "render_table",
]

DIRECT, INTERLOCK, LITELLM = "direct", "Interlock", "LiteLLM"
TRANSLATED = "Interlock, translated"  # the same gateway, OpenAI chat client -> Anthropic Messages upstream
# Gateways that differ from Interlock only in telemetry: no metrics and no traces; traces of every request; of 5 %.
BARE = "Interlock, no telemetry"
TRACED_ALL = "Interlock, traced 100 %"
TRACED_SAMPLED = "Interlock, traced 5 %"  # the chart's default sample ratio
TRACED_SAMPLE_RATIO = 0.05


@dataclass
class TargetResults:
    """What was measured for one target; None where a phase did not run or failed."""

    throughput: WrkResult | None = None
    cpu_per_request_us: float | None = None
    latency: LatencyResult | None = None
    streams: StreamResult | None = None
    peak_memory_mb: float | None = None

    @property
    def cpu_per_stream_us(self) -> float | None:
        return self.streams.cpu_per_stream_us if self.streams else None


# A cell takes (this target's results, the baseline's: direct's unless the row says otherwise) and returns a
# number, a string, or None (blank).
_Cell = Callable[[TargetResults, TargetResults], float | str | None]


@dataclass(frozen=True)
class _Row:
    label: str
    cell: _Cell
    digits: int = 1
    target: str = ""
    met: Callable[[float | str], bool] | None = None
    direct: bool = True  # whether the direct column has a value
    baseline: str = DIRECT  # whose results a cell gets as its second argument
    only: str | None = None  # the one column with a value (the row is left out when that target is absent)
    judge: str = INTERLOCK  # the column ``met`` judges
    signed: bool = False  # print a sign (rows labelled "added ..." always do)


def _added(get: Callable[[TargetResults], float | None]) -> _Cell:
    def cell(r: TargetResults, d: TargetResults) -> float | None:
        via, base = get(r), get(d)
        return None if via is None or base is None else via - base

    return cell


def _stream_ratio(r: TargetResults, d: TargetResults) -> float | None:
    if r.streams is None or d.streams is None or not d.streams.streams_per_s:
        return None
    return 100 * r.streams.streams_per_s / d.streams.streams_per_s


def _overhead(get: Callable[[TargetResults], float | None]) -> _Cell:
    """(this - baseline) / baseline, in %."""

    def cell(r: TargetResults, base: TargetResults) -> float | None:
        via, ref = get(r), get(base)
        return None if via is None or not ref else 100 * (via - ref) / ref

    return cell


def _num(value: float | str) -> float:
    return value if isinstance(value, float | int) else math.nan


def _overhead_row(label: str, column: str, baseline: str, per: str, limit: float | None = None) -> _Row:
    """``column``'s CPU per request (``per="request"``) or per stream over ``baseline``'s, in %, judged against
    ``< limit`` when there is one."""

    def get(r: TargetResults) -> float | None:
        return r.cpu_per_request_us if per == "request" else r.cpu_per_stream_us

    return _Row(
        f"{label}, CPU per {per}, %",
        _overhead(get),
        target=f"< {limit:g}" if limit is not None else "",
        met=(lambda v: _num(v) < limit) if limit is not None else None,
        baseline=baseline,
        only=column,
        judge=column,
        signed=True,
    )


_ROWS = [
    _Row(
        "requests/s, 64 connections, non-streaming",
        lambda r, _: r.throughput.rps if r.throughput else None,
        digits=0,
        target="≥ 3,000",
        met=lambda v: _num(v) >= 3000,
    ),
    _Row(
        "errors during that (non-2xx + socket)",
        lambda r, _: r.throughput.errors if r.throughput else None,
        digits=0,
        target="0",
        met=lambda v: _num(v) == 0,
    ),
    _Row(
        "CPU per request, µs (direct: the upstream's)",
        lambda r, _: r.cpu_per_request_us,
        digits=0,
    ),
    _overhead_row("translation overhead", TRANSLATED, INTERLOCK, "request", 10),
    _overhead_row("metrics overhead", INTERLOCK, BARE, "request"),
    # The < 5 % target holds at the chart's default sampling (5 %); tracing every request is for small deployments.
    _overhead_row("metrics + tracing overhead (every request traced)", TRACED_ALL, BARE, "request"),
    _overhead_row("metrics + tracing overhead (5 % of requests traced)", TRACED_SAMPLED, BARE, "request", 5),
    _Row("latency p50 at 200 req/s, ms", lambda r, _: r.latency.p50_ms if r.latency else None, digits=2),
    _Row(
        "added latency p50, ms",
        _added(lambda r: r.latency.p50_ms if r.latency else None),
        digits=2,
        target="≤ 0.5",
        met=lambda v: _num(v) <= 0.5,
        direct=False,
    ),
    _Row("latency p99 at 200 req/s, ms", lambda r, _: r.latency.p99_ms if r.latency else None, digits=2),
    _Row(
        "added latency p99, ms",
        _added(lambda r: r.latency.p99_ms if r.latency else None),
        digits=2,
        target="≤ 2",
        met=lambda v: _num(v) <= 2,
        direct=False,
    ),
    _Row(
        "requests answered / sent at 200 req/s",
        lambda r, _: f"{r.latency.ok}/{r.latency.sent}" if r.latency else None,
        target="all",
        met=lambda v: isinstance(v, str) and v.split("/")[0] == v.split("/")[1],
    ),
    _Row(
        "streams/s, 100 concurrent 50-chunk streams",
        lambda r, _: r.streams.streams_per_s if r.streams else None,
    ),
    _Row("streams/s vs direct, %", _stream_ratio, target="≥ 95", met=lambda v: _num(v) >= 95, direct=False),
    _Row("CPU per stream, µs (direct: the upstream's)", lambda r, _: r.cpu_per_stream_us, digits=0),
    _overhead_row("translation overhead", TRANSLATED, INTERLOCK, "stream", 10),
    _Row("TTFT p50, ms", lambda r, _: r.streams.ttft_p50_ms if r.streams else None, digits=2),
    _Row(
        "added TTFT p50, ms",
        _added(lambda r: r.streams.ttft_p50_ms if r.streams else None),
        digits=2,
        target="≤ 2",
        met=lambda v: _num(v) <= 2,
        direct=False,
    ),
    _Row("TTFT p99, ms", lambda r, _: r.streams.ttft_p99_ms if r.streams else None, digits=2),
    _Row(
        "added TTFT p99, ms",
        _added(lambda r: r.streams.ttft_p99_ms if r.streams else None),
        digits=2,
        direct=False,
    ),
    _Row(
        "failed streams (error or no [DONE])",
        lambda r, _: r.streams.failed if r.streams else None,
        digits=0,
        target="0",
        met=lambda v: _num(v) == 0,
    ),
    _Row(
        "streams cut off, still open after the grace period",
        lambda r, _: r.streams.unfinished if r.streams else None,
        digits=0,
    ),
    _Row(
        "peak memory (VmHWM), MB",
        lambda r, _: r.peak_memory_mb,
        digits=0,
        target="≤ 150",
        met=lambda v: _num(v) <= 150,
        direct=False,
    ),
]


def _format(value: float | str | None, digits: int, signed: bool) -> str:
    if value is None:
        return "n/a"
    if isinstance(value, str):
        return value
    if math.isnan(value):
        return "n/a"
    return f"{value:+,.{digits}f}" if signed else f"{value:,.{digits}f}"


def render_table(results: dict[str, TargetResults]) -> str:
    """Markdown table; columns in the order of ``results``; ``met`` judges the Interlock column (the translation
    overhead rows: the translated one)."""
    names = list(results)
    lines = [
        "| metric | " + " | ".join(names) + " | target | met |",
        "|---|" + "---:|" * len(names) + "---|---|",
    ]
    for row in _ROWS:
        if row.only is not None and row.only not in results:
            continue
        baseline = results.get(row.baseline, TargetResults())
        cells: list[str] = []
        values: dict[str, float | str | None] = {}
        for name in names:
            if (name == DIRECT and not row.direct) or (row.only is not None and name != row.only):
                cells.append("-")
                continue
            value = row.cell(results[name], baseline)
            values[name] = value
            cells.append(_format(value, row.digits, signed=row.signed or row.label.startswith("added")))
        judged, met = values.get(row.judge), ""
        if row.met is not None and judged is not None:
            met = "yes" if row.met(judged) else "**no**"
        lines.append(f"| {row.label} | " + " | ".join(cells) + f" | {row.target} | {met} |")
    return "\n".join(lines) + "\n"
