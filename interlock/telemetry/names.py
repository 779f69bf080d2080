"""Metric and span names: the contract with dashboards, alerts and tests. Change them only with every user."""

from __future__ import annotations

__all__ = [
    "COST_USD",
    "FALLBACKS",
    "INFLIGHT_REQUESTS",
    "METRIC_NAMES",
    "RATELIMITED",
    "REQUESTS",
    "REQUEST_DURATION",
    "TIME_TO_FIRST_TOKEN",
    "TOKENS",
    "UPSTREAM_ERRORS",
]

# Prometheus names as exposed (prometheus_client adds ``_total`` to counters on exposition).
REQUESTS = "interlock_requests"  # interlock_requests_total{tenant,route,backend,model,status}
REQUEST_DURATION = "interlock_request_duration_seconds"
TIME_TO_FIRST_TOKEN = "interlock_time_to_first_token_seconds"
TOKENS = "interlock_tokens"  # interlock_tokens_total{...,type=input|output|cached}
COST_USD = "interlock_cost_usd"  # interlock_cost_usd_total
UPSTREAM_ERRORS = "interlock_upstream_errors"  # interlock_upstream_errors_total{backend,reason}
FALLBACKS = "interlock_fallbacks"  # interlock_fallbacks_total
RATELIMITED = "interlock_ratelimited"  # interlock_ratelimited_total
INFLIGHT_REQUESTS = "interlock_inflight_requests"

METRIC_NAMES = (
    "interlock_requests_total",
    "interlock_request_duration_seconds",
    "interlock_time_to_first_token_seconds",
    "interlock_tokens_total",
    "interlock_cost_usd_total",
    "interlock_upstream_errors_total",
    "interlock_fallbacks_total",
    "interlock_ratelimited_total",
    "interlock_inflight_requests",
)
"""Every series family the gateway exports, in its exposed form."""
