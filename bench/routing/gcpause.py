"""``python -m bench.routing.gcpause [--held 0,50,700] [--no-freeze]``: how long one full garbage collection of a
serving gateway takes, with N streaming requests held in it.

Two simulated engines (2 batch slots each, 2 s per output token, so every request stays in the gateway: 4
streaming, the rest in the fair queue), the gateway as ``bench.routing`` runs it, and for each N: N requests sent
and held, then SIGUSR1 makes the gateway count the objects its collector tracks and has frozen, and time two full
collections (``gc.collect()``) in its own process (``bench.routing.gateway --gc-report``). ``--no-freeze`` runs the
gateway without freezing its startup heap (``interlock.heap``), for the comparison. A pause of that length stops
every stream the gateway serves whenever CPython collects its oldest generation (bench/RESULTS.md).
"""

from __future__ import annotations

import argparse
import asyncio
import signal
import tempfile
from pathlib import Path

import httpx
import orjson

from bench.routing.__main__ import KEYS, free_port, pool_manifests, start, stop, wait_ready, write_config

ENGINE = {
    "models": ["llama"], "engine_metrics": True, "max_num_seqs": 2, "kv_cache_tokens": 4000, "block_size": 16,
    "prefill_s_per_token": 0.0003, "decode_s_per_token": 2.0, "stream_chunks": 16, "min_answer_tokens": 16,
    "max_answer_tokens": 16,
}  # fmt: skip
QUEUEING = {"maxInflightPerEndpoint": 2, "maxQueued": 100000, "maxQueuedPerTenant": 100000, "maxWait": "300s"}


async def _hold(http: httpx.AsyncClient, i: int) -> None:
    body = {"model": "chat", "stream": True, "max_tokens": 16,
            "messages": [{"role": "user", "content": f"held {i} " + "word " * 18}]}  # fmt: skip
    headers = {"Authorization": f"Bearer {KEYS['noisy']}"}
    async with http.stream("POST", "/v1/chat/completions", json=body, headers=headers) as response:
        async for _ in response.aiter_bytes():
            pass


async def run(held: list[int], freeze: bool) -> None:
    work = Path(tempfile.mkdtemp(prefix="interlock-gcpause-"))
    ports = [free_port(), free_port()]
    settings = orjson.dumps(ENGINE).decode()
    engines = await start(
        ["-m", "bench.routing.engines", "--ports", ",".join(map(str, ports)), "--settings", settings], ready="ready"
    )
    config = write_config(work, pool_manifests("pool", "chat", ports, {}, QUEUEING))
    port, ops = free_port(), free_port()
    keys = orjson.dumps({key: tenant for tenant, key in KEYS.items()}).decode()
    gateway = await start(
        ["-m", "bench.routing.gateway", "--config", str(config), "--port", str(port), "--ops-port",
         str(ops), "--keys", keys, "--gc-report", *([] if freeze else ["--no-freeze"])]
    )  # fmt: skip
    assert gateway.stdout is not None
    limits = httpx.Limits(max_connections=max(held) + 10)
    try:
        async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}", timeout=600, limits=limits) as http:
            await wait_ready(gateway, ops)
            print(f"startup heap {'frozen' if freeze else 'not frozen'}; one full collection of the gateway, ms")
            print(f"  {'held requests':>14} {'tracked':>9} {'frozen':>9} {'full collection':>16}")
            for n in held:
                tasks = [asyncio.create_task(_hold(http, i)) for i in range(n)]
                await asyncio.sleep(3 + n / 100)  # every request sent and in the gateway
                gateway.send_signal(signal.SIGUSR1)
                while not (raw := await asyncio.wait_for(gateway.stdout.readline(), 60)).startswith(b'{"tracked"'):
                    if not raw:
                        raise SystemExit("the gateway exited")
                line = orjson.loads(raw)
                times = " / ".join(f"{t:.1f}" for t in line["full_ms"])
                print(f"  {n:>14} {line['tracked']:>9,} {line['frozen']:>9,} {times:>16}", flush=True)
                for task in tasks:
                    task.cancel()
                await asyncio.gather(*tasks, return_exceptions=True)
                await asyncio.sleep(1)
    finally:
        await stop(gateway)
        await stop(engines)


def main() -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.routing.gcpause", description=__doc__)
    parser.add_argument("--held", default="0,50,700", help="requests held in the gateway, one measurement each")
    parser.add_argument("--no-freeze", action="store_true", help="the gateway without freezing its startup heap")
    args = parser.parse_args()
    asyncio.run(run([int(n) for n in args.held.split(",")], not args.no_freeze))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
