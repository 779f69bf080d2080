"""Prometheus metrics of the gateway.

The hot path only bumps plain numbers in dicts keyed by label tuples; a ``prometheus_client`` custom collector
turns them into metric families at scrape time. The stock ``Counter``/``Histogram`` take a lock and walk label
children on every update, which cost ~10 µs per request here, a few percent of the whole request budget.
All updates and scrapes run on the event loop thread, so no lock is needed.
"""

from __future__ import annotations

import time
from bisect import bisect_left
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from typing import Any, Protocol

from prometheus_client import CollectorRegistry
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, HistogramMetricFamily, Metric
from prometheus_client.registry import Collector

from interlock.telemetry import names

__all__ = ["LATENCY_BUCKETS", "DisabledMetrics", "GatewayMetrics"]

LATENCY_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 120.0, 300.0)
LABELS = ("tenant", "route", "backend", "model")
Labels = tuple[str, str, str, str]


class _Histogram:
    """Per-bucket (not cumulative) counts plus the sum; made cumulative when scraped."""

    __slots__ = ("count", "counts", "total")

    def __init__(self) -> None:
        self.counts = [0] * (len(LATENCY_BUCKETS) + 1)
        self.total = 0.0
        self.count = 0

    def observe(self, value: float) -> None:
        self.counts[bisect_left(LATENCY_BUCKETS, value)] += 1
        self.total += value
        self.count += 1

    def buckets(self) -> list[tuple[str, float]]:
        out = []
        running = 0
        for bound, count in zip((*LATENCY_BUCKETS, float("inf")), self.counts, strict=True):
            running += count
            out.append(("+Inf" if bound == float("inf") else repr(bound), float(running)))
        return out


class _Series:
    """Everything recorded for one (tenant, route, backend, model): one dict lookup per request."""

    __slots__ = ("cached", "cost", "duration", "input", "output", "statuses", "ttft")

    def __init__(self) -> None:
        self.statuses: dict[int, int] = {}
        self.duration = _Histogram()
        self.ttft = _Histogram()
        self.input = 0
        self.output = 0
        self.cached = 0
        self.cost = 0.0


class GatewayMetrics(Collector):
    """The metric families of DESIGN.md, with bounded labels: tenants, routes, backends and models come from
    config, never from raw request strings."""

    def __init__(self, registry: CollectorRegistry | None = None) -> None:
        self.registry = registry or CollectorRegistry()
        self.series: dict[Labels, _Series] = {}
        self.upstream_errors: dict[tuple[str, str], int] = {}
        self.fallbacks: dict[tuple[str, str], int] = {}
        self.ratelimited: dict[tuple[str, str], int] = {}
        self.limit_trips: dict[tuple[str], int] = {}
        self.inflight = 0
        self.pipeline: Callable[[], tuple[int, int, float | None]] | None = None
        """With a control plane: (usage events waiting, their bytes, seconds since the last snapshot answer or
        None), read at scrape time."""
        self.breakers: Callable[[], Iterable[tuple[str, bool]]] = tuple
        """(backend, open) for every backend of the current config, read at scrape time."""
        self.pools: Callable[[], Iterable[tuple[str, Sequence[EndpointView]]]] = tuple
        """(backend, its endpoints) for every backend with several, read at scrape time."""
        self.queues: Callable[[], Iterable[tuple[str, Mapping[str, int]]]] = tuple
        """(backend, requests waiting per tenant) for every backend with a queue, read at scrape time."""
        self.queue_waits: dict[tuple[str, str], _Histogram] = {}
        self.queue_rejected: dict[tuple[str, str, str], int] = {}
        self.spillovers: dict[tuple[str, str, str], int] = {}
        self.registry.register(self)

    # --- updates (hot path) ---------------------------------------------------------------------------

    def _series(self, labels: Labels) -> _Series:
        series = self.series.get(labels)
        if series is None:
            series = self.series[labels] = _Series()
        return series

    def request_done(
        self,
        labels: Labels,
        status: int,
        duration_s: float,
        *,
        input_tokens: int = 0,
        output_tokens: int = 0,
        cached_tokens: int = 0,
        cost_usd: float = 0.0,
    ) -> None:
        series = self._series(labels)
        series.statuses[status] = series.statuses.get(status, 0) + 1
        series.duration.observe(duration_s)
        series.input += input_tokens
        series.output += output_tokens
        series.cached += cached_tokens
        series.cost += cost_usd

    def first_token(self, labels: Labels, seconds: float) -> None:
        self._series(labels).ttft.observe(seconds)

    def upstream_error(self, backend: str, reason: str) -> None:
        key = (backend, reason)
        self.upstream_errors[key] = self.upstream_errors.get(key, 0) + 1

    def fallback(self, route: str, backend: str) -> None:
        key = (route, backend)
        self.fallbacks[key] = self.fallbacks.get(key, 0) + 1

    def rate_limited(self, tenant: str, route: str) -> None:
        key = (tenant, route)
        self.ratelimited[key] = self.ratelimited.get(key, 0) + 1

    def queue_wait(self, backend: str, tenant: str, seconds: float, refusal: str | None) -> None:
        """A wait in a backend's fair queue: let in after ``seconds``, or refused for ``refusal``."""
        if refusal is not None:
            key = (backend, tenant, refusal)
            self.queue_rejected[key] = self.queue_rejected.get(key, 0) + 1
            return
        histogram = self.queue_waits.get((backend, tenant))
        if histogram is None:
            histogram = self.queue_waits[backend, tenant] = _Histogram()
        histogram.observe(seconds)

    def spillover(self, tenant: str, route: str, backend: str) -> None:
        key = (tenant, route, backend)
        self.spillovers[key] = self.spillovers.get(key, 0) + 1

    def limit_trip(self, limit: str) -> None:
        """A gateway limit refused something (``header_bytes``, ``body_timeout``, ``sse_event_bytes``, ...).
        Always counted, even with metrics disabled: limits trip rarely, and a trip is worth seeing."""
        key = (limit,)
        self.limit_trips[key] = self.limit_trips.get(key, 0) + 1

    # --- scrape -----------------------------------------------------------------------------------------

    def describe(self) -> Iterator[Metric]:
        return iter(())

    def collect(self) -> Iterator[Metric]:
        requests = CounterMetricFamily(names.REQUESTS, "Requests finished, by status code.", labels=(*LABELS, "status"))
        durations = HistogramMetricFamily(
            names.REQUEST_DURATION, "End-to-end request duration in seconds.", labels=LABELS
        )
        ttfts = HistogramMetricFamily(
            names.TIME_TO_FIRST_TOKEN, "Seconds from request to the first streamed event sent.", labels=LABELS
        )
        tokens = CounterMetricFamily(names.TOKENS, "Tokens metered, by type.", labels=(*LABELS, "type"))
        costs = CounterMetricFamily(names.COST_USD, "Cost in USD at the configured prices.", labels=LABELS)
        for labels, series in list(self.series.items()):
            values = list(labels)
            for status, count in series.statuses.items():
                requests.add_metric([*values, str(status)], float(count))
            if series.duration.count:
                durations.add_metric(values, series.duration.buckets(), series.duration.total)
            if series.ttft.count:
                ttfts.add_metric(values, series.ttft.buckets(), series.ttft.total)
            for kind, count in (("input", series.input), ("output", series.output), ("cached", series.cached)):
                if count:
                    tokens.add_metric([*values, kind], float(count))
            if series.cost:
                costs.add_metric(values, series.cost)
        yield from (requests, durations, ttfts, tokens, costs)
        yield _counter(
            names.UPSTREAM_ERRORS, "Failed upstream attempts, by reason.", ("backend", "reason"), self.upstream_errors
        )
        yield _counter(
            names.FALLBACKS, "Requests served by another target after a failure.", ("route", "backend"), self.fallbacks
        )
        yield _counter(names.RATELIMITED, "Requests refused by a limit.", ("tenant", "route"), self.ratelimited)
        yield _counter(
            names.LIMIT_TRIPS, "Requests, connections or streams a limit cut short.", ("limit",), self.limit_trips
        )
        gauge = GaugeMetricFamily(names.INFLIGHT_REQUESTS, "Requests in progress.")
        gauge.add_metric([], float(self.inflight))
        yield gauge
        events = GaugeMetricFamily(names.USAGE_SPOOL_EVENTS, "Usage events the control plane has not acknowledged.")
        size = GaugeMetricFamily(names.USAGE_SPOOL_BYTES, "Bytes of the usage events waiting in the spool.")
        age = GaugeMetricFamily(names.SNAPSHOT_AGE, "Seconds since the control plane last answered a snapshot poll.")
        state = self.pipeline() if self.pipeline is not None else (0, 0, None)  # no control plane: nothing waits
        events.add_metric([], float(state[0]))
        size.add_metric([], float(state[1]))
        if state[2] is not None:
            age.add_metric([], state[2])
        yield from (events, size, age)
        breakers = GaugeMetricFamily(
            names.CIRCUIT_BREAKER_OPEN,
            "1 while the backend's circuit breaker is open (cooling down).",
            labels=["backend"],
        )
        for backend, is_open in self.breakers():
            breakers.add_metric([backend], 1.0 if is_open else 0.0)
        yield breakers
        yield from _endpoint_families(self.pools())
        waits = HistogramMetricFamily(
            names.QUEUE_WAIT,
            "Seconds a request waited in a saturated backend's fair queue.",
            labels=("backend", "tenant"),
        )
        for key, histogram in list(self.queue_waits.items()):
            waits.add_metric(list(key), histogram.buckets(), histogram.total)
        queued = GaugeMetricFamily(
            names.QUEUED_REQUESTS, "Requests waiting in a backend's fair queue now.", labels=("backend", "tenant")
        )
        for backend, waiting in self.queues():
            for tenant, count in list(waiting.items()):
                queued.add_metric([backend, tenant], float(count))
        yield from (waits, queued)
        yield _counter(
            names.QUEUE_REJECTED,
            "Requests a saturated backend's queue refused: shed, queue_full, tenant_queue_full or timeout.",
            ("backend", "tenant", "reason"),
            self.queue_rejected,
        )
        yield _counter(
            names.SPILLOVERS,
            "Requests sent to the route's spill-over target because the pool would have answered too late.",
            ("tenant", "route", "backend"),
            self.spillovers,
        )


class EndpointView(Protocol):
    """What the collector reads of a pool's endpoint (``gateway.pool.Endpoint``)."""

    label: str
    inflight: int
    engine_load: float
    kv_usage: float
    scraped_at: float | None
    picks_prefix: int
    picks_load: int
    picks_stale: int


def _endpoint_families(pools: Iterable[tuple[str, Sequence[EndpointView]]]) -> Iterator[Metric]:
    labels = ("backend", "endpoint")
    count = GaugeMetricFamily(names.ENDPOINTS, "Endpoints of the backend the picker chooses among.", labels=["backend"])
    inflight = GaugeMetricFamily(names.ENDPOINT_INFLIGHT, "Requests the gateway has in flight there.", labels=labels)
    load = GaugeMetricFamily(
        names.ENDPOINT_ENGINE_LOAD, "The engine's running plus waiting requests, as last scraped.", labels=labels
    )
    kv = GaugeMetricFamily(
        names.ENDPOINT_KV_CACHE_USAGE, "The engine's KV-cache usage, as last scraped.", labels=labels
    )
    age = GaugeMetricFamily(
        names.ENDPOINT_METRICS_AGE, "Seconds since the engine's metrics were last scraped.", labels=labels
    )
    picks = CounterMetricFamily(
        names.ENDPOINT_PICKS,
        "Requests sent there, by what decided: prefix (affinity), load (engine metrics), least_inflight (stale).",
        labels=(*labels, "reason"),
    )
    now = time.monotonic()
    for backend, endpoints in pools:
        count.add_metric([backend], float(len(endpoints)))
        for e in endpoints:
            key = [backend, e.label]
            inflight.add_metric(key, float(e.inflight))
            for reason, value in (
                ("prefix", e.picks_prefix),
                ("load", e.picks_load),
                ("least_inflight", e.picks_stale),
            ):
                picks.add_metric([*key, reason], float(value))
            if e.scraped_at is not None:
                load.add_metric(key, e.engine_load)
                kv.add_metric(key, e.kv_usage)
                age.add_metric(key, now - e.scraped_at)
    yield from (count, inflight, load, kv, age, picks)


def _counter(name: str, doc: str, labels: tuple[str, ...], values: Mapping[Any, float]) -> CounterMetricFamily:
    family = CounterMetricFamily(name, doc, labels=labels)
    for key, value in list(values.items()):
        family.add_metric(list(key), float(value))
    return family


class DisabledMetrics(GatewayMetrics):
    """Records nothing (``INTERLOCK_GATEWAY_METRICS_ENABLED=false``): for gateways scraped by nobody, and for the
    benchmark that measures what metrics cost. ``/metrics`` still answers, with zeros."""

    def request_done(
        self,
        labels: Labels,
        status: int,
        duration_s: float,
        *,
        input_tokens: int = 0,
        output_tokens: int = 0,
        cached_tokens: int = 0,
        cost_usd: float = 0.0,
    ) -> None:
        pass

    def first_token(self, labels: Labels, seconds: float) -> None:
        pass

    def upstream_error(self, backend: str, reason: str) -> None:
        pass

    def fallback(self, route: str, backend: str) -> None:
        pass

    def rate_limited(self, tenant: str, route: str) -> None:
        pass

    def queue_wait(self, backend: str, tenant: str, seconds: float, refusal: str | None) -> None:
        pass

    def spillover(self, tenant: str, route: str, backend: str) -> None:
        pass
