"""The pure scorer: which endpoint a request goes to, from load, KV-cache headroom and prefix affinity.

Score (lower wins), in units of "one request's worth of queue":

    load_weight * load  +  kv_cache_weight * kv_usage  -  prefix_weight * matched_fraction

``load`` is the gateway's own in-flight count on the endpoint, or, with fresh engine metrics, the larger of that
and the engine's running plus waiting requests (which also sees other gateways' traffic). ``kv_usage`` (0 to 1) is
the engine's KV-cache usage. ``matched_fraction`` is the share of the request's prefix blocks the endpoint has
seen (``prefix.PrefixIndex``). So a pod that holds the conversation wins unless it carries more than
``prefix_weight`` requests more than the least loaded one: affinity never piles work on an overloaded pod.

Stale metrics degrade to least-in-flight: when any candidate's metrics are older than the limit (or missing), the
engine's numbers are ignored for all of them, so pods are compared on the same footing; prefix affinity, which
is the gateway's own knowledge, still counts. Ties go to the first candidate at or after ``start``, which the
pool rotates, so an idle pool spreads requests round-robin.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Protocol

__all__ = ["Candidate", "PickerWeights", "pick", "score"]


@dataclass(frozen=True, slots=True)
class PickerWeights:
    load: float = 1.0
    kv_cache: float = 2.0
    prefix: float = 4.0


class Candidate(Protocol):
    """What the scorer reads of an endpoint."""

    @property
    def inflight(self) -> int: ...
    @property
    def engine_load(self) -> float: ...  # running + waiting, as last scraped
    @property
    def kv_usage(self) -> float: ...


def score(candidate: Candidate, matched_fraction: float, weights: PickerWeights, *, use_engine: bool) -> float:
    load: float = candidate.inflight
    kv = 0.0
    if use_engine:
        load = max(load, candidate.engine_load)
        kv = candidate.kv_usage
    return weights.load * load + weights.kv_cache * kv - weights.prefix * matched_fraction


def pick(
    candidates: Sequence[Candidate],
    matched: Mapping[int, float],
    weights: PickerWeights,
    *,
    use_engine: bool,
    start: int = 0,
) -> int:
    """The index of the best candidate (``candidates`` is not empty); ``matched``: index -> matched fraction.

    The same arithmetic as ``score``, inlined: this runs for every request and every endpoint.
    """
    count = len(candidates)
    w_load, w_kv, w_prefix = weights.load, weights.kv_cache, weights.prefix
    best = -1
    best_score = 0.0
    for step in range(count):
        index = (start + step) % count
        c = candidates[index]
        load: float = c.inflight
        value = 0.0
        if use_engine:
            engine = c.engine_load
            if engine > load:
                load = engine
            value = w_kv * c.kv_usage
        value += w_load * load
        if matched:
            value -= w_prefix * matched.get(index, 0.0)
        if best < 0 or value < best_score:
            best, best_score = index, value
    return best
