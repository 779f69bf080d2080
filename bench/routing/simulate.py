"""``python -m bench.routing.simulate``: the prefix-heavy case of ``bench.routing``, as a discrete-event simulation.

    .venv/bin/python -m bench.routing.simulate [--seeds 2,3,...] [--seconds 20] [--kv-tokens 4000] [--policies ...]
        [--slowest]

The same requests (``workloads.prefix_heavy`` at the same rate; seed 2 is the benchmark's own), the same engines
(4 batch slots, admission first come first served when the slot and the KV blocks are there, the mock's
``KVCache`` itself with its LRU eviction, one prefill lane at 300 us per uncached token, then 18 decode steps of
30 ms before the slot frees) and, for the picker, the gateway's own ``prefix_hashes``, ``PrefixIndex`` and
``scorer.pick``, in simulated time: no processes, no sockets, no CPU contention, so a policy is measured in
seconds, on many seeds, instead of a locked two-minute run on one. Time to first token is the engine's: waiting
for a slot and KV blocks, waiting for the prefill lane, and the prefill (the benchmark's first SSE chunk comes
right after the prefill, plus a millisecond or two of HTTP).

Besides the three policies of ``bench.routing`` (the picker with its defaults and ``batchSize: 4``; its engine
metrics are current here, a scrape old there) it runs candidates for the p99 (bench/RESULTS.md, helper
"prefixp99"):

- ``picker-unbounded``: the picker with a prefix index that never forgets while it has room (the gateway until
  2026-12-06, and still where an engine does not say its KV cache's size);
- ``ttft``: an endpoint's score is its predicted time to first token, from what a gateway can know: the uncached
  bytes of the requests it sent there that have no first token yet (each estimated when picked) plus this
  request's own uncached bytes there (from the prefix index), at the workload's prefill time per byte, plus, with
  every slot taken, ``(load + 1 - batch) x hold / batch`` of slot wait (``hold``: a warm request's time in its
  slot);
- ``ttft-lru``: the same, with an index that guesses evictions: per endpoint, the blocks it was sent, the least
  recently sent dropped beyond 1.2x the engine's KV capacity (in body bytes);
- ``ttft-true-cache``: the same, with the engines' true caches (an index that sees every eviction, as an engine's
  KV-cache events would tell it);
- ``ttft-exact``: true caches and the true time until a slot frees (no gateway knows when its requests end);
- ``homes-2-online``: two homes per prefix, as a gateway could place them (``OnlineHomes``);
- ``homes-2``: clairvoyant placement: every app has two fixed home engines (app a on a and a+1 mod 4), each warmed
  by the app's first requests, and each request goes to the home with the least true time to first token. A bound
  for "give hot prefixes a second home".
"""

from __future__ import annotations

import abc
import argparse
import dataclasses
import heapq
import itertools
import math
import statistics
from collections import OrderedDict, deque
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import cast

import orjson

from bench.routing.__main__ import CHUNKS, DECODE_S, ENGINE, OUTPUT_TOKENS, PREFILL_S, SLOTS, hold_s
from bench.routing.workloads import prefix_heavy
from interlock.gateway.pool.prefix import PrefixIndex, prefix_hashes
from interlock.gateway.pool.scorer import PickerWeights, pick
from interlock.gateway.pool.upkeep import INDEX_SHARE_OF_KV
from interlock.mockprovider.kv_cache import Allocation, KVCache, block_hashes
from interlock.mockprovider.tokens import REPLY_PRIMING, message_tokens, prompt_ids

ENGINES = 4
BLOCK = 16
KV_TOKENS = cast(int, ENGINE["kv_cache_tokens"])
HOLD_AFTER_PREFILL_S = (CHUNKS - 1) * DECODE_S  # the first chunk goes out right after the prefill
BLOCK_BYTES, MAX_BLOCKS = 1024, 32  # the picker's defaults (PickerSettings)
COLD = 300  # uncached tokens above which a request counts as cold (as bench.routing --trace)


@dataclass
class Request:
    at: float
    measured: bool
    app: int
    prompt_tokens: int
    hashes: list[int]  # the engine's block hashes
    private: int  # blocks beyond the hashed ones (partial prompt block, answer)
    body: bytes  # what the gateway sends upstream
    message_bytes: int  # from the "messages" key on: what the prefix hash reads
    engine: int = -1
    estimate: float = 0.0  # uncached bytes the policy expected on its engine
    allocation: Allocation | None = None
    uncached: int = 0
    admit_wait: float = 0.0
    lane_wait: float = 0.0
    ttft: float = 0.0


def requests(seed: int, seconds: float = 20) -> list[Request]:
    """``bench.routing``'s prefix-heavy requests (80 % of the pool's capacity without reuse, ``seconds`` after 5 s)."""
    capacity = min(ENGINES / (800 * PREFILL_S), ENGINES * SLOTS / hold_s(800))
    out = []
    for r in prefix_heavy(0.8 * capacity, seconds + 5, apps=12, system_tokens=700, warmup=5, seed=seed):
        prompt = sum(message_tokens(text) for _, text in r.messages) + REPLY_PRIMING
        hashes = block_hashes(prompt_ids(r.messages)[:prompt], BLOCK)
        private = max(0, math.ceil((prompt + OUTPUT_TOKENS) / BLOCK) - len(hashes))
        messages = [{"role": role, "content": text} for role, text in r.messages]
        body = orjson.dumps({"model": "llama", "messages": messages, "stream": True, "max_tokens": OUTPUT_TOKENS})
        app = int(r.messages[0][1].split(".", 1)[0].removeprefix("App "))
        out.append(Request(r.at, r.measured, app, prompt, hashes, private, body, len(body) - body.find(b'"messages"')))
    return out


@dataclass
class Engine:
    """One simulated engine, and what the gateway knows of it (``inflight``, ``pending``, ``ends``)."""

    slot: int
    kv_blocks: int
    cache: KVCache = field(init=False)
    running: int = 0
    queue: deque[int] = field(default_factory=deque)  # request ids, waiting for a slot or KV blocks
    lane_free_at: float = 0.0
    inflight: int = 0
    pending: dict[int, float] = field(default_factory=dict)  # request id -> estimated uncached bytes, no token yet
    ends: dict[int, float] = field(default_factory=dict)  # request id -> when it leaves its slot (expected, if queued)
    # scorer.Candidate
    external_load: float = 0.0
    batch_size: float = float(SLOTS)

    def __post_init__(self) -> None:
        self.cache = KVCache(self.kv_blocks, BLOCK)

    @property
    def kv_usage(self) -> float:
        return self.cache.usage

    def admissible(self, r: Request) -> bool:
        return self.running < SLOTS and (self.running == 0 or self.cache.fits(r.hashes, r.private))

    def uncached_tokens(self, r: Request) -> int:
        return r.prompt_tokens - min(self.cache.cached_prefix(r.hashes) * BLOCK, r.prompt_tokens - 1)

    def slot_wait(self, now: float) -> float:
        """The time until a slot frees for one more request (0 with a slot free): exact for the running requests,
        expected (picked + estimated prefill + hold) for those queued."""
        if self.inflight < SLOTS:
            return 0.0
        return max(0.0, sorted(self.ends.values())[self.inflight - SLOTS] - now)


class Policy(abc.ABC):
    """Picks an engine for a request; ``index`` is the gateway's prefix index, kept by the simulation. Each policy
    compared is a subclass with its own ``choose``."""

    def __init__(self, s_per_byte: float) -> None:
        self.index = PrefixIndex(1 << 16)
        self.turn = 0
        self.s_per_byte = s_per_byte

    def depths(self, engines: Sequence[Engine], hashes: list[int]) -> dict[int, int]:
        depths: dict[int, int] = {}
        self.index.match(hashes, (1 << len(engines)) - 1, depths)
        return depths

    @abc.abstractmethod
    def choose(self, engines: Sequence[Engine], r: Request, hashes: list[int], now: float) -> int:
        """The index of the engine ``r`` goes to."""


class Weights(Policy):
    """``scorer.pick`` with these weights: round-robin (all 0), least-in-flight (load 1), the picker (defaults).

    With ``kv_tokens``, each engine's share of the prefix index is bounded as the gateway bounds it once it has
    scraped the engine's cache size (``PoolUpkeep._bound_prefix_index``): ``INDEX_SHARE_OF_KV`` times the cache,
    in blocks of request bytes at the workload's tokens per block (the gateway measures it; here it comes from the
    prefill time per byte, within 5 % of what the gateway would measure on this workload).
    """

    def __init__(
        self, s_per_byte: float, weights: PickerWeights, *, prefix: bool, use_engine: bool, kv_tokens: int = 0
    ) -> None:
        super().__init__(s_per_byte)
        self.weights, self.prefix, self.use_engine = weights, prefix, use_engine
        if kv_tokens:
            tokens_per_block = BLOCK_BYTES * s_per_byte / PREFILL_S
            for slot in range(ENGINES):
                self.index.set_limit(1 << slot, int(kv_tokens * INDEX_SHARE_OF_KV / tokens_per_block))

    def choose(self, engines: Sequence[Engine], r: Request, hashes: list[int], now: float) -> int:
        matched: dict[int, float] = {}
        if self.prefix:
            matched = {slot: depth / len(hashes) for slot, depth in self.depths(engines, hashes).items()}
        return pick(engines, matched, self.weights, use_engine=self.use_engine, start=self.turn)


class PredictedTTFT(Policy):
    """Lowest predicted time to first token: slot wait + (uncached bytes queued for the lane ahead + this request's
    uncached bytes there) x prefill time per byte.

    ``cache``: how this request's uncached bytes on an engine are told: ``index`` (the gateway's ``PrefixIndex``,
    which never forgets while it has room), ``lru`` (per endpoint, the blocks it was sent, least recently sent out
    first beyond ``lru_share`` of the engine's KV capacity in body bytes: an index that guesses evictions), or
    ``true`` (the engine's own cache: an index that sees every eviction, as engine KV events would tell it).
    ``true_wait``: the true time until a slot frees, instead of ``(load + 1 - batch) x hold / batch``.
    """

    def __init__(
        self, s_per_byte: float, kv_tokens: int, *, cache: str = "index", true_wait: bool = False,
        lru_share: float = 1.2,
    ) -> None:  # fmt: skip
        super().__init__(s_per_byte)
        self.cache, self.true_wait = cache, true_wait
        self.bytes_per_token = PREFILL_S / s_per_byte
        self.lru_limit = max(1, int(kv_tokens * lru_share * self.bytes_per_token / BLOCK_BYTES))
        self.lru: list[OrderedDict[int, None]] = [OrderedDict() for _ in range(ENGINES)]

    def _lru_depth(self, i: int, hashes: list[int]) -> int:
        seen, depth = self.lru[i], 0
        for h in hashes:
            if h not in seen:
                break
            depth += 1
        return depth

    def choose(self, engines: Sequence[Engine], r: Request, hashes: list[int], now: float) -> int:
        depths = self.depths(engines, hashes) if self.cache == "index" else {}
        best, best_value = -1, 0.0
        for step in range(len(engines)):
            i = (self.turn + step) % len(engines)
            e = engines[i]
            if self.cache == "true":
                uncached = e.uncached_tokens(r) * self.bytes_per_token
            else:
                depth = depths.get(i, 0) if self.cache == "index" else self._lru_depth(i, hashes)
                uncached = max(0, r.message_bytes - depth * BLOCK_BYTES)
            if self.true_wait:
                wait = e.slot_wait(now)
            else:
                wait = max(0, e.inflight + 1 - SLOTS) * (PREFILL_S * 50 + HOLD_AFTER_PREFILL_S) / SLOTS
            value = wait + (sum(e.pending.values()) + uncached) * self.s_per_byte
            if best < 0 or value < best_value:
                best, best_value, r.estimate = i, value, uncached
        if self.cache == "lru":
            seen = self.lru[best]
            for h in hashes:
                seen[h] = None
                seen.move_to_end(h)
            while len(seen) > self.lru_limit:
                seen.popitem(last=False)
        return best


class OnlineHomes(PredictedTTFT):
    """``homes-2-online``: ``homes-2`` as a gateway could do it: a prefix (its first block) gets its first two
    homes at its first two requests, each on the engine with the fewest homes so far (then the least load); then
    each request goes to the home with the least predicted TTFT as ``ttft`` predicts it (index, modelled wait)."""

    def __init__(self, s_per_byte: float, kv_tokens: int) -> None:
        super().__init__(s_per_byte, kv_tokens)
        self.homes: dict[int, list[int]] = {}
        self.count = [0] * ENGINES

    def choose(self, engines: Sequence[Engine], r: Request, hashes: list[int], now: float) -> int:
        homes = self.homes.setdefault(hashes[0], [])
        if len(homes) < 2:
            others = [i for i in range(len(engines)) if i not in homes]
            home = min(others, key=lambda i: (self.count[i], engines[i].inflight, (i - self.turn) % len(engines)))
            homes.append(home)
            self.count[home] += 1
            r.estimate = r.message_bytes
            return home
        depths = self.depths(engines, hashes)

        def predicted(i: int) -> float:
            wait = max(0, engines[i].inflight + 1 - SLOTS) * (PREFILL_S * 50 + HOLD_AFTER_PREFILL_S) / SLOTS
            uncached = max(0, r.message_bytes - depths.get(i, 0) * BLOCK_BYTES)
            return wait + (sum(engines[i].pending.values()) + uncached) * self.s_per_byte

        best = min(homes, key=predicted)
        r.estimate = max(0, r.message_bytes - depths.get(best, 0) * BLOCK_BYTES)
        return best


class Homes(Policy):
    """``homes-2``: two fixed homes per app, warmed by its first requests; the home with the least true TTFT."""

    def __init__(self, s_per_byte: float) -> None:
        super().__init__(s_per_byte)
        self.warmed: set[tuple[int, int]] = set()

    def choose(self, engines: Sequence[Engine], r: Request, hashes: list[int], now: float) -> int:
        homes = (r.app % len(engines), (r.app + 1) % len(engines))
        for home in homes:
            if (r.app, home) not in self.warmed:
                self.warmed.add((r.app, home))
                return home
        value = {h: engines[h].slot_wait(now) + engines[h].uncached_tokens(r) * PREFILL_S for h in homes}
        return min(homes, key=value.__getitem__)


POLICIES: dict[str, Callable[[float, int], Policy]] = {  # (prefill seconds per body byte, KV tokens per engine)
    "round-robin": lambda s, _: Weights(s, PickerWeights(0, 0, 0, 0), prefix=False, use_engine=False),
    "least-in-flight": lambda s, _: Weights(s, PickerWeights(1, 0, 0, 0), prefix=False, use_engine=False),
    "picker": lambda s, kv: Weights(s, PickerWeights(), prefix=True, use_engine=True, kv_tokens=kv),
    "picker-unbounded": lambda s, _: Weights(s, PickerWeights(), prefix=True, use_engine=True),
    "ttft": lambda s, kv: PredictedTTFT(s, kv),
    "ttft-lru": lambda s, kv: PredictedTTFT(s, kv, cache="lru"),
    "ttft-true-cache": lambda s, kv: PredictedTTFT(s, kv, cache="true"),
    "ttft-exact": lambda s, kv: PredictedTTFT(s, kv, cache="true", true_wait=True),
    "homes-2-online": OnlineHomes,
    "homes-2": lambda s, _: Homes(s),
}


@dataclass
class Outcome:
    p50_ms: float
    p99_ms: float
    hit_rate: float
    cold: int
    slowest: list[Request]


def simulate(reqs: list[Request], policy: Policy, kv_blocks: int) -> Outcome:
    engines = [Engine(i, kv_blocks) for i in range(ENGINES)]
    events: list[tuple[float, int, str, int]] = []
    order = itertools.count()
    for k, r in enumerate(reqs):
        heapq.heappush(events, (r.at, next(order), "arrive", k))
    hits = queries = 0

    def admit(e: Engine, k: int, now: float) -> None:
        nonlocal hits, queries
        r = reqs[k]
        e.running += 1
        r.allocation = e.cache.allocate(r.hashes, r.private)
        hit = min(r.allocation.hit_blocks * BLOCK, r.prompt_tokens - 1)
        hits, queries = hits + hit, queries + r.prompt_tokens
        r.uncached = r.prompt_tokens - hit
        start = max(now, e.lane_free_at)
        e.lane_free_at = start + r.uncached * PREFILL_S
        r.admit_wait, r.lane_wait = now - r.at, start - now
        e.ends[k] = e.lane_free_at + HOLD_AFTER_PREFILL_S  # known once it runs (for the true slot waits)
        heapq.heappush(events, (e.lane_free_at, next(order), "first", k))

    while events:
        now, _, kind, k = heapq.heappop(events)
        r = reqs[k]
        if kind == "arrive":
            hashes = prefix_hashes(r.body, BLOCK_BYTES, MAX_BLOCKS)
            policy.turn += 1
            r.estimate = 0.0
            e = engines[policy.choose(engines, r, hashes, now)]
            policy.index.add(hashes, 1 << e.slot)
            r.engine = e.slot
            e.inflight += 1
            e.pending[k] = r.estimate
            e.ends[k] = now + r.estimate * policy.s_per_byte + HOLD_AFTER_PREFILL_S
            if not e.queue and e.admissible(r):
                admit(e, k, now)
            else:
                e.queue.append(k)
        elif kind == "first":
            e = engines[r.engine]
            del e.pending[k]
            r.ttft = now - r.at
            heapq.heappush(events, (now + HOLD_AFTER_PREFILL_S, next(order), "done", k))
        else:
            e = engines[r.engine]
            e.running -= 1
            e.inflight -= 1
            del e.ends[k]
            assert r.allocation is not None
            e.cache.release(r.allocation)
            while e.queue and e.admissible(reqs[e.queue[0]]):
                admit(e, e.queue.popleft(), now)
    measured = sorted((r for r in reqs if r.measured), key=lambda r: r.ttft)
    q = statistics.quantiles([r.ttft for r in measured], n=100, method="inclusive")  # as bench.routing.load
    cold = sum(1 for r in measured if r.uncached > COLD)
    return Outcome(q[49] * 1000, q[98] * 1000, hits / queries, cold, measured[-3:])


def main() -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.routing.simulate", description=__doc__)
    parser.add_argument("--seeds", default="2", help="workload seeds (2: bench.routing's requests), e.g. 2,3,4")
    parser.add_argument("--kv-tokens", type=int, default=KV_TOKENS, help="per engine")
    parser.add_argument("--seconds", type=float, default=20, help="measured, after 5 s of warm-up (bench.routing's)")
    parser.add_argument("--policies", default=",".join(POLICIES))
    parser.add_argument("--slowest", action="store_true", help="the 3 slowest measured requests of each run")
    args = parser.parse_args()
    seeds = [int(s) for s in args.seeds.split(",")]
    workloads = {seed: requests(seed, args.seconds) for seed in seeds}
    first = workloads[seeds[0]]
    s_per_byte = PREFILL_S * sum(r.prompt_tokens for r in first) / sum(r.message_bytes for r in first)
    print(f"{ENGINES} engines, {args.kv_tokens} KV tokens each; prefix-heavy, seeds {args.seeds}; p50 / p99 ms, "
          f"prefix-cache hit rate, cold requests (> {COLD} uncached tokens) after the warm-up")  # fmt: skip
    for name in args.policies.split(","):
        runs = []
        for seed in seeds:
            reqs = [dataclasses.replace(r) for r in workloads[seed]]
            runs.append(simulate(reqs, POLICIES[name](s_per_byte, args.kv_tokens), args.kv_tokens // BLOCK))
        cells = " ".join(f"{o.p50_ms:3.0f}/{o.p99_ms:3.0f}/{o.hit_rate:4.0%}/{o.cold:<3}" for o in runs)
        line = f"  {name:<16} {cells}"
        if len(runs) > 1:
            p99 = [o.p99_ms for o in runs]
            line += f"  p99 median {statistics.median(p99):.0f} ({min(p99):.0f}-{max(p99):.0f})"
        print(line)
        if args.slowest:
            for seed, o in zip(seeds, runs, strict=True):
                for r in o.slowest:
                    print(f"      seed {seed} e{r.engine} ttft {r.ttft * 1000:4.0f} = slot/KV wait "
                          f"{r.admit_wait * 1000:4.0f} + lane wait {r.lane_wait * 1000:4.0f} + prefill "
                          f"{r.uncached * PREFILL_S * 1000:4.0f}; uncached {r.uncached}")  # fmt: skip
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
