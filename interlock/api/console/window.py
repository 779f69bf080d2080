"""The time windows the console's pages offer, chosen by a ``range`` query parameter."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass

from interlock.api.crud.analytics import Bucket

__all__ = ["RANGES", "Window", "start_of_day", "start_of_month", "window"]


@dataclass(frozen=True, slots=True)
class Window:
    name: str
    label: str
    since: dt.datetime
    until: dt.datetime
    bucket: Bucket


RANGES: dict[str, tuple[str, dt.timedelta, Bucket]] = {
    "24h": ("Last 24 hours", dt.timedelta(hours=24), "hour"),
    "7d": ("Last 7 days", dt.timedelta(days=7), "hour"),
    "30d": ("Last 30 days", dt.timedelta(days=30), "day"),
    "90d": ("Last 90 days", dt.timedelta(days=90), "day"),
    "365d": ("Last 365 days", dt.timedelta(days=365), "day"),
}


def window(name: str | None, now: dt.datetime, default: str = "24h") -> Window:
    """The named range ending now (an unknown name is the default); hour buckets start on the hour."""
    key = name if name in RANGES else default
    label, span, bucket = RANGES[key]
    until = now.replace(minute=0, second=0, microsecond=0) + dt.timedelta(hours=1)
    if bucket == "day":
        until = now.replace(hour=0, minute=0, second=0, microsecond=0) + dt.timedelta(days=1)
    return Window(key, label, until - span, until, bucket)


def start_of_day(now: dt.datetime) -> dt.datetime:
    return now.replace(hour=0, minute=0, second=0, microsecond=0)


def start_of_month(now: dt.datetime) -> dt.datetime:
    return start_of_day(now).replace(day=1)
