"""The pure scorer: which endpoint a request goes to, from load, KV-cache headroom and prefix affinity.

Score (lower wins), in units of "one request's worth of queue":

    load_weight * load  +  queue_weight * max(0, load + 1 - batch)  +  kv_cache_weight * kv_pressure
                        -  prefix_weight * matched_fraction

``load`` is the gateway's own in-flight count on the endpoint (exact and current), plus, with fresh engine
metrics, what the engine ran or queued beyond the gateway's own requests when last scraped (other gateways'
traffic). The engine's total itself is up to a scrape interval old: at high rates it shows a pod busy that has
drained since, and steering by it unbalances the pool (bench/routing measured it). ``batch`` is the engine's
batch size (configured, or the most requests it was seen running while others waited; 0: unknown). With
``load >= batch`` this request would wait for a slot, behind ``load - batch`` others, which costs far more than
running beside others: each of the ``load + 1 - batch`` waiting requests counts ``queue_weight`` more.
``kv_pressure`` is the engine's KV-cache usage above ``kv_threshold``, scaled to 0 to 1 (``(kv_usage -
kv_threshold) / (1 - kv_threshold)``, 0 below it): an engine admits the next request's blocks while it has room, so
KV headroom changes the next request's latency only near a full cache (where it must wait for blocks, or evict
other prefixes). Below that a difference in usage, read up to a scrape ago, would only decide ties, and a stale
tie-breaker sends every tie to the same pod for a whole scrape interval: on uniform short prompts that cost 22 %
on the p99 against least-in-flight (bench/RESULTS.md). ``matched_fraction``
is the share of the request's prefix blocks the endpoint has seen (``prefix.PrefixIndex``). So a pod that holds
the conversation wins unless it is busier than the least loaded one by more than the prefix is worth: affinity
never piles work on an overloaded pod.

Stale metrics degrade to least-in-flight: when any candidate's metrics are older than the limit (or missing), the
engine's numbers are ignored for all of them, so pods are compared on the same footing; prefix affinity, which
is the gateway's own knowledge, still counts. Ties go to the first candidate at or after ``start``, which the
pool rotates, so an idle pool spreads requests round-robin.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Protocol

__all__ = ["Candidate", "PickerWeights", "kv_pressure", "pick", "score"]


@dataclass(frozen=True, slots=True)
class PickerWeights:
    load: float = 1.0
    kv_cache: float = 1.0
    prefix: float = 8.0
    queue: float = 4.0
    kv_threshold: float = 0.8  # below 1
    kv_scale: float = field(init=False)
    """``kv_cache / (1 - kv_threshold)``: the KV term per unit of usage above the threshold, computed once."""

    def __post_init__(self) -> None:
        object.__setattr__(self, "kv_scale", self.kv_cache / (1.0 - self.kv_threshold))


def kv_pressure(kv_usage: float, threshold: float) -> float:
    """KV-cache usage above ``threshold``, scaled to 0 (at or below it) to 1 (a full cache)."""
    return max(0.0, kv_usage - threshold) / (1.0 - threshold)


class Candidate(Protocol):
    """What the scorer reads of an endpoint."""

    @property
    def inflight(self) -> int: ...
    @property
    def external_load(self) -> float: ...  # the engine's running + waiting beyond the gateway's own, last scraped
    @property
    def kv_usage(self) -> float: ...
    @property
    def batch_size(self) -> float: ...  # 0: not known yet


def score(candidate: Candidate, matched_fraction: float, weights: PickerWeights, *, use_engine: bool) -> float:
    load: float = candidate.inflight
    kv = 0.0
    if use_engine:
        load += candidate.external_load
        kv = kv_pressure(candidate.kv_usage, weights.kv_threshold)
    batch = candidate.batch_size
    queued = load + 1 - batch if 0 < batch <= load else 0.0
    return weights.load * load + weights.queue * queued + weights.kv_cache * kv - weights.prefix * matched_fraction


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
    w_load, w_prefix, w_queue = weights.load, weights.prefix, weights.queue
    kv_knee, kv_scale = weights.kv_threshold, weights.kv_scale
    best = -1
    best_score = 0.0
    for step in range(count):
        index = (start + step) % count
        c = candidates[index]
        load: float = c.inflight
        value = 0.0
        if use_engine:
            load += c.external_load
            kv = c.kv_usage
            if kv > kv_knee:
                value = kv_scale * (kv - kv_knee)
        value += w_load * load
        batch = c.batch_size
        if 0 < batch <= load:  # this request would wait for a slot, behind load - batch others
            value += w_queue * (load + 1 - batch)
        if matched:
            value -= w_prefix * matched.get(index, 0.0)
        if best < 0 or value < best_score:
            best, best_score = index, value
    return best
