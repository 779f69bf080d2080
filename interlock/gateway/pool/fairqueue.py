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

``wait()`` returns the seconds waited; the caller records them as the queue's span and metric.
"""

from __future__ import annotations

import asyncio
import heapq
import itertools
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Literal

__all__ = ["PRIORITIES", "FairQueue", "Priority", "QueueRejected"]

Priority = Literal["critical", "standard", "sheddable"]
PRIORITIES: tuple[Priority, ...] = ("critical", "standard", "sheddable")
_RANK = {"critical": 0, "standard": 1, "sheddable": 2}


class QueueRejected(Exception):
    """Why a request was not let in: ``reason`` is ``shed``, ``queue_full``, ``tenant_queue_full`` or ``timeout``."""

    def __init__(self, reason: str, message: str, retry_after_s: float) -> None:
        super().__init__(message)
        self.reason = reason
        self.retry_after_s = retry_after_s


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
    ) -> None:
        self.backend = backend
        self._has_room = has_room
        self._capacity = capacity
        self.max_queued = max_queued
        self.max_queued_per_tenant = max_queued_per_tenant
        self.max_wait_s = max_wait_s
        self._weight = weights or (lambda _tenant: 1.0)
        self._heap: list[_Waiter] = []
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

    def room(self) -> bool:
        """Whether a request may go through now without waiting (nobody waiting, and an endpoint has room)."""
        return self.queued == 0 and self._admitting == 0 and self._has_room()

    async def wait(self, tenant: str, priority: Priority, *, deadline: float | None = None) -> float | None:
        """None when the request goes straight through; else the seconds it waited for its turn (then call
        ``taken()``). Raises ``QueueRejected``. ``deadline`` (loop time) shortens the maximum wait."""
        if self.room():
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
        heapq.heappush(self._heap, waiter)
        self.queued += 1
        self.waiting[tenant] = self.waiting.get(tenant, 0) + 1
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

    def finished(self, held_s: float) -> None:
        """A request gave back its endpoint slot after holding it ``held_s`` seconds."""
        self.service_s = held_s if self.service_s == 0 else self.service_s + 0.1 * (held_s - self.service_s)
        self.release()

    def release(self) -> None:
        """Let one waiter in if an endpoint has room (the next follows when it has taken its slot)."""
        if self._admitting:
            return
        while self._heap and self._has_room():
            waiter = heapq.heappop(self._heap)
            if waiter.gone:
                continue
            self._leave(waiter)
            self._vtime = max(self._vtime, waiter.tag - 1.0 / max(self._weight(waiter.tenant), 1e-6))
            self._admitting += 1
            waiter.admitted.set_result(None)
            break
        if not self._heap and self._last_tag:
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
