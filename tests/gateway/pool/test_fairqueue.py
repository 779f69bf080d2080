"""``FairQueue``: straight through while there is room; per-tenant fair order, priorities and bounds when not."""

from __future__ import annotations

import asyncio

import pytest

from interlock.gateway.pool.fairqueue import FairQueue, QueueRejected
from tests.support import eventually


class Slots:
    """A stand-in pool: ``free`` slots; requests take one when let in and give it back when done."""

    def __init__(self, free: int) -> None:
        self.free = free

    def room(self) -> bool:
        return self.free > 0


async def through(queue: FairQueue, slots: Slots, tenant: str, order: list[str], **kw: object) -> None:
    """A request: wait its turn, take a slot, note the order it got in."""
    waited = await queue.wait(tenant, kw.pop("priority", "standard"), **kw)  # type: ignore[arg-type]
    slots.free -= 1
    if waited is not None:
        queue.taken()
    order.append(tenant)


async def served_one_more(order: list[str]) -> None:
    before = len(order)
    await eventually(lambda: len(order) == before + 1)


def finish(queue: FairQueue, slots: Slots) -> None:
    slots.free += 1
    queue.finished(0.5)


async def test_straight_through_while_there_is_room() -> None:
    slots = Slots(2)
    queue = FairQueue("b", slots.room)
    assert await queue.wait("t", "standard") is None
    assert await queue.wait("t", "sheddable") is None  # sheddable too: nothing is saturated


async def test_a_quiet_tenant_is_not_stuck_behind_a_noisy_backlog() -> None:
    slots = Slots(1)
    queue = FairQueue("b", slots.room)
    order: list[str] = []
    await through(queue, slots, "noisy", order)  # holds the only slot
    tasks = [asyncio.create_task(through(queue, slots, "noisy", order)) for _ in range(10)]
    await eventually(lambda: queue.queued == 10)
    tasks.append(asyncio.create_task(through(queue, slots, "quiet", order)))
    await eventually(lambda: queue.queued == 11)
    for _ in range(11):
        finish(queue, slots)
        await served_one_more(order)
    await asyncio.gather(*tasks)
    # Weighted fair order: the quiet tenant's one request goes second (its tag ties the noisy tenant's first).
    assert order.index("quiet") <= 2
    assert queue.queued == 0
    assert queue.waiting == {}


async def test_weights_share_turns_in_proportion() -> None:
    slots = Slots(1)
    queue = FairQueue("b", slots.room, weights=lambda tenant: 3.0 if tenant == "big" else 1.0)
    order: list[str] = []
    await through(queue, slots, "x", order)
    tasks = [asyncio.create_task(through(queue, slots, t, order)) for t in ["big"] * 6 + ["small"] * 6]
    await eventually(lambda: queue.queued == 12)
    for _ in range(8):
        finish(queue, slots)
        await served_one_more(order)
    served = order[1:9]
    assert served.count("big") == 6  # three turns for every one of small's, until big ran out
    assert served.count("small") == 2
    for task in tasks:
        task.cancel()
    await asyncio.gather(*tasks, return_exceptions=True)


async def test_critical_goes_before_standard() -> None:
    slots = Slots(1)
    queue = FairQueue("b", slots.room)
    order: list[str] = []
    await through(queue, slots, "x", order)
    standard = [asyncio.create_task(through(queue, slots, "s", order)) for _ in range(3)]
    await eventually(lambda: queue.queued == 3)
    critical = asyncio.create_task(through(queue, slots, "c", order, priority="critical"))
    await eventually(lambda: queue.queued == 4)
    finish(queue, slots)
    await critical
    assert order == ["x", "c"]
    for _ in range(3):
        finish(queue, slots)
    await asyncio.gather(*standard)


async def test_sheddable_is_refused_at_saturation() -> None:
    slots = Slots(0)
    queue = FairQueue("b", slots.room)
    queue.finished(3.0)
    with pytest.raises(QueueRejected) as info:
        await queue.wait("t", "sheddable")
    assert info.value.reason == "shed"
    assert info.value.retry_after_s == 3.0  # one service time
    assert queue.rejected == {("t", "shed"): 1}


async def test_bounds_per_tenant_overall_and_in_time() -> None:
    slots = Slots(0)
    queue = FairQueue("b", slots.room, max_queued=3, max_queued_per_tenant=2, max_wait_s=0.05)
    held = [asyncio.create_task(queue.wait("a", "standard")) for _ in range(2)]
    await eventually(lambda: queue.queued == 2)
    with pytest.raises(QueueRejected) as info:
        await queue.wait("a", "standard")
    assert info.value.reason == "tenant_queue_full"
    third = asyncio.create_task(queue.wait("b", "standard"))
    await eventually(lambda: queue.queued == 3)
    with pytest.raises(QueueRejected) as info:
        await queue.wait("c", "standard")
    assert info.value.reason == "queue_full"
    for task in (*held, third):  # nobody is let in: each times out
        with pytest.raises(QueueRejected) as info:
            await task
        assert info.value.reason == "timeout"
    assert queue.queued == 0
    assert queue.waiting == {}


async def test_a_deadline_shortens_the_wait() -> None:
    slots = Slots(0)
    queue = FairQueue("b", slots.room, max_wait_s=60)
    loop = asyncio.get_running_loop()
    with pytest.raises(QueueRejected) as info:
        await queue.wait("t", "standard", deadline=loop.time() + 0.05)
    assert info.value.reason == "timeout"


async def test_a_waiter_that_leaves_passes_its_turn_on() -> None:
    slots = Slots(1)
    queue = FairQueue("b", slots.room)
    order: list[str] = []
    await through(queue, slots, "x", order)
    leaving = asyncio.create_task(through(queue, slots, "gone", order))
    staying = asyncio.create_task(through(queue, slots, "stays", order))
    await eventually(lambda: queue.queued == 2)
    leaving.cancel()
    await asyncio.gather(leaving, return_exceptions=True)
    assert queue.queued == 1
    finish(queue, slots)
    await staying
    assert order == ["x", "stays"]


async def test_a_waiter_cancelled_after_being_let_in_passes_its_turn_on() -> None:
    slots = Slots(1)
    queue = FairQueue("b", slots.room)
    order: list[str] = []
    await through(queue, slots, "x", order)
    first = asyncio.create_task(through(queue, slots, "first", order))
    second = asyncio.create_task(through(queue, slots, "second", order))
    await eventually(lambda: queue.queued == 2)
    finish(queue, slots)  # lets "first" in...
    first.cancel()  # ...which leaves before it takes the slot
    await asyncio.gather(first, return_exceptions=True)
    await second
    assert order == ["x", "second"]


async def test_predicted_wait_counts_everyone_ahead() -> None:
    slots = Slots(0)
    queue = FairQueue("b", slots.room, capacity=lambda: 2)
    assert queue.predicted_wait_s() == 0.0  # no service time known yet
    queue.finished(1.0)
    held = [asyncio.create_task(queue.wait("t", "standard")) for _ in range(3)]
    await eventually(lambda: queue.queued == 3)
    assert queue.predicted_wait_s() == pytest.approx(4 * 1.0 / 2)
    slots.free = 1
    for task in held:
        task.cancel()
    await asyncio.gather(*held, return_exceptions=True)
    assert queue.predicted_wait_s() == 0.0


async def take(queue: FairQueue, slots: Slots, tenant: str, order: list[str]) -> None:
    """A request as the gateway makes it: wait its turn, take a slot and tell the queue whose it is."""
    waited = await queue.wait(tenant, "standard")
    slots.free -= 1
    queue.hold(tenant)
    if waited is not None:
        queue.taken()
    order.append(tenant)


def give_back(queue: FairQueue, slots: Slots, tenant: str) -> None:
    slots.free += 1
    queue.finished(0.5, tenant)


async def test_headroom_keeps_a_slot_for_a_tenant_below_its_fair_share() -> None:
    slots = Slots(4)
    queue = FairQueue("b", slots.room, capacity=lambda: 4, headroom=1, active_s=60)
    order: list[str] = []
    await take(queue, slots, "quiet", order)
    give_back(queue, slots, "quiet")  # quiet was served a moment ago: it is active
    for _ in range(3):
        await take(queue, slots, "noisy", order)
    assert queue.holding == {"noisy": 3}
    # Noisy holds more than its fair share (4 slots / 2 tenants): the last free slot is kept for others.
    fourth = asyncio.create_task(take(queue, slots, "noisy", order))
    await eventually(lambda: queue.waiting == {"noisy": 1})
    assert slots.free == 1
    await take(queue, slots, "quiet", order)  # straight in, though noisy was waiting first
    assert queue.holding == {"noisy": 3, "quiet": 1}
    assert not fourth.done()
    give_back(queue, slots, "noisy")  # the slot that frees is kept free: noisy holds its share and more
    await asyncio.sleep(0.01)
    assert not fourth.done()
    assert slots.free == 1
    give_back(queue, slots, "quiet")  # two free: noisy may take one and leave one
    await fourth
    assert queue.holding == {"noisy": 3}
    assert slots.free == 1
    assert order == ["quiet", "noisy", "noisy", "noisy", "quiet", "noisy"]


async def test_a_tenant_alone_gets_every_slot_despite_headroom() -> None:
    slots = Slots(4)
    queue = FairQueue("b", slots.room, capacity=lambda: 4, headroom=1, active_s=0.05)
    order: list[str] = []
    await take(queue, slots, "quiet", order)
    give_back(queue, slots, "quiet")
    await asyncio.sleep(0.06)  # quiet no longer counts as active
    for _ in range(4):
        await take(queue, slots, "noisy", order)
    assert queue.holding == {"noisy": 4}
    assert slots.free == 0


async def test_without_headroom_the_pool_is_filled_by_whoever_asks() -> None:
    slots = Slots(4)
    queue = FairQueue("b", slots.room, capacity=lambda: 4)
    order: list[str] = []
    await take(queue, slots, "quiet", order)
    give_back(queue, slots, "quiet")
    for _ in range(4):
        await take(queue, slots, "noisy", order)
    assert slots.free == 0
    for _ in range(4):
        give_back(queue, slots, "noisy")
    assert queue.holding == {}
    assert queue.held == 0
