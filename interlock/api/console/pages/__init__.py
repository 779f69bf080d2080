"""The console's pages, one module per page (or pair of pages); ``ROUTERS`` is what the console includes."""

from interlock.api.console.pages import gateways, keys, latency, login, overview, tenants, traces, usage

__all__ = ["ROUTERS"]

ROUTERS = [
    login.router,
    overview.router,
    usage.router,
    latency.router,
    tenants.router,
    keys.router,
    traces.router,
    gateways.router,
]
