"""The arguments of ``bench/controlplane/run``: standard library only (see ``bench/preflight.py``)."""

from __future__ import annotations

import argparse

__all__ = ["parser"]


def _scale(text: str) -> float:
    value = float(text)
    if not 0 < value <= 1:
        raise argparse.ArgumentTypeError("scale must be in (0, 1]")
    return value


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="bench/controlplane/run",
        description="The control plane at fleet scale on Postgres: synthetic history (10,000 tenants, 30,000 keys, "
        "10 million usage rows over a year, times --scale), then ingest rate, snapshot poll cost and query latency.",
    )
    p.add_argument("--scale", type=_scale, default=0.1, help="fraction of the full history (default 0.1)")
    p.add_argument("--tenants", type=int, default=None, help="tenants (default 10,000; not scaled when given)")
    p.add_argument("--ingest-events", type=int, default=60_000, help="events POSTed in the ingest phase")
    p.add_argument("--batch", type=int, default=500, help="events per usage batch (a gateway sends up to 500)")
    p.add_argument("--senders", type=int, default=4, help="concurrent usage senders")
    p.add_argument("--spans", type=int, default=3, choices=range(5), help="spans per ingested event")
    p.add_argument("--gateways", type=int, default=50, help="simulated gateways polling the snapshot")
    p.add_argument("--poll-interval", type=float, default=2.0, help="seconds between one gateway's polls")
    p.add_argument("--poll-seconds", type=float, default=20.0, help="length of each polling phase")
    p.add_argument("--repeat", type=int, default=20, help="runs of each query for its p95")
    p.add_argument("--phases", default="ingest,snapshot,queries", help="comma-separated subset to run")
    p.add_argument("--keep", action="store_true", help="keep the database (its name is printed)")
    p.add_argument("--database", help="measure a database an earlier --keep run loaded (kept again afterwards)")
    return p
