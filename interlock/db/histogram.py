"""A fixed log-scale latency histogram, as the rollups store it: one count per bin, summed across rows.

Bin 0 holds values under 1 ms; bin ``k`` (1 ≤ k ≤ ``BINS`` - 2) holds ``[2^((k-1)/4), 2^(k/4))`` ms; the last bin
everything from ``2^((BINS-2)/4)`` ms (about 741 s) up. Four bins per doubling: a percentile read back as the
geometric middle of its bin is within ``2^(1/8) - 1`` ≈ 9 % of the true value (the resolution the console and
``interlock.api.crud.analytics`` report).
"""

from __future__ import annotations

import bisect
import itertools
import math
from collections.abc import Sequence

__all__ = ["BINS", "BOUNDS", "PER_DOUBLING", "bin_of", "bin_sql", "percentile", "percentiles"]

BINS = 80
PER_DOUBLING = 4
BOUNDS = tuple(2.0 ** (k / PER_DOUBLING) for k in range(BINS - 1))
"""The lower bound of bins 1 to ``BINS`` - 1: the bin of a value is how many of these it reaches. Python and SQL
(``bin_sql``) compare against these very floats, so both put every value in the same bin, boundaries included."""
_BOUNDS_SQL = "'{" + ",".join(repr(b) for b in BOUNDS) + "}'::float8[]"


def bin_of(ms: float) -> int:
    if not ms >= 1.0:  # also NaN
        return 0
    return bisect.bisect_right(BOUNDS, ms)


def bin_sql(column: str) -> str:
    """``bin_of`` as a Postgres expression over a finite ``float8`` column (NaN would land in the last bin)."""
    return f"width_bucket({column}, {_BOUNDS_SQL})"


def _middle(k: int) -> float:
    if k == 0:
        return 0.5
    return float(2.0 ** ((k - 0.5) / PER_DOUBLING))


def percentiles(counts: Sequence[int], qs: Sequence[float]) -> list[float | None]:
    """The ``qs`` quantiles (0 < q ≤ 1) of the histogram, each as the geometric middle of its bin; None when empty.
    One cumulative pass (in C) and a binary search per quantile."""
    cumulative = list(itertools.accumulate(counts))
    total = cumulative[-1] if cumulative else 0
    if total <= 0:
        return [None] * len(qs)
    out: list[float | None] = []
    for q in qs:
        k = bisect.bisect_left(cumulative, max(1, math.ceil(q * total)))
        out.append(_middle(min(k, len(counts) - 1)))
    return out


def percentile(counts: Sequence[int], q: float) -> float | None:
    """The ``q`` quantile (0 < q ≤ 1) of the histogram, as the geometric middle of its bin; None when empty."""
    return percentiles(counts, (q,))[0]
