"""``python -m bench.routing.headroom_model``: the noisy-tenant case as a queueing model, to size the headroom.

A discrete-event simulation of what ``bench.routing --only noisy`` runs, without processes or CPU contention:
4 engines x 4 batch slots, decode in lockstep steps of 30 ms (each engine its own phase), a request holds its
slot for a 9 ms prefill and 19 steps; a quiet tenant at 3.3 req/s and a noisy one at 33 req/s (1.3x the pool),
Poisson arrivals; the quiet tenant's requests go first (fair order), the noisy tenant's take a free slot only
when the policy lets them. Per policy: the share of quiet requests that waited for a slot, their wait's p99,
and the pool's utilisation (slots busy). Policies:

- ``fixed h``: ``queueing.headroom: h`` without target, the policy before ``headroomTarget`` (h slots free);
- ``peak h``: keep free the quiet tenant's peak in-flight count over the last 2 s plus h, less what it holds
  (a reservation sized from its own requests only, the alternative considered);
- ``target e``: ``headroomTarget: e``: ``adaptive_headroom`` from the quiet tenant's time-averaged in-flight
  count (10 s), the policy in ``interlock/gateway/pool/fairqueue.py``.

The closed form next to it: with the noisy tenant backlogged, the free slots are an M/M/1/h queue run backwards,
``rho = a / (capacity - h)``, and a quiet request finds none free with probability
``(1 - rho) rho^h / (1 - rho^(h+1))`` (``a``: the quiet tenant's mean in-flight, 3.3 x 0.58 = 1.9 here).
"""

from __future__ import annotations

import argparse
import heapq
import math
import random

from interlock.gateway.pool.fairqueue import adaptive_headroom

ENGINES, SLOTS, STEP, STEPS, PREFILL = 4, 4, 0.03, 19, 0.009
CAPACITY = ENGINES * SLOTS


def simulate(policy: str, value: float, seconds: float, seed: int, quiet_rate: float = 3.3) -> tuple[float, ...]:
    rng = random.Random(seed)
    phase = [rng.random() * STEP for _ in range(ENGINES)]
    events: list[tuple[float, int, str, int]] = []
    for tenant, rate in (("q", quiet_rate), ("n", quiet_rate * 10)):
        t = rng.expovariate(rate)
        while t < seconds:
            heapq.heappush(events, (t, 0, tenant, -1))
            t += rng.expovariate(rate)
    engine = [0] * ENGINES
    holding = {"q": 0, "n": 0}
    backlog: dict[str, list[float]] = {"q": [], "n": []}
    window: list[tuple[float, int]] = []  # (time, quiet holding) for the peak policy
    mean, mean_at, since = 0.0, 0.0, 0.0  # the quiet tenant's decayed time average (the queue's estimator)
    waits: list[float] = []
    busy, last = 0.0, 0.0

    def quiet_changed(now: float) -> None:
        nonlocal mean, mean_at
        decay = math.exp(-(now - mean_at) / 10.0)
        mean, mean_at = mean * decay + holding["q"] * (1 - decay), now

    def reserve(now: float) -> int:
        if policy == "fixed":
            return int(value)
        if policy == "peak":
            while window and window[0][0] < now - 2.0:
                window.pop(0)
            peak = max([holding["q"], *(h for _, h in window)])
            return max(int(value), min(peak + int(value), CAPACITY // 2) - holding["q"])
        decay = math.exp(-(now - mean_at) / 10.0)
        load = (mean * decay + holding["q"] * (1 - decay)) / (1 - math.exp(-(now - since) / 10.0))
        return max(1, adaptive_headroom(load, CAPACITY, value, min(CAPACITY // 4, CAPACITY // 2 - holding["q"])))

    def admit(now: float, tenant: str, arrived: float) -> None:
        e = min(range(ENGINES), key=lambda i: engine[i])
        engine[e] += 1
        if tenant == "q":
            quiet_changed(now)
            waits.append(now - arrived)
        holding[tenant] += 1
        if tenant == "q":
            window.append((now, holding["q"]))
        first = phase[e] + math.ceil((now + PREFILL - phase[e]) / STEP) * STEP
        heapq.heappush(events, (first + (STEPS - 1) * STEP, 1, tenant, e))

    def release(now: float) -> None:
        while CAPACITY - holding["q"] - holding["n"] > 0:
            free_after = CAPACITY - holding["q"] - holding["n"] - 1
            if backlog["q"]:
                admit(now, "q", backlog["q"].pop(0))
            elif backlog["n"] and free_after >= reserve(now):
                admit(now, "n", backlog["n"].pop(0))
            else:
                break

    while events:
        now, kind, tenant, e = heapq.heappop(events)
        if now > seconds:
            break
        busy += (holding["q"] + holding["n"]) * (now - last)
        last = now
        if kind == 0:
            backlog[tenant].append(now)
        else:
            engine[e] -= 1
            if tenant == "q":
                quiet_changed(now)
            holding[tenant] -= 1
            if tenant == "q":
                window.append((now, holding["q"]))
        release(now)
    waits.sort()
    waited = sum(1 for w in waits if w > 0) / len(waits)
    return waited, waits[int(len(waits) * 0.99)], busy / last / CAPACITY


def main() -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.routing.headroom_model", description=__doc__)
    parser.add_argument("--seconds", type=float, default=600)
    parser.add_argument("--seeds", type=int, default=3)
    args = parser.parse_args()
    policies = [("fixed", 0), ("fixed", 1), ("fixed", 2), ("fixed", 3), ("peak", 0), ("peak", 1), ("peak", 2),
                ("target", 0.02), ("target", 0.005), ("target", 0.001)]  # fmt: skip
    print(f"{'policy':<14} {'quiet waited':>12} {'wait p99 ms':>12} {'slots busy':>10}   (mean of {args.seeds} seeds)")
    for policy, value in policies:
        runs = [simulate(policy, value, args.seconds, seed) for seed in range(args.seeds)]
        waited, p99, busy = (sum(r[i] for r in runs) / len(runs) for i in range(3))
        print(f"{policy} {value:<8g} {waited * 100:>11.2f}% {p99 * 1000:>12.0f} {busy * 100:>9.1f}%")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
