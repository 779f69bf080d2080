"""``python -m tests.operator.emulator [--port N] [--kubeconfig FILE] [--gateways]``: serve the emulator until
SIGTERM/SIGINT (``--gateways``: answer for gateway pods, see ``gateways.py``).

Prints ``ready <url>`` on stdout once it listens, for the process that started it.
"""

from __future__ import annotations

import argparse
import asyncio
import signal
from pathlib import Path

from tests.operator.emulator.gateways import FakeGateways
from tests.operator.emulator.server import Emulator


async def _serve(port: int, kubeconfig: Path | None, gateways: bool) -> None:
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    async with Emulator(port=port) as emu:
        fakes = FakeGateways(emu) if gateways else None
        if kubeconfig is not None:
            emu.write_kubeconfig(kubeconfig)
        print(f"ready {emu.url}", flush=True)
        await stop.wait()
        if fakes is not None:
            await fakes.close()


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m tests.operator.emulator")
    parser.add_argument("--port", type=int, default=0)
    parser.add_argument("--kubeconfig", type=Path)
    parser.add_argument("--gateways", action="store_true", help="stand in for gateway pods (their /readyz)")
    args = parser.parse_args()
    asyncio.run(_serve(args.port, args.kubeconfig, args.gateways))


if __name__ == "__main__":
    main()
