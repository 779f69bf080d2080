"""Usage-ingestion benchmark of the control plane: ``.venv/bin/python -m bench.ingest`` (or ``bench/ingest/run``)."""
