"""The control plane's routers, one module per resource; ``ROUTERS`` is what the app includes."""

from interlock.api.routes import gateway, keys, prices, tenants, traces, usage

__all__ = ["ROUTERS"]

ROUTERS = [tenants.router, keys.router, prices.router, usage.router, traces.router, gateway.router]
