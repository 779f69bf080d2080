"""One module per family of faults; each exposes ``CASES: list[Case]``."""
