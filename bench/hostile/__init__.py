"""Benchmarks of the gateway under hostile input (issue 11), each one command from the repository root:

- ``python -m bench.hostile.redact_cost``: what credential redaction and strict SSE checks cost per chunk.
- ``python -m bench.hostile.schema_stall``: another client's p99 while one sends pathological JSON Schemas.
- ``python -m bench.hostile.loop_lag``: the gateway's event-loop lag while pathological JSON Schemas are validated.
- ``python -m bench.hostile.slow_headers``: the gateway's RSS and latency with 1,000 slow-header connections open.
"""
