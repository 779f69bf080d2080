"""The arguments of ``bench/operatorbench/run``: standard library only (see ``bench/preflight.py``)."""

from __future__ import annotations

import argparse
from pathlib import Path

__all__ = ["parser"]


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="bench/operatorbench/run",
        description="Operator benchmark: reconcile routes over backends against the in-memory API server and "
        "measure the time to converge and the API calls made.",
    )
    p.add_argument("--backends", type=int, default=50)
    p.add_argument("--self-hosted", type=int, default=10, help="how many of the backends run vLLM pods")
    p.add_argument("--routes", type=int, default=200)
    p.add_argument("--gateways", type=int, default=1)
    p.add_argument("--resync", type=float, default=10.0, help="the operator's resync interval (s)")
    p.add_argument("--idle-resyncs", type=int, default=3, help="resync periods measured once converged")
    p.add_argument("--timeout", type=float, default=300.0)
    p.add_argument("--out", type=Path, help="also write the JSON here")
    return p
