"""What the endpoint picker costs (issue 16: under 20 us of gateway CPU per request).

    .venv/bin/python bench/gatewaybench/picker.py [--requests 4000] [--rounds 8]

Two figures:

1. In process: microseconds per pick (``EndpointPool.prefix`` + ``EndpointPool.pick``: hash the prompt's prefix,
   look it up, score the endpoints, remember the blocks), with 2 and 8 endpoints, prompts of 2 KB and 16 KB
   (the hash covers at most 16 KB), fresh engine metrics, a warm prefix index of 50,000 blocks; each once with
   the index unbounded and once with every endpoint's share bounded (``PrefixIndex.set_limit``, 2,000 blocks: a
   400,000-token KV cache at 240 tokens per 1 KB block, as the gateway sets it once it has scraped the engine).
2. End to end: two gateway processes on the same two simulated engines (``python -m interlock.mockprovider
   --engine-metrics``), one with the backend's ``url`` (no pool: the picker is not on the path), one with
   ``endpoints`` (the picker chooses per request, engine metrics scraped every second). One keep-alive connection
   each, unary chat completions with a 2 KB system prompt, alternating rounds; the figure is gateway CPU per
   request (``/proc``), and the difference. The machine's noise (see bench/README.md) is of the same order as the
   difference: read (1) for the picker's own cost.
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import sys
import tempfile
import time
from pathlib import Path

import orjson
import uvloop

sys.path.insert(0, str(Path(__file__).resolve().parent))
from enforcement import Connection, cpu_seconds, free_port, measure, spawn, wait_ready
from procs import stop_processes

from interlock.gateway.pool import EndpointPool
from interlock.gateway.pool.pool import PickerSettings
from interlock.gateway.upstream.client import BackendClient

SYSTEM = "You are the support assistant of a hosting company; answer in two sentences, cite the docs. " * 22
KEY = "sk-il-bench-static-key"


def body(system: str, question: str) -> bytes:
    messages = [{"role": "system", "content": system}, {"role": "user", "content": question}]
    return orjson.dumps({"model": "chat", "messages": messages, "max_tokens": 16})


def in_process(
    endpoints: int, prompt_bytes: int, picks: int = 5000, repeats: int = 7, *, bounded: bool = False
) -> tuple[float, float]:
    """Microseconds per pick: the best and the median of ``repeats`` runs (the best is the picker's own cost; the
    median shows what the shared machine added)."""

    def client(url: str) -> BackendClient:
        return BackendClient(name="b", base_url=url, auth_headers={}, connect_timeout_s=1)

    pool = EndpointPool("b", client, PickerSettings())
    pool.set_urls([f"http://10.0.0.{i}:8000/v1" for i in range(1, endpoints + 1)])
    now = time.monotonic()
    for i, endpoint in enumerate(pool.endpoints):
        endpoint.scraped_at, endpoint.external_load, endpoint.kv_usage = now + 3600, float(i % 3), 0.3
        if bounded:
            pool.index.set_limit(endpoint.bit, 2000)
    system = (SYSTEM * (prompt_bytes // len(SYSTEM) + 1))[:prompt_bytes]
    conversations = [body(f"{c} {system}", "warm") for c in range(200)]
    for c, b in enumerate(conversations):  # a warm index: 200 conversations' blocks
        pool.pick(pool.prefix(b))
        if c % 50 == 0:
            pool.pick(pool.prefix(body(f"other {c} {system}", "x")))
    requests = [body(f"{c % 200} {system}", f"question {c}") for c in range(1000)]
    runs = []
    for _ in range(repeats):
        start = time.process_time()  # CPU time: another process taking the core does not count
        for i in range(picks):
            pool.pick(pool.prefix(requests[i % 1000]))
        runs.append((time.process_time() - start) / picks * 1e6)
    return min(runs), statistics.median(runs)


async def end_to_end(args: argparse.Namespace) -> None:
    work = Path(tempfile.mkdtemp(prefix="interlock-picker-bench-"))
    procs: list[asyncio.subprocess.Process] = []
    py = sys.executable
    try:
        engines = [free_port(), free_port()]
        for port in engines:
            cmd = [py, "-m", "interlock.mockprovider", "--port", str(port), "--engine-metrics"]
            procs.append(await spawn(cmd, {}, work / f"engine-{port}.log"))
            await wait_ready(f"http://127.0.0.1:{port}/health", procs[-1])
        urls = [f"http://127.0.0.1:{port}/v1" for port in engines]
        model = {"m1": {"inputPerMillion": 1.0, "outputPerMillion": 2.0}}
        route = {"chat": {"name": "chat", "model": "chat", "targets": [{"backend": "b", "model": "m1"}]}}
        backends = {
            "url": {"name": "b", "provider": "vllm", "url": urls[0], "models": model},
            "pool": {
                "name": "b",
                "provider": "vllm",
                "url": urls[0],
                "discovery": {"mode": "static", "endpoints": urls},
                "models": model,
            },
        }
        connections: dict[str, Connection] = {}
        pids: dict[str, int] = {}
        for name, backend in backends.items():
            config = work / f"gateway-{name}.json"
            config.write_bytes(orjson.dumps({"schemaVersion": 1, "backends": {"b": backend}, "routes": route}))
            port, ops = free_port(), free_port()
            cmd = [py, "-m", "interlock", "--log-level", "WARNING", "gateway", "--config", str(config),
                   "--port", str(port), "--ops-port", str(ops)]  # fmt: skip
            env = {"INTERLOCK_GATEWAY_API_KEYS": f'["{KEY}"]', "INTERLOCK_GATEWAY_REDIS_URL": "", "REDIS_URL": ""}
            procs.append(await spawn(cmd, env, work / f"gateway-{name}.log"))
            pids[name] = procs[-1].pid
            await wait_ready(f"http://127.0.0.1:{ops}/readyz", procs[-1])
            connections[name] = Connection(port, KEY)
            connections[name].request = connections[
                name
            ].request.replace(  # the 2 KB system prompt
                connections[name].request[connections[name].request.index(b"\r\n\r\n") :], b""
            )
            payload = body(SYSTEM, "How do I rotate my keys?")
            head = connections[name].request.split(b"content-length:")[0]
            connections[name].request = head + b"content-length: %d\r\n\r\n%s" % (len(payload), payload)
            await connections[name].open()
        for conn in connections.values():
            for _ in range(args.warmup):
                status, answer = await conn.send()
                if status != 200:
                    raise SystemExit(f"warm-up got HTTP {status}: {answer[:300]!r}")
        before = {name: cpu_seconds(pid) for name, pid in pids.items()}
        samples = await measure(connections, args.requests, args.rounds, 0)
        cpu = {name: cpu_seconds(pid) - before[name] for name, pid in pids.items()}
        for conn in connections.values():
            await conn.close()
        per = {name: cpu[name] / len(samples[name]) * 1e6 for name in samples}
        print(f"{'variant':<6} {'requests':>8} {'p50 ms':>8} {'gateway CPU/request':>20}")
        for name, values in samples.items():
            print(f"{name:<6} {len(values):>8} {statistics.median(values) * 1000:>8.3f} {per[name]:>18.0f}us")
        print(f"pool - url: {per['pool'] - per['url']:+.0f}us of gateway CPU per request")
    finally:
        await stop_processes(procs)
        print(f"logs: {work}", file=sys.stderr)


def main() -> int:
    parser = argparse.ArgumentParser(prog="bench/gatewaybench/picker.py", description=__doc__)
    parser.add_argument("--requests", type=int, default=4000, help="measured requests per variant")
    parser.add_argument("--rounds", type=int, default=8)
    parser.add_argument("--warmup", type=int, default=300)
    args = parser.parse_args()
    print("in process, per pick (prefix hash + lookup + score + remember), best / median of 7 runs:")
    for endpoints in (2, 8):
        for size in (2048, 16384):
            for bounded in (False, True):
                best, median = in_process(endpoints, size, bounded=bounded)
                index = "bounded index" if bounded else "unbounded"
                print(f"  {endpoints} endpoints, {size // 1024:>2} KB prompt, {index:<13}: {best:6.2f} us / "
                      f"{median:6.2f} us")  # fmt: skip
    uvloop.run(end_to_end(args))
    return 0


if __name__ == "__main__":
    sys.exit(main())
