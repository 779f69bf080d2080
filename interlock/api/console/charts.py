"""Chart data for the page's ``console.js`` (drawn with uPlot): time on x, one series per group.

A chart is a plain dict rendered into a ``<script type="application/json">`` block: ``x`` (bucket starts, Unix
seconds, every bucket of the window, so gaps show as zero), ``series`` (``label`` and ``values``), ``unit`` and
``stacked``. At most ``MAX_GROUPS`` groups are drawn, the largest; the rest are summed as "other".
"""

from __future__ import annotations

import datetime as dt
from collections import defaultdict
from collections.abc import Callable, Iterable, Mapping
from typing import Any, TypeVar

from interlock.api.console.window import Window

__all__ = ["MAX_GROUPS", "bucket_starts", "chart"]

MAX_GROUPS = 8
P = TypeVar("P")


def bucket_starts(window: Window) -> list[dt.datetime]:
    step = dt.timedelta(hours=1) if window.bucket == "hour" else dt.timedelta(days=1)
    starts, when = [], window.since
    while when < window.until:
        starts.append(when)
        when += step
    return starts


def chart(
    window: Window,
    points: Iterable[P],
    value: Callable[[P], float | None],
    *,
    group: Callable[[P], str | None] = lambda p: None,
    names: Mapping[str, str] | None = None,
    unit: str = "",
    stacked: bool = False,
    fill_missing: float | None = 0.0,
    title: str = "",
) -> dict[str, Any]:
    starts = bucket_starts(window)
    index = {when: i for i, when in enumerate(starts)}
    by_group: dict[str, list[float | None]] = defaultdict(lambda: [fill_missing] * len(starts))
    for point in points:
        when = getattr(point, "start")  # noqa: B009 - SeriesPoint and LatencyPoint both have it
        i = index.get(when)
        if i is None:
            continue
        key = group(point) or ""
        by_group[key][i] = value(point)
    totals = {key: sum(v or 0.0 for v in values) for key, values in by_group.items()}
    ordered = sorted(by_group, key=lambda k: (-totals[k], k))
    series = [{"label": (names or {}).get(k, k) or "all", "values": by_group[k]} for k in ordered[:MAX_GROUPS]]
    if len(ordered) > MAX_GROUPS:
        rest = [by_group[k] for k in ordered[MAX_GROUPS:]]
        series.append({"label": "other", "values": [sum(v or 0.0 for v in col) for col in zip(*rest, strict=True)]})
    return {
        "title": title,
        "x": [int(when.timestamp()) for when in starts],
        "series": series,
        "unit": unit,
        "stacked": stacked,
    }


def metrics_chart(
    window: Window,
    points: Iterable[P],
    metrics: Mapping[str, Callable[[P], float | None]],
    *,
    unit: str = "",
    stacked: bool = False,
    fill_missing: float | None = 0.0,
    title: str = "",
) -> dict[str, Any]:
    """One series per metric of ungrouped points (e.g. p50, p95, p99)."""
    points = list(points)
    series = []
    for label, value in metrics.items():
        one = chart(window, points, value, fill_missing=fill_missing)
        series.append({"label": label, "values": one["series"][0]["values"] if one["series"] else []})
    x = [int(when.timestamp()) for when in bucket_starts(window)]
    for entry in series:
        if not entry["values"]:
            entry["values"] = [fill_missing] * len(x)
    return {"title": title, "x": x, "series": series, "unit": unit, "stacked": stacked}
