"""``interlock api`` freezes its startup heap once it serves (``interlock.heap``), as the gateway does.

In a fresh interpreter: freezing is a whole process's decision, and this one is pytest's.
"""

from __future__ import annotations

import subprocess
import sys
import textwrap
from pathlib import Path

_SCRIPT = """
    import asyncio, gc, os, socket, sys

    import httpx

    from interlock.api.serve import run_api
    from interlock.api.settings import ApiSettings

    async def main():
        with socket.socket() as probe:
            probe.bind(("127.0.0.1", 0))
            port = probe.getsockname()[1]
        settings = ApiSettings(port=port, database_url=sys.argv[1])
        print("before", gc.get_freeze_count())
        serving = asyncio.create_task(run_api(settings, run_migrations=True, serve=True, log_level="warning"))
        status = None
        async with httpx.AsyncClient() as http:
            for _ in range(600):
                if serving.done():
                    break
                try:
                    status = (await http.get(f"http://127.0.0.1:{port}/healthz")).status_code
                    break
                except httpx.TransportError:
                    await asyncio.sleep(0.05)
        print("serving", status, gc.get_freeze_count() > 10_000)
        sys.stdout.flush()
        os._exit(0)  # how the server stops is not this test's business

    asyncio.run(main())
"""


def test_a_served_control_plane_freezes_what_startup_built(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'interlock.db'}"
    done = subprocess.run(
        [sys.executable, "-c", textwrap.dedent(_SCRIPT), url], capture_output=True, text=True, timeout=120, check=False
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.split() == ["before", "0", "serving", "200", "True"]
