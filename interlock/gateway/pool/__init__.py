"""Several endpoints of one backend: discovery (static or DNS), engine state, and the per-request pick.

See docs/routing.md. Everything a request does here is in memory; resolving names and scraping engines' metrics
run in background tasks, one per backend that has a pool.
"""

from interlock.gateway.pool.endpoint import Endpoint
from interlock.gateway.pool.pool import EndpointPool

__all__ = ["Endpoint", "EndpointPool"]
