"""Two py-spy profiles of the same process under the same load but for one change (here: the API crossing),
side by side in µs per request: which layers and functions the difference lies in."""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path

from gatewaybench.profiling import summarise

__all__ = ["compare_profiles"]

_ALL = 10**9  # summarise's ``top``: every frame


def _us(rows: Iterable[tuple[str, int]], samples: int, us_per_unit: float) -> dict[str, float]:
    return {name: us_per_unit * count / max(samples, 1) for name, count in rows}


def _table(title: str, base: dict[str, float], other: dict[str, float], unit: str, top: int | None) -> list[str]:
    names = sorted(set(base) | set(other), key=lambda n: -abs(other.get(n, 0.0) - base.get(n, 0.0)))
    if top is not None:
        names = names[:top]
    lines = [f"| {title} | passthrough, µs/{unit} | translated, µs/{unit} | difference |", "|---|---:|---:|---:|"]
    lines += [
        f"| `{n}` | {base.get(n, 0.0):,.0f} | {other.get(n, 0.0):,.0f} | {other.get(n, 0.0) - base.get(n, 0.0):+,.0f} |"
        for n in names
    ]
    return lines


def compare_profiles(base: tuple[Path, float], other: tuple[Path, float], unit: str, top: int = 12) -> str:
    """``base`` and ``other``: (raw py-spy file, CPU µs per unit measured without the profiler).

    Each sample share is scaled to µs per unit with its own profile's CPU per unit, so the differences add up to
    the measured difference in CPU per unit (within sampling noise: ~1,000 samples per profile, so a share of
    1 % is ±0.3 %).
    """
    (base_raw, base_us), (other_raw, other_us) = base, other
    a, b = summarise(base_raw, top=_ALL), summarise(other_raw, top=_ALL)

    def pair(get: str) -> tuple[dict[str, float], dict[str, float]]:
        return _us(getattr(a, get), a.samples, base_us), _us(getattr(b, get), b.samples, other_us)

    parts = [
        f"Passthrough {base_us:,.0f} µs of CPU per {unit}, translated {other_us:,.0f} µs "
        f"({other_us - base_us:+,.0f} µs, {100 * (other_us - base_us) / base_us:+.1f} %), measured without the "
        f"profiler. Rows are sorted by the size of the difference; a Python frame's self time includes the C "
        "functions it calls (orjson's `loads`/`dumps` count as self time of the function that calls them).",
        "",
        *_table("self time by layer", *pair("self_layers"), unit, None),
        "",
        *_table("self time by file", *pair("self_modules"), unit, top),
        "",
        *_table("self time by function", *pair("self_frames"), unit, top),
        "",
        *_table("inclusive time by function", *pair("inclusive_frames"), unit, top),
    ]
    return "\n".join(parts) + "\n"
