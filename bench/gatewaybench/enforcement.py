"""The cost of enforcement: a gateway with auth from the control plane's snapshot, tenant limits (requests/min,
tokens/min, concurrency, budget) and usage metering (events through the spool to the control plane) against the
same gateway with a static key and none of it, in the same run, on the same upstream.

    .venv/bin/python bench/gatewaybench/enforcement.py [--requests 4000] [--rounds 8] [--redis URL]

(standalone: it imports nothing from ``gatewaybench``, and the processes it starts get no ``PYTHONPATH``).

Processes: the mock upstream, the real control plane (``interlock api`` on a throwaway SQLite file) and one gateway
process per variant. One keep-alive connection sends unary chat completions back to back (closed loop, so latency
is not queueing), alternating between the variants round by round so machine noise falls on each alike. The
figure is the p50 (and p90) of each variant, and the difference to "off": what enforcement adds to a request.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import socket
import statistics
import sys
import tempfile
import time
from collections.abc import Mapping
from pathlib import Path

import httpx
import orjson
import uvloop
from procs import stop_processes  # this script's folder is on sys.path (run as a script)

from interlock.contract.gatewaycred import mint_gateway_credential

ROOT = Path(__file__).resolve().parents[2]
ADMIN = "bench-admin-token-0123456789"
SIGNING_KEY = "bench-gateway-signing-key-0123456789abcdef"
STATIC_KEY = "sk-il-bench-static-key"
BODY = orjson.dumps({"model": "chat", "messages": [{"role": "user", "content": "Hello there"}], "max_tokens": 16})


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


async def spawn(args: list[str], env: Mapping[str, str], log: Path) -> asyncio.subprocess.Process:
    with log.open("ab") as out:
        return await asyncio.create_subprocess_exec(*args, cwd=ROOT, env={**os.environ, **env}, stdout=out, stderr=out)


async def wait_ready(url: str, proc: asyncio.subprocess.Process, headers: Mapping[str, str] | None = None) -> None:
    async with httpx.AsyncClient() as http:
        for _ in range(600):
            if proc.returncode is not None:
                raise SystemExit(f"{url} exited with {proc.returncode}")
            try:
                if (await http.get(url, headers=headers)).status_code == 200:
                    return
            except httpx.TransportError:
                pass
            await asyncio.sleep(0.1)
    raise SystemExit(f"{url} did not become ready")


class Connection:
    """One keep-alive HTTP/1.1 connection with the least client work per request (the same for every variant)."""

    def __init__(self, port: int, key: str) -> None:
        self.port = port
        self.request = (
            b"POST /v1/chat/completions HTTP/1.1\r\nhost: 127.0.0.1\r\ncontent-type: application/json\r\n"
            b"authorization: Bearer %s\r\ncontent-length: %d\r\n\r\n%s" % (key.encode(), len(BODY), BODY)
        )
        self.reader: asyncio.StreamReader | None = None
        self.writer: asyncio.StreamWriter | None = None

    async def open(self) -> None:
        self.reader, self.writer = await asyncio.open_connection("127.0.0.1", self.port)

    async def send(self) -> tuple[int, bytes]:
        assert self.reader is not None
        assert self.writer is not None
        self.writer.write(self.request)
        head = await self.reader.readuntil(b"\r\n\r\n")
        status = int(head[9:12])
        length = 0
        for line in head.split(b"\r\n"):
            if line[:15].lower() == b"content-length:":
                length = int(line[15:])
        return status, await self.reader.readexactly(length)

    async def close(self) -> None:
        if self.writer is not None:
            self.writer.close()
            await self.writer.wait_closed()


async def measure(variants: dict[str, Connection], requests: int, rounds: int, warmup: int) -> dict[str, list[float]]:
    samples: dict[str, list[float]] = {name: [] for name in variants}
    per_round = max(1, requests // rounds)
    for conn in variants.values():
        for _ in range(warmup):
            status, body = await conn.send()
            if status != 200:
                raise SystemExit(f"warm-up got HTTP {status}: {body[:300]!r}")
    for _ in range(rounds):
        for name, conn in variants.items():
            await conn.close()  # a fresh connection per round: the server drops idle ones after 5 s
            await conn.open()
            out = samples[name]
            for _ in range(per_round):
                start = time.perf_counter()
                status, body = await conn.send()
                out.append(time.perf_counter() - start)
                if status != 200:
                    raise SystemExit(f"{name}: HTTP {status}: {body[:300]!r}")
    return samples


def cpu_seconds(pid: int) -> float:
    """User + system CPU of a process (all its threads), from /proc."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def quantile(values: list[float], q: float) -> float:
    return statistics.quantiles(values, n=100, method="inclusive")[int(q * 100) - 1] if len(values) > 1 else values[0]


async def run(args: argparse.Namespace) -> int:
    work = Path(tempfile.mkdtemp(prefix="interlock-enforcement-bench-"))
    procs: list[asyncio.subprocess.Process] = []
    py = sys.executable
    try:
        mock_port, cp_port = free_port(), free_port()
        procs.append(await spawn([py, "-m", "interlock.mockprovider", "--port", str(mock_port)], {}, work / "mock.log"))
        cp_env = {
            "DATABASE_URL": f"sqlite+aiosqlite:///{work}/cp.sqlite",
            "INTERLOCK_API_ADMIN_TOKEN": ADMIN,
            "INTERLOCK_API_GATEWAY_SIGNING_KEY": SIGNING_KEY,
        }
        procs.append(
            await spawn([py, "-m", "interlock", "api", "--migrate", "--port", str(cp_port)], cp_env, work / "cp.log")
        )
        await wait_ready(f"http://127.0.0.1:{mock_port}/health", procs[0])
        admin = {"authorization": f"Bearer {ADMIN}"}
        await wait_ready(f"http://127.0.0.1:{cp_port}/v1/tenants", procs[1], admin)
        async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{cp_port}", headers=admin) as http:
            tenant = (await http.post("/v1/tenants", json={"name": "bench"})).json()
            quota = {
                "requests_per_minute": 100_000_000,
                "tokens_per_minute": 1_000_000_000,
                "max_concurrency": 1000,
                "monthly_budget_usd": 1_000_000_000,
            }
            (await http.put(f"/v1/tenants/{tenant['id']}/quota", json=quota)).raise_for_status()
            key = (await http.post(f"/v1/tenants/{tenant['id']}/keys", json={"name": "bench"})).json()["key"]

        config = work / "gateway.json"
        config.write_bytes(
            orjson.dumps(
                {
                    "schemaVersion": 1,
                    "backends": {
                        "mock": {
                            "name": "mock",
                            "provider": "openai",
                            "url": f"http://127.0.0.1:{mock_port}/v1",
                            "models": {"m1": {"inputPerMillion": 1.0, "outputPerMillion": 2.0}},
                        }
                    },
                    "routes": {
                        "chat": {"name": "chat", "model": "chat", "targets": [{"backend": "mock", "model": "m1"}]}
                    },
                }
            )
        )
        credential = mint_gateway_credential(SIGNING_KEY.encode(), "bench/gw")
        variants: dict[str, tuple[dict[str, str], str]] = {
            "off": ({"INTERLOCK_GATEWAY_API_KEYS": f'["{STATIC_KEY}"]'}, STATIC_KEY),
            "on": (
                {
                    "INTERLOCK_GATEWAY_CONTROL_PLANE_URL": f"http://127.0.0.1:{cp_port}",
                    "INTERLOCK_GATEWAY_CONTROL_PLANE_TOKEN": credential,
                    "INTERLOCK_GATEWAY_GATEWAY_ID": "bench/gw/on",
                    "INTERLOCK_GATEWAY_SPOOL_PATH": str(work / "spool-on"),
                },
                key,
            ),
        }
        if args.redis:
            variants["on+redis"] = (
                {
                    **variants["on"][0],
                    "INTERLOCK_GATEWAY_GATEWAY_ID": "bench/gw/redis",
                    "INTERLOCK_GATEWAY_SPOOL_PATH": str(work / "spool-redis"),
                    "REDIS_URL": args.redis,
                    "INTERLOCK_GATEWAY_REDIS_KEY_PREFIX": f"interlock-bench:{os.getpid()}:",
                },
                key,
            )
        connections: dict[str, Connection] = {}
        pids: dict[str, int] = {"control plane": procs[1].pid}
        ops_ports: dict[str, int] = {}
        for name, (env, client_key) in variants.items():
            port, ops_ports[name] = free_port(), free_port()
            redis = env.get("REDIS_URL", "")  # empty: memory buckets, whatever the environment says
            env = {**env, "INTERLOCK_GATEWAY_REDIS_URL": redis, "REDIS_URL": redis}
            proc = await spawn(
                [
                    py,
                    "-m",
                    "interlock",
                    "--log-level",
                    "WARNING",
                    "gateway",
                    "--config",
                    str(config),
                    "--port",
                    str(port),
                    "--ops-port",
                    str(ops_ports[name]),
                ],
                env,
                work / f"gateway-{name}.log",
            )
            procs.append(proc)
            pids[name] = proc.pid
            await wait_ready(f"http://127.0.0.1:{ops_ports[name]}/readyz", proc)
            connections[name] = Connection(port, client_key)
            await connections[name].open()
        direct = Connection(mock_port, "unused")  # the upstream alone, for reference
        await direct.open()
        connections = {"direct": direct, **connections}

        for conn in connections.values():  # warm-up outside the CPU accounting
            for _ in range(args.warmup):
                await conn.send()
        await asyncio.sleep(1.0)  # let the warm-up's usage events be sent
        cpu_before = {name: cpu_seconds(pid) for name, pid in pids.items()}
        samples = await measure(connections, args.requests, args.rounds, 0)
        await asyncio.sleep(1.0)  # the last events' group commit and batch
        cpu = {name: cpu_seconds(pid) - cpu_before[name] for name, pid in pids.items()}
        for conn in connections.values():
            await conn.close()
        p50 = {name: statistics.median(values) * 1000 for name, values in samples.items()}
        p90 = {name: quantile(values, 0.9) * 1000 for name, values in samples.items()}
        print(
            f"{'variant':<10} {'requests':>8} {'p50 ms':>8} {'p90 ms':>8} {'p50 vs off':>11} {'p50 vs direct':>14}"
            f" {'gateway CPU/request':>20}"
        )
        for name, values in samples.items():
            per_request = f"{cpu[name] / len(values) * 1e6:.0f}us" if name in cpu else "-"
            print(
                f"{name:<10} {len(values):>8} {p50[name]:>8.3f} {p90[name]:>8.3f} "
                f"{(p50[name] - p50['off']) * 1000:>+9.0f}us {(p50[name] - p50['direct']) * 1000:>+12.0f}us"
                f" {per_request:>20}"
            )
        measured = sum(len(v) for n, v in samples.items() if n not in ("direct", "off"))
        print(f"control plane CPU per usage event ingested: {cpu['control plane'] / measured * 1e6:.0f}us")
        for name in samples:
            if name in cpu and name != "off":
                added = (cpu[name] / len(samples[name]) - cpu["off"] / len(samples["off"])) * 1e6
                print(f"enforcement CPU ({name} - off): {added:+.0f}us per request")
        async with httpx.AsyncClient() as http:
            for name in variants:
                if name == "off":
                    continue
                ready = (await http.get(f"http://127.0.0.1:{ops_ports[name]}/readyz")).json()
                usage = ready["control_plane"]["usage"]
                print(f"{name}: usage events sent {usage['sent']}, pending {usage['pending']}")
        return 0
    finally:
        await stop_processes(procs)
        print(f"logs: {work}", file=sys.stderr)


def main() -> int:
    parser = argparse.ArgumentParser(prog="bench/gatewaybench/enforcement.py", description=__doc__)
    parser.add_argument("--requests", type=int, default=4000, help="measured requests per variant")
    parser.add_argument("--rounds", type=int, default=8)
    parser.add_argument("--warmup", type=int, default=300)
    parser.add_argument("--redis", default=None, help="also measure with the buckets in this Redis")
    return uvloop.run(run(parser.parse_args()))


if __name__ == "__main__":
    sys.exit(main())
