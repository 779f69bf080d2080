"""Parse a benchmark's arguments before anything is installed: ``python3 bench/preflight.py ARGS_FILE FACTORY ...``.

The bench entry points (``bench/run``, ``bench/telemetry``, ``bench/operatorbench/run``, ``bench/ingest/run``) call
this with the system Python first, so that ``--help`` and a mistyped option answer at once instead of after a
virtualenv (or LiteLLM's) install. ``ARGS_FILE`` is a standard-library-only module whose ``FACTORY()`` returns the
entry point's ``argparse`` parser, the same one the benchmark itself uses. Exit status: 0 (go on), 3 (help was
printed: stop, successfully), 2 (bad arguments, with argparse's message).
"""

from __future__ import annotations

import importlib.util
import sys

HELP_PRINTED = 3


def main(argv: list[str]) -> int:
    path, factory, *args = argv
    spec = importlib.util.spec_from_file_location("_bench_args", path)
    if spec is None or spec.loader is None:
        raise SystemExit(f"bench/preflight.py: cannot load {path}")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    try:
        getattr(module, factory)().parse_args(args)
    except SystemExit as exc:  # argparse exits 0 after --help, 2 on an error
        return HELP_PRINTED if exc.code in (0, None) else 2
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
