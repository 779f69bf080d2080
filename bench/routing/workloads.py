"""The three workloads: who sends what, and when (seeded, so every policy gets the same requests)."""

from __future__ import annotations

import random
from dataclasses import dataclass

__all__ = ["Request", "noisy_tenant", "prefix_heavy", "uniform"]

_WORDS = [
    *("account", "billing", "invoice", "refund", "policy", "server", "cluster", "deploy", "region", "latency"),
    *("budget", "tenant", "model", "prompt", "token", "cache", "replica", "gateway", "engine", "queue"),
    *("priority", "route", "fallback", "metric", "trace", "alert", "dashboard", "quota", "key"),
]


@dataclass(frozen=True, slots=True)
class Request:
    at: float  # seconds after the start
    tenant: str
    messages: tuple[tuple[str, str], ...]
    measured: bool = True  # False during the warm-up: sent, not counted

    @property
    def tag(self) -> str:
        """The last message's first two words (``quiet 17``): the request's name in ``--timeline`` stamps."""
        return " ".join(self.messages[-1][1].split(" ", 2)[:2])


def _arrivals(rng: random.Random, rate: float, seconds: float) -> list[float]:
    """Poisson arrivals at ``rate`` per second."""
    times, now = [], 0.0
    while True:
        now += rng.expovariate(rate)
        if now >= seconds:
            return times
        times.append(now)


def _text(rng: random.Random, words: int) -> str:
    return " ".join(rng.choice(_WORDS) for _ in range(words))


def uniform(rate: float, seconds: float, seed: int = 1) -> list[Request]:
    """Short prompts (about 20 tokens), all different: nothing to reuse."""
    rng = random.Random(seed)
    return [
        Request(t, "app", (("user", f"{i} {_text(rng, 18)}"),)) for i, t in enumerate(_arrivals(rng, rate, seconds))
    ]


def prefix_heavy(
    rate: float, seconds: float, *, apps: int, system_tokens: int, warmup: float = 0.0, seed: int = 2
) -> list[Request]:
    """Many conversations over ``apps`` long system prompts: each request is an app's system prompt, then the
    turns of one of its conversations so far (1 to 3), then a new question. Requests in the first ``warmup``
    seconds fill the caches and are not measured (every app's first request is a miss under any policy)."""
    rng = random.Random(seed)
    systems = [f"App {a}. " + _text(rng, system_tokens) for a in range(apps)]
    conversations: dict[int, list[tuple[str, str]]] = {}
    out = []
    for i, t in enumerate(_arrivals(rng, rate, seconds)):
        app = rng.randrange(apps)
        key = app * 1000 + rng.randrange(8)  # eight live conversations per app
        history = conversations.setdefault(key, [])
        if len(history) >= 6:
            history.clear()
        question = (("user", f"q{i} {_text(rng, 12)}"),)
        out.append(Request(t, "app", (("system", systems[app]), *history, *question), t >= warmup))
        history += [question[0], ("assistant", _text(rng, 16))]
    return out


def noisy_tenant(quiet_rate: float, seconds: float, *, factor: float = 10, quiet_only: bool = False) -> list[Request]:
    """A quiet tenant and a noisy one at ``factor`` times its rate, short prompts."""
    rng = random.Random(3)
    quiet = [Request(t, "quiet", (("user", f"quiet {i} {_text(rng, 18)}"),))
             for i, t in enumerate(_arrivals(rng, quiet_rate, seconds))]  # fmt: skip
    if quiet_only:
        return quiet
    noisy = [Request(t, "noisy", (("user", f"noisy {i} {_text(rng, 18)}"),))
             for i, t in enumerate(_arrivals(rng, quiet_rate * factor, seconds))]  # fmt: skip
    return sorted(quiet + noisy, key=lambda r: r.at)
