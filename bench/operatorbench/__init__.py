"""The operator benchmark (``bench/operatorbench/run``)."""
