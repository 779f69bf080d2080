"""The arguments of ``bench/run`` and ``bench/telemetry``: standard library only, so that ``bench/preflight.py``
can parse them before anything is installed."""

from __future__ import annotations

import argparse
from pathlib import Path

__all__ = ["run_parser", "telemetry_parser"]

BENCH = Path(__file__).resolve().parent.parent


def run_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="bench/run",
        description="Start the mock upstream, Interlock (and the LiteLLM proxy), measure each under load, print the "
        "report.",
    )
    parser.add_argument("--quick", action="store_true", help="short phases: a smoke run of about a minute")
    parser.add_argument("--no-litellm", action="store_true", help="leave the LiteLLM proxy out")
    parser.add_argument(
        "--no-telemetry", action="store_true", help="leave out the gateways without metrics and with tracing"
    )
    parser.add_argument("--profile", action="store_true", help="also profile Interlock under load with py-spy")
    parser.add_argument("--out", type=Path, help="write the markdown report here too")
    parser.add_argument("--chunk-delay", type=float, default=0.02, help="seconds between streamed chunks upstream")
    parser.add_argument("--workdir", type=Path, default=BENCH / ".work" / "run", help="configs, logs, profiles")
    parser.add_argument("--litellm-bin", type=Path, default=BENCH / ".work" / "litellm-venv" / "bin" / "litellm")
    parser.add_argument("--litellm-unavailable", metavar="REASON", help="(from bench/run) why LiteLLM is missing")
    return parser


def telemetry_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="bench/telemetry",
        description="What metrics and traces cost the gateway: CPU per request of gateway processes that differ "
        "only in telemetry.",
    )
    parser.add_argument("--rounds", type=int, default=8, help="rounds over all variants (default 8)")
    parser.add_argument("--seconds", type=float, default=4.0, help="measured seconds per variant and round")
    parser.add_argument(
        "--instructions", type=int, default=0, metavar="N", help="also count instructions per request over N requests"
    )
    parser.add_argument("--warmup", type=float, default=1.0, help="unmeasured seconds before each measurement")
    parser.add_argument("--connections", type=int, default=64)
    parser.add_argument("--workdir", type=Path, default=BENCH / ".work" / "telemetry")
    parser.add_argument("--out", type=Path, help="write the markdown report here too")
    return parser
