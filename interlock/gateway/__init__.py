"""The data plane. Entry point: ``app.create_gateway_app``.

Folders by job: ``http/`` (the client side), ``endpoints/`` (one module per API), ``dispatch/`` (routes, attempts,
crossings), ``translate/`` (pure API translators), ``upstream/`` (transport to providers), ``tenancy/`` (auth,
limits, budgets), ``controlplane/`` (snapshot and link), ``usage/`` (metering, spool, sender).
"""
