"""``python -m tests.operator.emulator [--port N] [--kubeconfig FILE]``: serve the emulator until SIGTERM/SIGINT.

Prints ``ready <url>`` on stdout once it listens, for the process that started it.
"""

from __future__ import annotations

import argparse
import asyncio
import signal
from pathlib import Path

from tests.operator.emulator.server import Emulator


async def _serve(port: int, kubeconfig: Path | None) -> None:
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    async with Emulator(port=port) as emu:
        if kubeconfig is not None:
            emu.write_kubeconfig(kubeconfig)
        print(f"ready {emu.url}", flush=True)
        await stop.wait()


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m tests.operator.emulator")
    parser.add_argument("--port", type=int, default=0)
    parser.add_argument("--kubeconfig", type=Path)
    args = parser.parse_args()
    asyncio.run(_serve(args.port, args.kubeconfig))


if __name__ == "__main__":
    main()
