"""A real Prometheus (Debian's package) on loopback for one test: scrapes given targets every second and answers
PromQL over its HTTP API."""

from __future__ import annotations

import asyncio
import contextlib
import os
import shutil
import socket
import tempfile
from collections.abc import AsyncIterator, Sequence
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.support import eventually

__all__ = ["PROMETHEUS", "Prometheus", "running_prometheus"]

PROMETHEUS = Path(os.environ.get("INTERLOCK_PROMETHEUS", "/usr/bin/prometheus"))
SCRAPE_INTERVAL = "1s"


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


class Prometheus:
    def __init__(self, url: str) -> None:
        self.url = url
        self.http = httpx.AsyncClient(base_url=url, timeout=10)

    async def query(self, expr: str) -> dict[str, Any]:
        """``/api/v1/query`` at the current time; the JSON answer (``status`` is ``error`` for a bad query)."""
        response = await self.http.get("/api/v1/query", params={"query": expr})
        body: dict[str, Any] = response.json()
        return body

    async def label_values(self, label: str, selector: str) -> list[str]:
        response = await self.http.get(f"/api/v1/label/{label}/values", params={"match[]": selector})
        body = response.json()
        assert body["status"] == "success", body
        values: list[str] = body["data"]
        return values

    async def targets_up(self) -> bool:
        body = (await self.http.get("/api/v1/targets")).json()
        active = body["data"]["activeTargets"]
        return bool(active) and all(t["health"] == "up" for t in active)


@contextlib.asynccontextmanager
async def running_prometheus(targets: Sequence[str]) -> AsyncIterator[Prometheus]:
    """Prometheus scraping ``targets`` (``host:port``, path /metrics) every second, in a temporary directory."""
    if not os.access(PROMETHEUS, os.X_OK):
        pytest.fail(
            f"{PROMETHEUS} is missing: install Debian's Prometheus (`apt-get install -y prometheus`; .ci/run does) "
            "or point INTERLOCK_PROMETHEUS at a prometheus binary"
        )
    workdir = Path(tempfile.mkdtemp(prefix="interlock-prometheus-"))
    config = workdir / "prometheus.yml"
    config.write_text(
        "global:\n"
        f"  scrape_interval: {SCRAPE_INTERVAL}\n"
        f"  scrape_timeout: {SCRAPE_INTERVAL}\n"
        f"  evaluation_interval: {SCRAPE_INTERVAL}\n"
        "scrape_configs:\n"
        "  - job_name: interlock-gateway\n"
        "    metrics_path: /metrics\n"
        f"    static_configs: [{{targets: [{', '.join(repr(t) for t in targets)}]}}]\n"
    )
    port = _free_port()
    log = (workdir / "prometheus.log").open("wb")
    process = await asyncio.create_subprocess_exec(
        str(PROMETHEUS),
        f"--config.file={config}",
        f"--storage.tsdb.path={workdir / 'data'}",
        f"--web.listen-address=127.0.0.1:{port}",
        "--log.level=warn",
        stdout=log,
        stderr=log,
    )
    prometheus = Prometheus(f"http://127.0.0.1:{port}")
    try:

        async def ready() -> bool:
            if process.returncode is not None:
                raise AssertionError(f"prometheus exited: {(workdir / 'prometheus.log').read_text()[-2000:]}")
            with contextlib.suppress(httpx.TransportError):
                return (await prometheus.http.get("/-/ready")).status_code == 200
            return False

        await eventually(ready, within=30, interval=0.1, what="prometheus ready")
        await eventually(prometheus.targets_up, within=15, interval=0.2, what="the gateway scraped")
        yield prometheus
    finally:
        await prometheus.http.aclose()
        if process.returncode is None:
            process.terminate()
            try:
                await asyncio.wait_for(process.wait(), 15)
            except TimeoutError:
                process.kill()
                await process.wait()
        log.close()
        shutil.rmtree(workdir, ignore_errors=True)
