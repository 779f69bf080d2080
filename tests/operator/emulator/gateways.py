"""Stand-ins for the gateway pods' ops port, for tests and ``python -m tests.operator.emulator --gateways``."""

from __future__ import annotations

import asyncio
import socket
from typing import TYPE_CHECKING, Any

from aiohttp import web

if TYPE_CHECKING:
    from tests.operator.emulator.server import Emulator

__all__ = ["FakeGateways"]


class FakeGateways:
    """Stand-ins for gateway pods' ops port: for every gateway Deployment the emulator's controller makes pods for,
    an HTTP server on 127.0.0.1 whose ``/readyz`` reports the config version of the gateway's ConfigMap (what a
    gateway reports once the kubelet has synced the ConfigMap and it reloaded). ``pin`` holds a gateway on one
    version (a gateway that has not reloaded yet), ``unpin`` lets it follow again."""

    def __init__(self, emu: Emulator) -> None:
        self.emu = emu
        self.pinned: dict[tuple[str, str], str | None] = {}
        self.hits: dict[tuple[str, str], int] = {}
        """``/readyz`` requests per gateway Deployment (the operator's reads)."""
        self._runners: list[Any] = []
        self._ports: dict[tuple[str, str], int] = {}
        emu.store.controller.hooks.append(self._hook)
        emu.gateways = self  # type: ignore[attr-defined]

    def _hook(self, deployment: dict[str, Any]) -> Any:
        meta = deployment["metadata"]
        if (meta.get("labels") or {}).get("app.kubernetes.io/component") != "gateway":
            return None
        key = (meta["namespace"], meta["name"])
        if key not in self._ports:
            self._ports[key] = self._start(key)
        self.emu.store.controller.ports.setdefault((*key, "ops"), self._ports[key])  # a test may point it elsewhere
        return "ready"

    def _start(self, key: tuple[str, str]) -> int:
        async def readyz(_: web.Request) -> web.Response:
            self.hits[key] = self.hits.get(key, 0) + 1
            if key in self.pinned:
                version = self.pinned[key]
            else:
                cm = self.emu.get("v1", "configmaps", key[0], key[1]) or {}
                version = (cm.get("metadata") or {}).get("annotations", {}).get("interlock.dev/config-version")
            status = 200 if version else 503
            return web.json_response({"status": "ready" if version else "not ready", "config_version": version},
                                     status=status)  # fmt: skip

        sock = socket.socket()
        sock.bind(("127.0.0.1", 0))
        port = int(sock.getsockname()[1])
        app = web.Application()
        app.router.add_get("/readyz", readyz)
        runner = web.AppRunner(app, access_log=None)
        self._runners.append(runner)

        async def start() -> None:
            await runner.setup()
            await web.SockSite(runner, sock).start()

        task = asyncio.get_running_loop().create_task(start())
        self._runners.append(task)
        return port

    def pin(self, namespace: str, gateway: str, version: str | None) -> None:
        self.pinned[(namespace, f"interlock-gateway-{gateway}")] = version

    def unpin(self, namespace: str, gateway: str) -> None:
        self.pinned.pop((namespace, f"interlock-gateway-{gateway}"), None)

    async def close(self) -> None:
        for item in self._runners:
            if isinstance(item, web.AppRunner):
                await item.cleanup()
            else:
                await item
