"""Console login throttling: failed logins are counted per client address and per account (the admin, or one
key by its lookup prefix) over a sliding window; past the limit, logins are refused (even with the right token)
until the oldest failure leaves the window.

The counts live in this process's memory (bounded: at most ``max_entries`` addresses and accounts, the least
recently failing forgotten first). Several control-plane replicas each count on their own, so the effective
limit is per replica; that bounds guessing well enough for 256-bit keys and strong admin tokens, which a
throttle only has to keep from being hammered.
"""

from __future__ import annotations

import logging
import time
from collections import OrderedDict, deque

from interlock.contract.keys import KEY_PREFIX, lookup_prefix

__all__ = ["LoginThrottle", "account_of"]

log = logging.getLogger("interlock.api.console")


def account_of(token: str) -> str:
    """Whose login a token tries: one key (by its lookup prefix) or the admin."""
    if token.startswith(KEY_PREFIX):
        return f"key:{lookup_prefix(token)}"
    return "admin"


class LoginThrottle:
    def __init__(self, *, window_s: float, per_account: int, per_address: int, max_entries: int = 10_000) -> None:
        self.window_s = window_s
        self.limits = {"account": per_account, "address": per_address}
        self.max_entries = max_entries
        self._failures: OrderedDict[tuple[str, str], deque[float]] = OrderedDict()

    def _recent(self, key: tuple[str, str], now: float) -> deque[float]:
        times = self._failures.get(key)
        if times is None:
            return deque()
        while times and times[0] <= now - self.window_s:
            times.popleft()
        if not times:
            del self._failures[key]
        return times

    def refused(self, *, address: str, account: str, now: float | None = None) -> tuple[str, int] | None:
        """``(whose, seconds to wait)`` when a login must be refused now, else None."""
        now = time.monotonic() if now is None else now
        for kind, value in (("address", address), ("account", account)):
            times = self._recent((kind, value), now)
            if len(times) >= self.limits[kind]:
                wait = max(1, int(times[0] + self.window_s - now + 0.999))
                return kind, wait
        return None

    def failed(self, *, address: str, account: str, now: float | None = None) -> None:
        now = time.monotonic() if now is None else now
        for key in (("address", address), ("account", account)):
            times = self._failures.setdefault(key, deque(maxlen=max(self.limits.values())))
            times.append(now)
            self._failures.move_to_end(key)
        while len(self._failures) > self.max_entries:
            self._failures.popitem(last=False)

    def succeeded(self, *, account: str) -> None:
        """A right token clears its account's failures (the address keeps its count)."""
        self._failures.pop(("account", account), None)
