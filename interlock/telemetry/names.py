"""Metric and span names: the contract with dashboards, alerts and tests. Change them only with every user."""

from __future__ import annotations

__all__ = [
    "ATTEMPT",
    "BACKEND",
    "CIRCUIT_BREAKER_OPEN",
    "COST_USD",
    "ENDPOINTS",
    "ENDPOINT_ENGINE_LOAD",
    "ENDPOINT_INFLIGHT",
    "ENDPOINT_KV_CACHE_USAGE",
    "ENDPOINT_METRICS_AGE",
    "ENDPOINT_PICKS",
    "ERROR_TYPE",
    "FALLBACKS",
    "GEN_AI_CACHED_TOKENS",
    "GEN_AI_INPUT_TOKENS",
    "GEN_AI_OPERATION",
    "GEN_AI_OUTPUT_TOKENS",
    "GEN_AI_PROVIDER",
    "GEN_AI_REQUEST_MODEL",
    "GEN_AI_RESPONSE_MODEL",
    "HTTP_STATUS",
    "INFLIGHT_REQUESTS",
    "LIMIT_TRIPS",
    "METRIC_NAMES",
    "QUEUED_REQUESTS",
    "QUEUE_REJECTED",
    "QUEUE_SPAN",
    "QUEUE_WAIT",
    "RATELIMITED",
    "REQUESTS",
    "REQUEST_DURATION",
    "ROUTE",
    "SNAPSHOT_AGE",
    "SPILLOVERS",
    "TENANT",
    "TIME_TO_FIRST_TOKEN",
    "TOKENS",
    "UPSTREAM_ERRORS",
    "URL_PATH",
    "USAGE_SPOOL_BYTES",
    "USAGE_SPOOL_EVENTS",
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
USAGE_SPOOL_EVENTS = "interlock_usage_spool_events"  # gauge: usage events the control plane has not acknowledged
USAGE_SPOOL_BYTES = "interlock_usage_spool_bytes"  # gauge: their bytes (the spool's cap is on these)
SNAPSHOT_AGE = "interlock_snapshot_age_seconds"  # gauge: since the control plane last answered a snapshot poll
CIRCUIT_BREAKER_OPEN = "interlock_circuit_breaker_open"  # gauge 0/1 per backend
LIMIT_TRIPS = "interlock_limit_trips"  # interlock_limit_trips_total{limit}
# The endpoint picker (docs/routing.md): its inputs per endpoint of a backend with several, and its choices.
ENDPOINTS = "interlock_endpoints"  # gauge{backend}: endpoints known (static list or DNS)
ENDPOINT_INFLIGHT = "interlock_endpoint_inflight_requests"  # gauge{backend,endpoint}: the gateway's own
ENDPOINT_ENGINE_LOAD = "interlock_endpoint_engine_requests"  # gauge{backend,endpoint}: engine's running + waiting
ENDPOINT_KV_CACHE_USAGE = "interlock_endpoint_kv_cache_usage_ratio"  # gauge{backend,endpoint}: engine's, 0 to 1
ENDPOINT_METRICS_AGE = "interlock_endpoint_metrics_age_seconds"  # gauge{backend,endpoint}: since the last scrape
ENDPOINT_PICKS = "interlock_endpoint_picks"  # interlock_endpoint_picks_total{backend,endpoint,reason}
# Tenant-fair queueing at a saturated pool, and spill-over to a hosted target.
QUEUE_WAIT = "interlock_queue_wait_seconds"  # histogram{backend,tenant}: waits that were let in
QUEUED_REQUESTS = "interlock_queued_requests"  # gauge{backend,tenant}: waiting now
QUEUE_REJECTED = "interlock_queue_rejected"  # interlock_queue_rejected_total{backend,tenant,reason}
SPILLOVERS = "interlock_spillovers"  # interlock_spillovers_total{tenant,route,backend}: backend = the spill target
QUEUE_SPAN = "gateway.queue"  # span of a wait in a backend's fair queue

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
    "interlock_usage_spool_events",
    "interlock_usage_spool_bytes",
    "interlock_snapshot_age_seconds",
    "interlock_circuit_breaker_open",
    "interlock_limit_trips_total",
    "interlock_endpoints",
    "interlock_endpoint_inflight_requests",
    "interlock_endpoint_engine_requests",
    "interlock_endpoint_kv_cache_usage_ratio",
    "interlock_endpoint_metrics_age_seconds",
    "interlock_endpoint_picks_total",
    "interlock_queue_wait_seconds",
    "interlock_queued_requests",
    "interlock_queue_rejected_total",
    "interlock_spillovers_total",
)
"""Every series family the gateway exports, in its exposed form."""

# Span attributes: the OpenTelemetry GenAI semantic conventions, and Interlock's own under ``interlock.``.
GEN_AI_OPERATION = "gen_ai.operation.name"  # chat | embeddings
GEN_AI_PROVIDER = "gen_ai.provider.name"  # openai | anthropic | vllm | ...
GEN_AI_REQUEST_MODEL = "gen_ai.request.model"
GEN_AI_RESPONSE_MODEL = "gen_ai.response.model"
GEN_AI_INPUT_TOKENS = "gen_ai.usage.input_tokens"
GEN_AI_OUTPUT_TOKENS = "gen_ai.usage.output_tokens"
GEN_AI_CACHED_TOKENS = "gen_ai.usage.cache_read.input_tokens"
HTTP_STATUS = "http.response.status_code"
URL_PATH = "url.path"
ERROR_TYPE = "error.type"
TENANT = "interlock.tenant"
ROUTE = "interlock.route"
BACKEND = "interlock.backend"
ATTEMPT = "interlock.attempt"
