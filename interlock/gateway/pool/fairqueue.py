"""Tenant-fair admission to a saturated pool: per-tenant queues, priority classes, weighted fair order, bounds.

While some endpoint of the backend has room (``has_room()``), a request goes straight through: no queue, no
allocation. When none has, it waits here, and each time a request to the backend finishes, ``release()`` lets the
next one in:

- **Priority classes**, strictly ordered: ``critical`` before ``standard``. ``sheddable`` requests never wait: at
  saturation they are refused at once (503 with ``Retry-After``), the load that is first to go.
- **Weighted fair queueing** among tenants of one class (start-time fair queueing): each request gets a virtual
  finish tag ``max(virtual time, the tenant's last tag) + 1 / weight``, and the smallest tag goes first. A tenant
  that sends ten times more waits behind its own backlog, not in front of a quiet tenant's next request.
- **Bounds**: at most ``max_queued`` waiting per backend (beyond: 503), ``max_queued_per_tenant`` per tenant
  (beyond: 429, the tenant's own excess), and ``max_wait_s`` (then 503 with ``Retry-After``).
- **Headroom for tenants below their fair share**: while more than one tenant is active (holding a slot,
  waiting, or served within the last ``active_s``), a tenant holding at least its fair share of the slots
  (``capacity / active tenants``) takes a slot only if enough slots stay free after it for the quieter tenants'
  next requests to start at once instead of waiting for a slot to free (the noisy-tenant case of
  ``bench/routing``). A tenant alone gets every slot. How many: at least ``headroom``, and with
  ``headroom_target`` the fewest that keep the share of the quieter tenants' requests finding none free at or
  below that target, from their measured concurrency (``adaptive_headroom``); at most their fair share of the
  slots less what they hold, and at most a quarter of the pool.

  Why that many (docs/routing.md says it with the measurements): the quieter tenants, together, hold ``a``
  slots on average (their time-averaged in-flight count over the last ``window_s``, Little's law: their
  request rate times the time a request holds a slot). While the full tenant is backlogged, the free slots
  are a small queue run backwards: each quieter request takes one (rate ``a / S``), each request that ends, of
  anyone, gives one back while fewer than the headroom are free (rate ``(capacity - h) / S``: the full tenant
  may not refill it). That is M/M/1/h with ``rho = a / (capacity - h)``, and a quieter request finds no slot
  free with probability ``(1 - rho) rho^h / (1 - rho^(h+1))``; the service time cancels out. The slots kept
  free are the throughput it costs (``h / capacity`` of the pool, while a quieter tenant is active).

``wait()`` returns the seconds waited; the caller records them as the queue's span and metric.
"""

from __future__ import annotations

import asyncio
import heapq
import itertools
import math
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Literal

__all__ = ["PRIORITIES", "FairQueue", "Priority", "QueueRejected", "adaptive_headroom"]

Priority = Literal["critical", "standard", "sheddable"]
PRIORITIES: tuple[Priority, ...] = ("critical", "standard", "sheddable")
_RANK = {"critical": 0, "standard": 1, "sheddable": 2}


class QueueRejected(Exception):
    """Why a request was not let in: ``reason`` is ``shed``, ``queue_full``, ``tenant_queue_full`` or ``timeout``."""

    def __init__(self, reason: str, message: str, retry_after_s: float) -> None:
        super().__init__(message)
        self.reason = reason
        self.retry_after_s = retry_after_s


def adaptive_headroom(load: float, capacity: int, target: float, most: int) -> int:
    """The fewest free slots (at most ``most``) with which a request of tenants holding ``load`` slots on average
    finds none free with probability at most ``target``, in a pool of ``capacity`` slots that another tenant
    keeps full: the blocking probability of M/M/1/h with ``rho = load / (capacity - h)`` (module docstring)."""
    h = 0
    while h < most and load > 0:
        rho = load / max(1, capacity - h)
        blocked = (1 - rho) * rho**h / (1 - rho ** (h + 1)) if rho < 1 else 1 / (h + 1)
        if blocked <= target:
            break
        h += 1
    return h


@dataclass(slots=True)
class _Usage:
    """A tenant's in-flight count averaged over time, exponentially decayed over ``window_s``."""

    since: float  # when it became active (the average covers no time before)
    at: float  # when ``mean`` was brought up to date
    mean: float = 0.0  # not yet divided by the weight of the time since ``since``


@dataclass(order=True, slots=True)
class _Waiter:
    rank: int
    tag: float
    seq: int
    tenant: str = field(compare=False)
    admitted: asyncio.Future[None] = field(compare=False)
    gone: bool = field(default=False, compare=False)


class FairQueue:
    """One backend's queue. ``has_room`` says whether an endpoint can take one more request now.

    Protocol: ``waited = await queue.wait(...)``; when ``waited`` is not None the request came through the queue,
    and the caller calls ``taken()`` as soon as it holds its endpoint slot (with no ``await`` in between). Every
    request that held a slot calls ``finished(seconds held)``; background work calls ``release()`` when room may
    have appeared without a request finishing (fresh engine metrics).
    """

    def __init__(
        self,
        backend: str,
        has_room: Callable[[], bool],
        *,
        capacity: Callable[[], int] = lambda: 1,
        max_queued: int = 1000,
        max_queued_per_tenant: int = 100,
        max_wait_s: float = 30.0,
        weights: Callable[[str], float] | None = None,
        headroom: int = 0,
        headroom_target: float = 0.0,
        active_s: float = 2.0,
        window_s: float = 10.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.backend = backend
        self._has_room = has_room
        self._capacity = capacity
        self.max_queued = max_queued
        self.max_queued_per_tenant = max_queued_per_tenant
        self.max_wait_s = max_wait_s
        self._weight = weights or (lambda _tenant: 1.0)
        self.headroom = headroom
        self.headroom_target = headroom_target
        self.active_s = active_s
        self.window_s = window_s
        self._clock = clock
        self._reserving = bool(headroom or headroom_target)
        self._usage: dict[str, _Usage] = {}  # tenant -> its measured concurrency (with headroom_target)
        self.holding: dict[str, int] = {}
        """Requests holding a slot, per tenant (``hold``/``finished``)."""
        self.held = 0
        self._seen: dict[str, float] = {}  # tenant -> when it last held or gave back a slot
        self._heads: dict[str, list[_Waiter]] = {}  # per tenant, its waiters in (priority, tag) order
        self._seq = itertools.count()
        self._vtime = 0.0
        self._last_tag: dict[str, float] = {}
        self.waiting: dict[str, int] = {}
        """Requests waiting per tenant."""
        self.queued = 0
        self._admitting = 0  # let in, not yet holding their endpoint slot
        self.service_s = 0.0
        """An exponentially weighted mean of how long a request held its slot (0 until one did)."""
        self.rejected: dict[tuple[str, str], int] = {}
        """(tenant, reason) -> requests refused."""

    def room(self, tenant: str = "") -> bool:
        """Whether a request may go through now without waiting (nobody waiting, an endpoint has room, and the
        tenant may take it: see ``headroom``)."""
        return self.queued == 0 and self._admitting == 0 and self._has_room() and self._may_take(tenant)

    def _may_take(self, tenant: str) -> bool:
        """Whether ``tenant`` may take a free slot: always, unless it holds its fair share or more while other
        tenants are active and taking one would leave fewer free than ``reserve()`` keeps for them."""
        if not self._reserving:
            return True
        holding = self.holding.get(tenant, 0)
        if not holding:
            return True
        capacity = self._capacity()
        free_after = capacity - self.held - 1
        if free_after >= self.headroom and (not self.headroom_target or free_after >= capacity // 4):
            return True  # more free than any reserve: nothing to look up
        return free_after >= self.reserve(tenant, capacity)

    def reserve(self, tenant: str, capacity: int | None = None) -> int:
        """The slots ``tenant`` must leave free: 0 while it is alone or below its fair share; else ``headroom``,
        or with ``headroom_target`` the ``adaptive_headroom`` for the other active tenants below their fair share
        (their measured concurrency), at most their fair share less what they hold and a quarter of the pool.
        O(tenants active on the backend)."""
        if capacity is None:
            capacity = self._capacity()
        now = self._clock()
        recent = now - self.active_s
        active = {t for t, at in self._seen.items() if at >= recent}
        active.update(self.holding, self.waiting)
        active.add(tenant)
        if len(active) <= 1:
            return 0
        share = capacity / len(active)
        if self.holding.get(tenant, 0) < share:
            return 0
        if not self.headroom_target:
            return self.headroom
        load, holding, quieter = 0.0, 0, 0
        for other in active:
            held = self.holding.get(other, 0)
            if other != tenant and held < share:
                quieter += 1
                holding += held
                load += self._concurrency(other, held, now)
        most = min(capacity // 4, math.floor(quieter * share) - holding)
        return max(self.headroom, adaptive_headroom(load, capacity, self.headroom_target, most))

    def concurrency(self, tenant: str) -> float:
        """``tenant``'s measured concurrency: its in-flight count averaged over the last ``window_s`` (0 when not
        measured: without ``headroom_target``, or not active)."""
        return self._concurrency(tenant, self.holding.get(tenant, 0), self._clock())

    def _concurrency(self, tenant: str, holding: int, now: float) -> float:
        usage = self._usage.get(tenant)
        if usage is None:
            return 0.0
        decay = math.exp(-(now - usage.at) / self.window_s)
        mean = usage.mean * decay + holding * (1 - decay)
        covered = 1 - math.exp(-(now - usage.since) / self.window_s)
        return mean / covered if covered > 1e-9 else float(holding)

    def _measure(self, tenant: str, now: float) -> None:
        """Bring ``tenant``'s average up to ``now``, before its in-flight count changes; one that held nothing and
        was not seen within ``active_s`` starts afresh."""
        holding = self.holding.get(tenant, 0)
        usage = self._usage.get(tenant)
        if usage is None or (not holding and now - usage.at > self.active_s):
            self._usage[tenant] = _Usage(now, now)
            return
        decay = math.exp(-(now - usage.at) / self.window_s)
        usage.mean = usage.mean * decay + holding * (1 - decay)
        usage.at = now

    def hold(self, tenant: str) -> None:
        """A request of ``tenant`` took an endpoint slot (every request to the backend, queued or not)."""
        if self._reserving:
            now = self._clock()
            if self.headroom_target:
                self._measure(tenant, now)
            self._seen[tenant] = now
        self.holding[tenant] = self.holding.get(tenant, 0) + 1
        self.held += 1

    async def wait(self, tenant: str, priority: Priority, *, deadline: float | None = None) -> float | None:
        """None when the request goes straight through; else the seconds it waited for its turn (then call
        ``taken()``). Raises ``QueueRejected``. ``deadline`` (loop time) shortens the maximum wait."""
        if self.room(tenant):
            return None
        if priority == "sheddable":
            raise self._reject(tenant, "shed", f"backend {self.backend!r} is saturated: sheddable requests are shed")
        if self.waiting.get(tenant, 0) >= self.max_queued_per_tenant:
            message = f"this tenant already has {self.max_queued_per_tenant} requests waiting for {self.backend!r}"
            raise self._reject(tenant, "tenant_queue_full", message)
        if self.queued >= self.max_queued:
            raise self._reject(tenant, "queue_full", f"{self.max_queued} requests are waiting for {self.backend!r}")
        loop = asyncio.get_running_loop()
        start = loop.time()
        tag = max(self._vtime, self._last_tag.get(tenant, 0.0)) + 1.0 / max(self._weight(tenant), 1e-6)
        self._last_tag[tenant] = tag
        waiter = _Waiter(_RANK[priority], tag, next(self._seq), tenant, loop.create_future())
        heapq.heappush(self._heads.setdefault(tenant, []), waiter)
        self.queued += 1
        self.waiting[tenant] = self.waiting.get(tenant, 0) + 1
        if self._reserving and self._has_room():
            self.release()  # a slot kept free for a tenant like this one: it may be let in at once
        limit = start + self.max_wait_s if deadline is None else min(start + self.max_wait_s, deadline)
        try:
            async with asyncio.timeout_at(limit):
                await waiter.admitted
        except BaseException as exc:
            if waiter.admitted.done() and not waiter.admitted.cancelled():
                self.taken()  # let in, but leaving (cancelled): its turn passes on
            else:
                waiter.gone = True
                self._leave(waiter)
            if isinstance(exc, TimeoutError):
                raise self._reject(
                    tenant, "timeout", f"waited {loop.time() - start:.1f}s for {self.backend!r}"
                ) from None
            raise
        return loop.time() - start

    def taken(self) -> None:
        """A request let in from the queue now holds its endpoint slot: let the next in if there is room."""
        self._admitting -= 1
        self.release()

    def finished(self, held_s: float, tenant: str | None = None) -> None:
        """A request gave back its endpoint slot after holding it ``held_s`` seconds (``tenant``: whose, when it
        was counted by ``hold``)."""
        if tenant is not None:
            now = self._clock() if self._reserving else 0.0
            if self.headroom_target and tenant in self.holding:
                self._measure(tenant, now)
            left = self.holding.get(tenant, 0) - 1
            if left > 0:
                self.holding[tenant] = left
            else:
                self.holding.pop(tenant, None)
            self.held = max(0, self.held - 1)
            if self._reserving:
                self._seen[tenant] = now
                if len(self._seen) > 4 * (len(self.holding) + len(self.waiting)) + 64:
                    recent = now - self.active_s
                    self._seen = {t: at for t, at in self._seen.items() if at >= recent}
                    self._usage = {t: u for t, u in self._usage.items() if t in self._seen or t in self.holding}
        self.service_s = held_s if self.service_s == 0 else self.service_s + 0.1 * (held_s - self.service_s)
        self.release()

    def release(self) -> None:
        """Let one waiter in if an endpoint has room (the next follows when it has taken its slot)."""
        if self._admitting:
            return
        while self._heads and self._has_room():
            best: _Waiter | None = None
            for tenant, heap in list(self._heads.items()):
                while heap and heap[0].gone:
                    heapq.heappop(heap)
                if not heap:
                    del self._heads[tenant]
                    continue
                if (best is None or heap[0] < best) and self._may_take(tenant):
                    best = heap[0]
            if best is None:
                break
            heap = self._heads[best.tenant]
            heapq.heappop(heap)
            if not heap:
                del self._heads[best.tenant]
            self._leave(best)
            self._vtime = max(self._vtime, best.tag - 1.0 / max(self._weight(best.tenant), 1e-6))
            self._admitting += 1
            best.admitted.set_result(None)
            break
        if not self._heads and self._last_tag:
            self._last_tag = {t: tag for t, tag in self._last_tag.items() if tag > self._vtime}

    def predicted_wait_s(self) -> float:
        """How long a request arriving now would wait: everyone ahead of it, served ``capacity`` at a time, each
        for the recent mean service time (0 when it would go straight through)."""
        if self.room():
            return 0.0
        ahead = self.queued + self._admitting + 1
        return ahead * self.service_s / max(1, self._capacity())

    def retry_after_s(self) -> float:
        """What ``Retry-After`` says: one service time, at least a second."""
        return max(1.0, self.service_s)

    def _reject(self, tenant: str, reason: str, message: str) -> QueueRejected:
        key = (tenant, reason)
        self.rejected[key] = self.rejected.get(key, 0) + 1
        return QueueRejected(reason, message, self.retry_after_s())

    def _leave(self, waiter: _Waiter) -> None:
        self.queued -= 1
        left = self.waiting[waiter.tenant] - 1
        if left:
            self.waiting[waiter.tenant] = left
        else:
            del self.waiting[waiter.tenant]
