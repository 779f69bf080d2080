"""Hot reload of the compiled config: no request lost, the last good config kept, readiness reported."""

from __future__ import annotations

import asyncio
import os
from pathlib import Path

from interlock.gatewayconfig import FileConfigSource, GatewayConfig
from tests.gateway.harness import backend, config, route
from tests.support import eventually

HELLO = [{"role": "user", "content": "Hello"}]


def write_atomically(path: Path, data: bytes) -> None:
    """As kubelet updates a ConfigMap volume: write elsewhere, then rename over."""
    tmp = path.with_suffix(".tmp")
    tmp.write_bytes(data)
    os.replace(tmp, path)


def two_configs(a_url: str, b_url: str) -> tuple[GatewayConfig, GatewayConfig]:
    backends = (backend("a", a_url), backend("b", b_url))
    return (
        config(*backends, route("chat", [("a", "m1")])),
        config(*backends, route("chat", [("b", "m1")]), route("extra", [("a", "m1")])),
    )


async def test_reload_during_traffic_loses_no_request(upstream, gateway, tmp_path):
    a, b = await upstream(chunk_delay_s=0.002), await upstream(chunk_delay_s=0.002)
    first, second = two_configs(a.url, b.url)
    path = tmp_path / "gateway.json"
    path.write_bytes(first.to_json())
    gw = await gateway(FileConfigSource(path), config_poll_interval_s=0.02)

    stop = asyncio.Event()
    statuses: list[int] = []

    async def traffic(stream: bool) -> None:
        while not stop.is_set():
            if stream:
                async with gw.http.stream(
                    "POST", "/v1/chat/completions", json={"model": "chat", "messages": HELLO, "stream": True}
                ) as response:
                    body = b"".join([part async for part in response.aiter_bytes()])
                    assert body.endswith(b"data: [DONE]\n\n")
            else:
                response = await gw.http.post("/v1/chat/completions", json={"model": "chat", "messages": HELLO})
            statuses.append(response.status_code)

    workers = [asyncio.create_task(traffic(stream=i % 2 == 0)) for i in range(8)]
    for i in range(10):
        current = second if i % 2 == 0 else first
        write_atomically(path, current.to_json())
        await eventually(lambda c=current: gw.core.loader.status.version == c.version, what="config reloaded")
        seen = len(statuses)
        await eventually(lambda seen=seen: len(statuses) > seen + 10, what="traffic flowing")
    stop.set()
    await asyncio.gather(*workers)

    assert len(statuses) > 100
    assert set(statuses) == {200}
    assert a.requests > 0
    assert b.requests > 0


async def test_invalid_config_keeps_the_last_good_one(upstream, gateway, tmp_path):
    up = await upstream()
    good = config(backend("a", up.url), route("chat", [("a", "m1")]))
    path = tmp_path / "gateway.json"
    path.write_bytes(good.to_json())
    gw = await gateway(FileConfigSource(path))

    write_atomically(path, b'{"schemaVersion": 1, "routes": {"chat": {"oops": true}}}')
    await gw.core.loader.check()

    ready = (await gw.ops.get("/readyz")).json()
    assert ready["status"] == "ready"
    assert ready["config_version"] == good.version
    assert ready["last_error"].startswith("invalid GatewayConfig: routes.chat.name: required field is missing")
    assert (await gw.http.post("/v1/chat/completions", json={"model": "chat", "messages": HELLO})).status_code == 200

    write_atomically(path, b"not json at all")
    await gw.core.loader.check()
    assert (await gw.http.post("/v1/chat/completions", json={"model": "chat", "messages": HELLO})).status_code == 200


async def test_not_ready_until_a_config_loads(upstream, gateway, tmp_path):
    up = await upstream()
    path = tmp_path / "gateway.json"
    gw = await gateway(FileConfigSource(path))

    assert (await gw.http.get("/healthz")).status_code == 200
    assert (await gw.ops.get("/readyz")).status_code == 503
    response = await gw.http.post("/v1/chat/completions", json={"model": "chat", "messages": HELLO})
    assert response.status_code == 503
    assert response.json()["error"]["code"] == "not_ready"

    write_atomically(path, config(backend("a", up.url), route("chat", [("a", "m1")])).to_json())
    await gw.core.loader.check()
    assert (await gw.ops.get("/readyz")).status_code == 200
    assert (await gw.http.post("/v1/chat/completions", json={"model": "chat", "messages": HELLO})).status_code == 200


async def test_unchanged_backends_keep_their_connections_across_reloads(upstream, gateway):
    a, b = await upstream(), await upstream()
    first, second = two_configs(a.url, b.url)
    gw = await gateway(first)
    client_before = gw.core.services.runtime.backends["a"].client

    await gw.reload(second)
    assert gw.core.services.runtime.backends["a"].client is client_before

    third = config(backend("a", a.url, limits={"maxConcurrency": 5}), route("chat", [("a", "m1")]))
    await gw.reload(third)
    assert gw.core.services.runtime.backends["a"].client is not client_before
    await eventually(lambda: client_before._pool is None, what="the replaced client was closed")
