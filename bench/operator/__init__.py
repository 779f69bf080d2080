"""The operator benchmark (``bench/operator/run``)."""
