"""The arguments of ``bench/ingest/run``: standard library only (see ``bench/preflight.py``)."""

from __future__ import annotations

import argparse

__all__ = ["parser"]


def _ints(text: str) -> list[int]:
    return [int(part) for part in text.split(",") if part]


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="bench/ingest/run",
        description="Usage ingestion into Postgres: rows/s by batch size, through a real `interlock api` process.",
    )
    p.add_argument("--rows", type=int, default=4000, help="rows per case (batch size 1: at most 1000)")
    p.add_argument("--sizes", type=_ints, default=[1, 100, 500, 2000])
    p.add_argument("--concurrency", type=_ints, default=[1, 4], help="parallel senders, comma-separated")
    p.add_argument("--spans", type=int, default=3, choices=range(5))
    return p
