"""A trace's spans as an SVG waterfall, laid out on the server: geometry in SVG attributes, no inline style, no
script, so the page's strict CSP holds and the picture needs no JavaScript."""

from __future__ import annotations

from dataclasses import dataclass

from interlock.api.schemas import SpanPublic

__all__ = ["Bar", "Waterfall", "waterfall"]

WIDTH = 800
LABEL = 160
ROW = 26


@dataclass(frozen=True, slots=True)
class Bar:
    name: str
    kind: str
    """CSS class: the span's name without its attempt number (``upstream``, ``auth``…)."""
    x: float
    width: float
    y: int
    start_ms: float
    duration_ms: float
    detail: str


@dataclass(frozen=True, slots=True)
class Waterfall:
    bars: list[Bar]
    total_ms: float
    width: int
    height: int
    label_width: int
    ticks: list[tuple[float, str]]


def _detail(span: SpanPublic) -> str:
    shown = [f"{k}={v}" for k, v in sorted(span.attributes.items())][:8]
    return ", ".join(shown)


def waterfall(spans: list[SpanPublic], latency_ms: float) -> Waterfall:
    total = max([latency_ms, *(s.start_ms + s.duration_ms for s in spans), 1e-3])
    scale = (WIDTH - LABEL - 10) / total
    bars = []
    for i, span in enumerate(spans):
        start = max(0.0, span.start_ms)
        bars.append(
            Bar(
                name=span.name,
                kind="".join(c for c in span.name.split(".")[0].split("[")[0] if c.isalnum() or c == "_") or "span",
                x=round(LABEL + start * scale, 2),
                width=round(max(1.0, span.duration_ms * scale), 2),
                y=i * ROW + 20,
                start_ms=span.start_ms,
                duration_ms=span.duration_ms,
                detail=_detail(span),
            )
        )
    places = 0 if total >= 20 else 1 if total >= 2 else 2
    ticks = [(round(LABEL + total * f * scale, 2), f"{total * f:.{places}f} ms") for f in (0, 0.25, 0.5, 0.75, 1)]
    return Waterfall(bars, total, WIDTH, len(bars) * ROW + 30, LABEL, ticks)
