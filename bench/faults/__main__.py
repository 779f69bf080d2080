"""``python -m bench.faults [NAME ...]``: run the fault cases (all, or those whose name contains NAME) and print
one Markdown table row per case. Exits 1 when any case lost, double-counted or leaked anything."""

from __future__ import annotations

import argparse
import asyncio
import importlib
import pkgutil
import sys
import time

from bench.faults import Case, Outcome
from bench.faults import cases as case_package


def discover() -> list[Case]:
    found: list[Case] = []
    for info in sorted(pkgutil.iter_modules(case_package.__path__), key=lambda i: i.name):
        module = importlib.import_module(f"{case_package.__name__}.{info.name}")
        found.extend(getattr(module, "CASES", []))
    return found


def _row(case: Case, outcome: Outcome, seconds: float) -> str:
    verdict = "ok" if outcome.clean else "**FAIL**"
    facts = ", ".join(f"{k} {v:g}" for k, v in outcome.facts.items())
    return (
        f"| {case.name} | {outcome.lost} | {outcome.double_counted} | {outcome.leaked} | {verdict} | "
        f"{seconds:.1f} | {outcome.detail}{'; ' + facts if facts else ''} |"
    )


async def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.faults", description=__doc__)
    parser.add_argument("names", nargs="*", help="run only the cases whose name contains one of these")
    parser.add_argument("--repeat", type=int, default=1, metavar="N", help="run each selected case N times")
    args = parser.parse_args(argv)
    selected = [c for c in discover() if not args.names or any(n in c.name for n in args.names)]
    selected = [case for case in selected for _ in range(max(1, args.repeat))]
    print("| case | lost | counted twice | leaked | verdict | s | what happened |")
    print("|---|---:|---:|---:|---|---:|---|")
    failed = 0
    for case in selected:
        started = time.monotonic()
        try:
            outcome = await case.run()
        except Exception as exc:  # a case that cannot run is a failure of the table, not a crash of it
            outcome = Outcome(lost=-1, detail=f"the case could not run: {type(exc).__name__}: {exc}")
        failed += not outcome.clean
        print(_row(case, outcome, time.monotonic() - started), flush=True)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(asyncio.run(main()))
