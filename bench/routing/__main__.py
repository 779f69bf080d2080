"""``python -m bench.routing``: round-robin, least-in-flight and Interlock's picker on simulated engines.

    .venv/bin/python -m bench.routing [--engines 4] [--seconds 20] [--only uniform,prefix,prefix-reuse,noisy]
        [--noisy-cases alone,apart,unfair,fair] [--quiet-client process|inline] [--headroom 1]
        [--headroom-target 0.005] [--picker JSON] [--policies ...] [--trace] [--timeline]

Three processes on a 2-core machine: N simulated engines in one (``bench.routing.engines``: the mock provider's
engine model, its times scaled as printed), the gateway in another (``bench.routing.gateway``), the open-loop load
here. Every run starts fresh engines (empty KV caches) and a gateway whose one backend lists the engines as
``spec.endpoints``; the three policies are that backend's ``spec.picker`` weights:

- round-robin: every weight 0, no scraping (all scores tie; ties rotate);
- least-in-flight: load weight 1 only, no scraping;
- picker: the CRD's defaults (load 1, queue 4, KV cache 1 above 80 % usage, prefix 8, engine metrics every second)
  and the engines' batch size (``batchSize: 4``: the operator who starts vLLM with ``--max-num-seqs 4`` knows it).

Workloads (seeded: every policy gets the same requests): uniform short prompts at 80 % of the pool's capacity;
prefix-heavy chat (12 apps with ~700-token system prompts, 8 live conversations each) at 80 % of the capacity the
pool has without prefix reuse, and at 80 % of its capacity with reuse (beyond what round-robin can serve); a noisy
tenant at 10x a quiet one's rate, together 1.3x the pool's capacity, with
and without fair queueing (``spec.queueing``), the quiet tenant alone for reference, and the noisy tenant on a pool
of its own (``apart``: the same machine load, no shared engines), which separates the machine's own contention
from the pool's. In every noisy-tenant case the quiet tenant's requests are sent and timed by a client process of
their own (``bench.routing.client``), as a quiet tenant's own program would; ``--quiet-client inline`` (or
``fair@inline`` in ``--noisy-cases``) sends them from the load generator's loop with the noisy tenant's ten times
as many, the measurement before, which also counts that loop's delays (bench/RESULTS.md, helper "quiet2").

``--trace`` adds, per case: where the engine-side time to first token of the slowest 2 % of requests went (waiting
for a batch slot or KV blocks, for the prefill lane, the prefill itself, how much was uncached) against the median,
the three slowest one by one, requests per engine, the CPU each process used (cores) and the machine's, and the
gateway's fair-queue waits per tenant (from its ``interlock_queue_wait_seconds``), and each process's time spent
runnable but waiting for a CPU. ``--timeline`` splits each quiet request's time to first token across the
processes (``bench.routing.timeline``: sending, the gateway's queue, reaching the engine, the engine, relaying,
receiving), with every process's event-loop lag and oldest-generation garbage collections.

``python -m bench.routing.simulate`` runs the prefix-heavy case in simulated time (the same requests, engine model,
prefix index and scorer; no processes), to compare policies on many seeds in seconds.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import signal
import socket
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import httpx
import orjson
import uvloop
import yaml

from bench.routing import timeline
from bench.routing.load import Outcome, run_load, summary
from bench.routing.workloads import Request, noisy_tenant, prefix_heavy, uniform
from interlock.gatewayconfig import compile_config
from interlock.resources import load_manifests
from interlock.resources.manifests import manifest_files

ROOT = Path(__file__).resolve().parents[2]
KEYS = {
    "app": "sk-il-bench-app-0000000000",
    "quiet": "sk-il-bench-quiet-00000000",
    "noisy": "sk-il-bench-noisy-00000000",
}
SLOTS = 4
DECODE_S = 0.03
PREFILL_S = 0.0003
OUTPUT_TOKENS = 16
ENGINE = {
    "models": ["llama"],  # one model's vllm:* series: rendering /metrics stalls the engines' shared event loop
    "engine_metrics": True,
    "max_num_seqs": SLOTS,
    "kv_cache_tokens": 4000,
    "block_size": 16,
    "prefill_s_per_token": PREFILL_S,
    "decode_s_per_token": DECODE_S,
    "stream_chunks": OUTPUT_TOKENS,
    "min_answer_tokens": OUTPUT_TOKENS,
    "max_answer_tokens": OUTPUT_TOKENS,
}
POLICIES: dict[str, dict[str, Any]] = {
    "round-robin": {"loadWeight": 0, "kvCacheWeight": 0, "prefixWeight": 0, "scrapeInterval": "0s"},
    "least-in-flight": {"loadWeight": 1, "kvCacheWeight": 0, "prefixWeight": 0, "scrapeInterval": "0s"},
    "picker": {},
}
CHUNKS = OUTPUT_TOKENS + 3  # the role chunk, the pieces, the finish and the usage chunk, each one decode step


_GIVEN: set[int] = set()


def free_port() -> int:
    """A free port not given before in this run (the kernel may hand out a just-closed one again)."""
    while True:
        with socket.socket() as sock:
            sock.bind(("127.0.0.1", 0))
            port = int(sock.getsockname()[1])
        if port not in _GIVEN:
            _GIVEN.add(port)
            return port


def pool_manifests(
    backend: str, model: str, ports: list[int], picker: dict[str, Any], queueing: dict[str, Any]
) -> list[dict[str, Any]]:
    """An ``LLMBackend`` over the engines on ``ports`` (model ``llama``) and the ``Route`` that sends ``model``
    to it."""
    return [
        {"apiVersion": "interlock.dev/v1alpha1", "kind": "LLMBackend",
         "metadata": {"name": backend, "namespace": "default"},
         "spec": {"provider": "vllm", "endpoints": [{"url": f"http://127.0.0.1:{p}/v1"} for p in ports],
                  "models": [{"name": "llama"}], "picker": picker, "queueing": queueing}},
        {"apiVersion": "interlock.dev/v1alpha1", "kind": "Route", "metadata": {"name": model, "namespace": "default"},
         "spec": {"model": model, "targets": [{"backend": backend, "model": "llama"}],
                  "timeouts": {"request": "300s", "firstToken": "300s"}}},
    ]  # fmt: skip


def write_config(work: Path, manifests: list[dict[str, Any]]) -> Path:
    """The manifests written to ``work/manifests`` and compiled, as the operator would, to ``work/config.json``."""
    (work / "manifests").mkdir(exist_ok=True)
    (work / "manifests" / "pool.yaml").write_text(yaml.safe_dump_all(manifests))
    loaded = load_manifests(manifest_files(work / "manifests"))
    (work / "config.json").write_bytes(compile_config(loaded.backends, loaded.routes).to_json())
    return work / "config.json"


async def wait_ready(gateway: asyncio.subprocess.Process, ops: int) -> None:
    """Until the gateway's ``/readyz`` on its ops port answers 200 (30 s at most); its output if it exits."""
    async with httpx.AsyncClient() as http:
        for _ in range(300):
            if gateway.returncode is not None:
                assert gateway.stdout is not None
                raise SystemExit(f"the gateway exited: {(await gateway.stdout.read()).decode()[-2000:]}")
            try:
                if (await http.get(f"http://127.0.0.1:{ops}/readyz")).status_code == 200:
                    return
            except httpx.TransportError:
                pass
            await asyncio.sleep(0.1)
    raise SystemExit("the gateway did not become ready")


def hold_s(prompt_tokens: int) -> float:
    """How long one request holds a batch slot with nothing cached: prefill, then every chunk's decode step."""
    return prompt_tokens * PREFILL_S + CHUNKS * DECODE_S


async def start(args: list[str], ready: str | None = None) -> asyncio.subprocess.Process:
    proc = await asyncio.create_subprocess_exec(
        sys.executable, *args, cwd=ROOT, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.STDOUT
    )
    if ready is not None:
        assert proc.stdout is not None
        async with asyncio.timeout(30):
            while (line := await proc.stdout.readline()) and ready not in line.decode():
                pass
    return proc


async def stop(proc: asyncio.subprocess.Process) -> None:
    if proc.returncode is None:
        proc.send_signal(signal.SIGTERM)
        try:
            async with asyncio.timeout(15):
                await proc.wait()
        except TimeoutError:
            proc.kill()


async def engines_metrics(ports: list[int]) -> tuple[float, float]:
    """Prefix-cache hits and queries (tokens) summed over the engines."""
    hits = queries = 0.0
    async with httpx.AsyncClient() as http:
        for port in ports:
            for line in (await http.get(f"http://127.0.0.1:{port}/metrics")).text.splitlines():
                if line.startswith("vllm:prefix_cache_hits_total{"):
                    hits += float(line.rsplit(" ", 1)[1])
                elif line.startswith("vllm:prefix_cache_queries_total{"):
                    queries += float(line.rsplit(" ", 1)[1])
    return hits, queries


def cpu_s(pid: int) -> float:
    """User + system CPU seconds of a process so far (Linux /proc)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def machine_cpu() -> tuple[int, int]:
    """Busy and total jiffies of the whole machine (every process, the other helpers' included)."""
    values = [int(v) for v in Path("/proc/stat").read_text().splitlines()[0].split()[1:]]
    idle = values[3] + values[4]
    return sum(values) - idle, sum(values)


def queue_waits(metrics_text: str) -> str:
    """Per tenant: requests that waited in the gateway's fair queue, their mean wait and the bucket of the p99."""
    counts: dict[str, float] = {}
    sums: dict[str, float] = {}
    buckets: dict[str, list[tuple[float, float]]] = {}
    for line in metrics_text.splitlines():
        if not line.startswith("interlock_queue_wait_seconds"):
            continue
        name, value = line.rsplit(" ", 1)
        tenant = name.split('tenant="', 1)[1].split('"', 1)[0] if 'tenant="' in name else ""
        if name.startswith("interlock_queue_wait_seconds_count"):
            counts[tenant] = float(value)
        elif name.startswith("interlock_queue_wait_seconds_sum"):
            sums[tenant] = float(value)
        elif name.startswith("interlock_queue_wait_seconds_bucket"):
            le = name.split('le="', 1)[1].split('"', 1)[0]
            buckets.setdefault(tenant, []).append((float(le), float(value)))
    parts = []
    for tenant, count in sorted(counts.items()):
        if not count:
            continue
        p99 = next((le for le, n in sorted(buckets.get(tenant, [])) if n >= 0.99 * count), float("inf"))
        mean = sums[tenant] / count
        parts.append(f"{tenant}: {count:.0f} waited, mean {mean * 1000:.0f} ms, p99 <= {p99 * 1000:.0f} ms")
    return ("\n    gateway queue: " + "; ".join(parts)) if parts else ""


TRACE: list[Path] = []
"""With ``--trace``: one file per case, the engines' per-request times (``bench.routing.engines --trace``)."""
TIMELINE: list[Path] = []
"""With ``--timeline``: the folder for each process's stamps (``bench.routing.timeline``)."""


async def load_split(
    root: str, requests: list[Request], models: dict[str, str], apart: frozenset[str], lag: timeline.LoopLag | None
) -> tuple[list[Outcome], float, dict[str, Any]]:
    """Run the load: the tenants in ``apart`` from a client process of their own (``bench.routing.client``), the
    rest from this process, on one schedule. The outcomes in ``requests``' order, the seconds until the last
    finished, and the client process's CPU seconds, run delay and loop lag."""
    mine = [i for i, r in enumerate(requests) if r.tenant not in apart]
    theirs = [i for i, r in enumerate(requests) if r.tenant in apart]
    if not theirs:
        together, elapsed = await run_load(root, requests, KEYS, models)
        return together, elapsed, {}
    start = time.monotonic() + 3.0  # the client process's imports and its first asyncio tick
    job = {
        "root": root, "start": start, "keys": KEYS, "models": models, "lag": lag is not None,
        "requests": [(requests[i].at, requests[i].tenant, requests[i].messages, requests[i].measured) for i in theirs],
    }  # fmt: skip
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "bench.routing.client", cwd=ROOT,
        stdin=asyncio.subprocess.PIPE, stdout=asyncio.subprocess.PIPE,
    )  # fmt: skip
    assert proc.stdin is not None
    assert proc.stdout is not None
    proc.stdin.write(orjson.dumps(job))
    await proc.stdin.drain()
    proc.stdin.close()
    async with asyncio.timeout(30):
        ready = await proc.stdout.readline()
    if ready.strip() != b"ready" or time.monotonic() > start:
        raise SystemExit(f"the client process was not ready in time: {ready!r}")
    outcomes: list[Outcome | None] = [None] * len(requests)
    if mine:
        own, _ = await run_load(root, [requests[i] for i in mine], KEYS, models, start=start)
        for i, o in zip(mine, own, strict=True):
            outcomes[i] = o
    answer = orjson.loads(await proc.stdout.read())
    await proc.wait()
    for i, o in zip(theirs, answer["outcomes"], strict=True):
        outcomes[i] = Outcome(**o)
    done = [o for o in outcomes if o is not None]
    last = max((o.sent + o.total for o in done if o.total is not None), default=start)
    info = {k: answer[k] for k in ("cpu_s", "run_delay_s", "lag", "gc")}
    return done, last - start, info


def tail_report(path: Path, share: float = 0.02) -> str:
    """Where the engine-side time to first token of the slowest ``share`` of requests went, against the median."""
    records = [orjson.loads(line) for line in path.read_bytes().splitlines() if line]
    if not records:
        return "    (no trace)"
    for r in records:
        r["ttft"] = r["first_step"] - r["arrived"]
        r["admit_wait"] = r["admitted"] - r["arrived"]
        r["lane_wait"] = r["prefill_start"] - r["admitted"] if "prefill_start" in r else 0.0
        r["prefill"] = r["prefill_end"] - r["prefill_start"] if "prefill_end" in r else 0.0
    records.sort(key=lambda r: r["ttft"])
    n = max(1, round(len(records) * share))
    lines = []
    for label, group in (("median 10%", records[len(records) * 45 // 100 : len(records) * 55 // 100 + 1]),
                         (f"slowest {share:.0%}", records[-n:])):  # fmt: skip
        k = len(group)
        mean = {f: sum(r[f] for r in group) / k for f in ("ttft", "admit_wait", "lane_wait", "prefill", "uncached")}
        cold = sum(1 for r in group if r["uncached"] > 300)
        lines.append(
            f"    engine-side {label:<12} n={k:<4} ttft {mean['ttft'] * 1000:6.0f} ms = slot/KV wait "
            f"{mean['admit_wait'] * 1000:5.0f} + lane wait {mean['lane_wait'] * 1000:5.0f} + prefill "
            f"{mean['prefill'] * 1000:5.0f} (+ first step); uncached {mean['uncached']:5.0f} tokens, "
            f"{cold} cold (>300 uncached)"
        )
    for r in records[-3:]:
        lines.append(
            f"      e{r['engine']} ttft {r['ttft'] * 1000:4.0f}: wait {r['admit_wait'] * 1000:4.0f} lane "
            f"{r['lane_wait'] * 1000:4.0f} prefill {r['prefill'] * 1000:4.0f}; at arrival {r['running_at']} running, "
            f"{r['queued_at']} queued, lane {'busy' if r['lane_busy_at'] else 'free'}; uncached {r['uncached']}"
        )
    per_engine = [sum(1 for r in records if r["engine"] == e) for e in sorted({r["engine"] for r in records})]
    lines.append(f"    requests per engine: {per_engine}")
    return "\n".join(lines)


async def run_case(
    work: Path,
    engines: int,
    picker: dict[str, Any],
    queueing: dict[str, Any],
    requests: list,
    *,
    noisy_apart: bool = False,
    client_apart: frozenset[str] = frozenset(),
) -> dict:
    """``noisy_apart``: the noisy tenant gets a pool of its own (as many engines again, in the same process), so
    its load shares the machine but not the quiet tenant's engines. ``client_apart``: these tenants' requests are
    sent from a load client process of their own (``bench.routing.client``)."""
    ports = [free_port() for _ in range(engines * (2 if noisy_apart else 1))]
    settings = orjson.dumps(ENGINE).decode()
    trace = []
    if TRACE:
        TRACE.append(work / f"trace-{len(TRACE)}.jsonl")
        trace = ["--trace", str(TRACE[-1])]
    stamps: dict[str, Path] = {}
    if TIMELINE:
        TIMELINE.append(work / f"timeline-{len(TIMELINE)}")
        TIMELINE[-1].mkdir()
        stamps = {"engines": TIMELINE[-1] / "engines.json", "gateway": TIMELINE[-1] / "gateway.json"}
        trace += ["--timeline", str(stamps["engines"])]
    engine_proc = await start(
        ["-m", "bench.routing.engines", "--ports", ",".join(map(str, ports)), "--settings", settings, *trace],
        ready="ready",
    )
    gateway_proc = None
    try:
        manifests = pool_manifests("pool", "chat", ports[:engines], picker, queueing)
        if noisy_apart:
            manifests += pool_manifests("pool-noisy", "chat-noisy", ports[engines:], picker, queueing)
        write_config(work, manifests)
        port, ops = free_port(), free_port()
        keys = orjson.dumps({key: tenant for tenant, key in KEYS.items()}).decode()
        gateway_proc = await start(
            ["-m", "bench.routing.gateway", "--config", str(work / "config.json"), "--port", str(port),
             "--ops-port", str(ops), "--keys", keys, *(["--timeline"] if stamps else [])]
        )  # fmt: skip
        await wait_ready(gateway_proc, ops)
        await asyncio.sleep(1.5)  # the picker's first scrape
        procs = {"engines": engine_proc.pid, "gateway": gateway_proc.pid, "load": os.getpid()}
        cpu_before, machine_before = {n: cpu_s(p) for n, p in procs.items()}, machine_cpu()
        delay_before = {n: timeline.run_delay_s(p) for n, p in procs.items()}
        models = {"noisy": "chat-noisy"} if noisy_apart else {}
        lag = timeline.LoopLag() if stamps else None
        if lag is not None:
            lag.start()
        outcomes, elapsed, client = await load_split(f"http://127.0.0.1:{port}", requests, models, client_apart, lag)
        lags = {"load": lag.stop()} if lag is not None else {}
        collections = {"load": lag.collections} if lag is not None else {}
        cpu = {n: (cpu_s(p) - cpu_before[n]) / elapsed for n, p in procs.items()}
        delay = {n: (timeline.run_delay_s(p) - delay_before[n]) / elapsed for n, p in procs.items()}
        if client:
            cpu["client"], delay["client"] = client["cpu_s"] / elapsed, client["run_delay_s"] / elapsed
            lags["client"] = [(t, v) for t, v in client["lag"]]
            collections["client"] = [(t, d) for t, d in client["gc"]]
        busy, total = (a - b for a, b in zip(machine_cpu(), machine_before, strict=True))
        hits, queries = await engines_metrics(ports)
        result = {"summary": summary(outcomes, elapsed), "hit_rate": hits / queries if queries else 0.0}
        if stamps:
            async with httpx.AsyncClient() as http:
                stamps["gateway"].write_bytes((await http.get(f"http://127.0.0.1:{port}/_timeline")).content)
        if TRACE:
            async with httpx.AsyncClient() as http:
                text = (await http.get(f"http://127.0.0.1:{ops}/metrics")).text
            result["cpu"] = (
                "    CPU, cores: " + ", ".join(f"{n} {c:.2f}" for n, c in cpu.items())
                + f"; the machine {busy / total * os.cpu_count():.2f} of {os.cpu_count()} busy (all processes)"
                + "\n    waiting for a CPU (run queue), s per s: " + ", ".join(f"{n} {d:.2f}" for n, d in delay.items())
                + queue_waits(text)
            )  # fmt: skip
    finally:
        if gateway_proc is not None:
            await stop(gateway_proc)
        await stop(engine_proc)
    if TRACE:
        result["trace"] = tail_report(TRACE[-1])
    if stamps:
        client_records = [{"tag": o.tag, "sent": o.sent, "first": o.first} for o in outcomes]
        result["timeline"] = timeline.parts_report(
            client_records, stamps["gateway"], stamps["engines"], lags, collections
        )
    return result


def row(name: str, result: dict, tenant: str | None = None) -> str:
    s = result["summary"]
    line = (f"  {name:<26} {s.ok:>5}/{s.requests:<5} {s.ttft_p50 * 1000:>8.0f} {s.ttft_p99 * 1000:>8.0f} "
            f"{s.throughput:>8.1f} {result['hit_rate'] * 100:>7.1f}%")  # fmt: skip
    if tenant is not None and tenant in s.by_tenant:
        p50, p99, _ok = s.by_tenant[tenant]
        line += f" {p50 * 1000:>10.0f} {p99 * 1000:>10.0f}"
        if "noisy" in s.by_tenant:
            line += f" {s.by_tenant['noisy'][0] * 1000:>10.0f}"
    if "trace" in result:
        line += "\n" + result["trace"] + "\n" + result.get("cpu", "")
    if "timeline" in result:
        line += "\n" + result["timeline"]
    return line


HEADER = f"  {'policy':<26} {'ok/sent':>11} {'TTFT p50':>8} {'TTFT p99':>8} {'req/s':>8} {'prefix':>8}"


async def main_async(args: argparse.Namespace) -> int:
    work = Path(tempfile.mkdtemp(prefix="interlock-routing-bench-"))
    POLICIES["picker"] = orjson.loads(args.picker)
    if args.trace:
        TRACE.append(work / "trace")
    if args.timeline:
        TIMELINE.append(work / "timeline")
    for name in set(POLICIES) - set(args.policies.split(",")):
        del POLICIES[name]
    n = args.engines
    only = set(args.only.split(","))
    short_hold = hold_s(30)
    capacity_uniform = n * SLOTS / short_hold
    print(f"{n} engines, each: {SLOTS} batch slots, {ENGINE['kv_cache_tokens']} KV tokens in blocks of 16, prefill "
          f"{PREFILL_S * 1e6:.0f} us per uncached token (one lane), decode {DECODE_S * 1000:.0f} ms per step; "
          f"{OUTPUT_TOKENS} output tokens. Times in ms.")  # fmt: skip
    if "uniform" in only:
        rate = 0.8 * capacity_uniform
        print(
            f"\nuniform short prompts, {rate:.1f} req/s for {args.seconds:g}s (80 % of ~{capacity_uniform:.0f} req/s)"
        )
        print(HEADER)
        requests = uniform(rate, args.seconds)
        for name, picker in POLICIES.items():
            print(row(name, await run_case(work, n, picker, {}, requests)), flush=True)
    # Without reuse, each engine's prefill lane computes ~800 tokens per request; with it, ~50.
    without_reuse = min(n / (800 * PREFILL_S), n * SLOTS / hold_s(800))
    with_reuse = n * SLOTS / hold_s(50)
    for key, capacity, what in (("prefix", without_reuse, "without"), ("prefix-reuse", with_reuse, "with")):
        if key not in only:
            continue
        rate = 0.8 * capacity
        print(f"\nprefix-heavy chat, {rate:.1f} req/s for {args.seconds:g}s after {args.warmup:g}s of warm-up "
              f"(80 % of the pool's ~{capacity:.0f} req/s {what} prefix reuse)")  # fmt: skip
        print(HEADER)
        requests = prefix_heavy(rate, args.seconds + args.warmup, apps=12, system_tokens=700, warmup=args.warmup)
        for name, picker in POLICIES.items():
            print(row(name, await run_case(work, n, picker, {}, requests)), flush=True)
    if "noisy" in only:
        quiet_rate = 1.3 * capacity_uniform / 11
        seconds = args.seconds
        print(f"\nnoisy tenant at {quiet_rate * 10:.1f} req/s, quiet at {quiet_rate:.1f} req/s, {seconds:g}s "
              f"(together 1.3x the pool's ~{capacity_uniform:.0f} req/s); picker")  # fmt: skip
        print(HEADER + f" {'quiet p50':>10} {'quiet p99':>10} {'noisy p50':>10}")
        fair = {"maxInflightPerEndpoint": SLOTS, "maxQueued": 100000, "maxQueuedPerTenant": 100000, "maxWait": "300s",
                "headroom": args.headroom, "headroomTarget": args.headroom_target}  # fmt: skip
        cases = [
            ("alone", "quiet alone", {}, noisy_tenant(quiet_rate, seconds, quiet_only=True), False),
            ("apart", "noisy on a pool of its own", fair, noisy_tenant(quiet_rate, seconds), True),
            ("unfair", "noisy, no fair queueing", {}, noisy_tenant(quiet_rate, seconds), False),
            ("fair", "noisy, fair queueing", fair, noisy_tenant(quiet_rate, seconds), False),
        ]
        for wanted in args.noisy_cases.split(","):
            wanted_key, _, client = wanted.partition("@")  # e.g. fair@inline: this case with the inline client
            client = client or args.quiet_client
            if client not in ("inline", "process"):
                raise SystemExit(f"--noisy-cases: {wanted!r}: the client is 'inline' or 'process'")
            for key, name, queueing, requests, apart in cases:
                if key == wanted_key:
                    result = await run_case(
                        work, n, orjson.loads(args.picker), queueing, requests, noisy_apart=apart,
                        client_apart=frozenset({"quiet"}) if client == "process" else frozenset(),
                    )  # fmt: skip
                    label = name + (" (quiet inline)" if client == "inline" else "")
                    print(row(label, result, tenant="quiet"), flush=True)
    print(f"\nlogs and configs: {work}", file=sys.stderr)
    return 0


def main() -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.routing", description=__doc__)
    parser.add_argument("--engines", type=int, default=4)
    parser.add_argument("--seconds", type=float, default=20)
    parser.add_argument("--only", default="uniform,prefix,prefix-reuse,noisy")
    parser.add_argument("--warmup", type=float, default=5, help="prefix-heavy: seconds sent but not measured")
    parser.add_argument("--policies", default=",".join(POLICIES), help="which of the policies to run")
    parser.add_argument(
        "--picker",
        default=orjson.dumps({"batchSize": SLOTS}).decode(),
        help="the picker's spec.picker, as JSON (default: the CRD's defaults and the engines' batch size, as the "
        "operator who started them with --max-num-seqs would write it)",
    )
    parser.add_argument("--headroom", type=int, default=1, help="noisy, fair queueing: spec.queueing.headroom")
    parser.add_argument(
        "--headroom-target",
        type=float,
        default=0.005,
        help="noisy, fair queueing: spec.queueing.headroomTarget (0: the fixed headroom only, the policy before it)",
    )
    parser.add_argument(
        "--noisy-cases",
        default="alone,apart,unfair,fair",
        help="which noisy-tenant cases to run, in this order (repeats allowed); a case@inline or case@process "
        "sends the quiet tenant's requests as that case says instead of as --quiet-client does",
    )
    parser.add_argument("--trace", action="store_true", help="per case: where the engines' slowest requests' time went")
    parser.add_argument(
        "--timeline",
        action="store_true",
        help="noisy: split the quiet tenant's time to first token across the processes (bench.routing.timeline)",
    )
    parser.add_argument(
        "--quiet-client",
        choices=("inline", "process"),
        default="process",
        help="noisy: send and time the quiet tenant's requests from a client process of its own (process: what a "
        "quiet client of its own sees), or from the load generator's event loop with the noisy tenant's (inline: "
        "the measurement before 2026-12-06 evening, which counts the load generator's own delays)",
    )
    return uvloop.run(main_async(parser.parse_args()))


if __name__ == "__main__":
    raise SystemExit(main())
