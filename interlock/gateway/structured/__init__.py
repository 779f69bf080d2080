"""Tenants' JSON Schemas, checked and applied off the event loop: ``shape.py`` (what a schema may look like),
``engine.py`` (jsonschema with RE2 patterns), ``worker.py`` (the worker process), ``pool.py`` (the gateway's side,
with a time budget per job)."""
