"""The data plane. Entry point: ``app.create_gateway_app``.

Folders by job: ``http/`` (the client side: ASGI, the HTTP server's limits, serving the client and ops ports),
``endpoints/`` (one module per API, and the ops port), ``dispatch/`` (routes, attempts, crossings), ``translate/``
(pure API translators), ``structured/`` (tenants' JSON Schemas, checked and applied in worker processes),
``upstream/`` (transport to providers, credential redaction), ``tenancy/`` (auth, limits, budgets),
``controlplane/`` (snapshot and link), ``usage/`` (metering, spool, sender).
"""
