"""The built-in mock provider: an offline OpenAI- and Anthropic-compatible upstream with fault injection.

It is the default upstream of ``interlock up`` (no key, no network), the upstream of the gateway's tests, and a
fast upstream for benchmarks. ``python -m interlock.mockprovider --port 9000`` serves it alone. With
``engine_metrics`` (``--engine-metrics``) it also stands in for a self-hosted vLLM engine: ``GET /metrics`` serves
vLLM's own ``vllm:*`` series, measured on its traffic.
"""

from interlock.mockprovider.provider import MockProvider, create_app
from interlock.mockprovider.settings import Fault, MockSettings
from interlock.mockprovider.stats import MockStats, RecordedRequest

__all__ = ["Fault", "MockProvider", "MockSettings", "MockStats", "RecordedRequest", "create_app"]
