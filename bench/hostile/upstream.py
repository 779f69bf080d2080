"""``python -m bench.hostile.upstream --port N [--text-file F]``: the hostile upstream (``bench/faults/hostile.py``)
as a process; its well-formed answers say the contents of ``--text-file``."""

from __future__ import annotations

import argparse
from pathlib import Path

import uvicorn

from bench.faults.hostile import HostileUpstream

__all__ = ["main"]


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.hostile.upstream", description=__doc__)
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--text-file", type=Path)
    args = parser.parse_args()
    upstream = HostileUpstream()
    if args.text_file is not None:
        upstream.text = args.text_file.read_text()
    uvicorn.run(upstream, host="127.0.0.1", port=args.port, log_level="warning", lifespan="off", access_log=False)


if __name__ == "__main__":
    main()
