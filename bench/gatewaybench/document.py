"""The whole markdown report: how it ran, the results table, the load-generator checks, the profiles."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

from gatewaybench.phases import Checks, Durations
from gatewaybench.report import (
    BARE,
    DIRECT,
    TRACED_ALL,
    TRACED_SAMPLE_RATIO,
    TRACED_SAMPLED,
    TRANSLATED,
    TargetResults,
    render_table,
)
from gatewaybench.services import Pacing

__all__ = ["Report"]


@dataclass
class Report:
    command: str
    machine: list[tuple[str, str]]
    litellm: str  # "litellm[proxy]==X" or "unavailable (reason)"
    durations: Durations
    pacing: Pacing
    results: dict[str, TargetResults] = field(default_factory=dict)
    checks: Checks = field(default_factory=Checks)
    profiles: dict[str, str] = field(default_factory=dict)  # title -> markdown
    telemetry: str = ""  # what the OTLP sink received, when the telemetry targets ran

    def _setup(self) -> list[str]:
        d = self.durations
        return [
            f"Command: `{self.command}`",
            "",
            "| | |",
            "|---|---|",
            *(f"| {k} | {v} |" for k, v in self.machine),
            f"| LiteLLM | {self.litellm} |",
            "",
            "Interlock and LiteLLM each run as one process pinned to core 0 (`taskset -c 0`); the mock upstream, `wrk` "
            "and the Python load generators share core 1. Throughput: `wrk -t1 -c64`, "
            f"{d.throughput_warmup_s:g} s warm-up then {d.throughput_s:g} s. Latency: open loop at 200 requests/s for "
            f"{d.latency_s:g} s in {d.latency_rounds} round(s) that alternate between the targets, each round after a "
            f"{d.latency_warmup_s:g} s warm-up; latency runs from sending a request to its last byte. Streams: 100 "
            f"clients streaming back to back for {d.streams_s:g} s in {d.streams_rounds} alternating round(s), each "
            f"after a {d.streams_warmup_s:g} s warm-up; the upstream sends {self.pacing.chunks} content chunks "
            f"{self.pacing.delay_s * 1e3:g} ms apart, and every client asks for usage (`stream_options.include_usage`, "
            "as a metering proxy does upstream); time to first token (TTFT) runs to the first SSE event carrying "
            "content. `added` = via the proxy - direct, measured in the same run. CPU per request: the proxy's CPU "
            "time during the measured throughput run / requests; CPU per stream: its CPU time inside the streams "
            "windows / streams completed in them (direct: the upstream's).",
            *self._translated_note(),
            *self._telemetry_note(),
        ]

    def _telemetry_note(self) -> list[str]:
        if BARE not in self.results:
            return []
        return [
            "",
            f"**{BARE}**, **{TRACED_ALL}** and **{TRACED_SAMPLED}** are three more `interlock gateway` processes on "
            "core 0, identical to Interlock but for telemetry: the first records no metrics "
            "(`INTERLOCK_GATEWAY_METRICS_ENABLED=false`) and no traces; the traced ones record metrics and export "
            "OpenTelemetry traces (OTLP over HTTP, the SDK's batch processor) to a stand-in collector on core 1, with "
            "`OTEL_TRACES_SAMPLER=parentbased_traceidratio` and `OTEL_TRACES_SAMPLER_ARG` 1.0 and "
            f"{TRACED_SAMPLE_RATIO:g}. Overheads are CPU per request against {BARE}. {self.telemetry}",
        ]

    def _translated_note(self) -> list[str]:
        if TRANSLATED not in self.results:
            return []
        delay_ms = self.pacing.delay_s * 1e3
        return [
            "",
            f"**{TRANSLATED}** is the same gateway process as Interlock, through a second route (`bench-translated`) "
            "whose backend is `provider: anthropic` at the same mock upstream with the same key: an OpenAI chat "
            "client, the request translated to Anthropic Messages (`/v1/messages`, `x-api-key`), the answer and the "
            "stream translated back. Only the crossing differs, so its CPU per request (stream) minus Interlock's is "
            'what the translation costs; "translation overhead" = (translated - Interlock) / Interlock. The mock '
            "paces every event of either API alike, and Anthropic's stream has more of them before and after the "
            "text (`message_start`, `content_block_start`, `ping` before the first `text_delta`; "
            "`content_block_stop`, `message_delta`, `message_stop` after the last): its first content arrives "
            f"{2 * delay_ms:g} ms later and its streams last {3 * delay_ms:g} ms longer than OpenAI chat's, so the "
            "translated column's TTFT and streams/s are not comparable to direct's; its CPU per stream is.",
        ]

    def _checks(self) -> list[str]:
        names = list(self.results)

        def row(label: str, cell: Callable[[str], str]) -> str:
            return f"| {label} | " + " | ".join(cell(name) for name in names) + " |"

        def busy(phase: str, attribute: str, scale: float, digits: int) -> Callable[[str], str]:
            def cell(name: str) -> str:
                usage = self.checks.usage.get((phase, name))
                return f"{scale * usage.busy(attribute):.{digits}f}" if usage else "-"

            return cell

        def lag(name: str) -> str:
            latency = self.results[name].latency
            return f"{latency.max_start_lag_ms:.1f}" if latency else "-"

        lines = [
            "| check | " + " | ".join(names) + " |",
            "|---|" + "---:|" * len(names),
            row("streams: core 1 busy (load generator + upstream), %", busy("streams", "loadgen_core", 100, 0)),
            row(
                "streams: the proxy's core busy, %",
                lambda n: busy("streams", "proxy", 100, 0)(n) if n != DIRECT else "-",
            ),
            row("open loop: latest request start behind schedule, ms", lag),
            *(
                row(f"other processes' CPU during {phase}, cores", busy(phase, "others", 1, 2))
                for phase in ("throughput", "latency", "streams")
            ),
        ]
        if self.checks.problems:
            lines += ["", "Problems:", *(f"- {p}" for p in self.checks.problems)]
        return lines

    def markdown(self) -> str:
        parts = ["# Gateway benchmark", "", *self._setup(), "", "## Results", "", render_table(self.results)]
        parts += ["## Checks", "", *self._checks(), ""]
        for title, body in self.profiles.items():
            parts += [f"## Profile: {title}", "", body]
        return "\n".join(parts)
