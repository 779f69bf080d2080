"""``FairQueue``: straight through while there is room; per-tenant fair order, priorities and bounds when not."""

from __future__ import annotations

import asyncio

import pytest

from interlock.gateway.pool.fairqueue import FairQueue, QueueRejected, adaptive_headroom
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


class Clock:
    """The queue's clock, moved by the test (no sleeping)."""

    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def hold(queue: FairQueue, slots: Slots, tenant: str, count: int = 1) -> None:
    """``count`` requests of ``tenant`` take a slot each (let in without asking the queue)."""
    for _ in range(count):
        slots.free -= 1
        queue.hold(tenant)


def take_while_room(queue: FairQueue, slots: Slots, tenant: str) -> int:
    """Requests of ``tenant`` that go straight through, one after another, until the queue says wait."""
    taken = 0
    while queue.room(tenant):
        slots.free -= 1
        queue.hold(tenant)
        taken += 1
    return taken


def test_adaptive_headroom_is_the_fewest_free_slots_that_meet_the_target() -> None:
    # M/M/1/h blocking with rho = load / (capacity - h): 1.65 slots on average of 16 (the benchmark's quiet
    # tenant) finds none of h free with probability 9.3 %, 1.2 %, 0.18 % for h = 1, 2, 3.
    assert adaptive_headroom(1.65, 16, 0.005, most=8) == 3
    assert adaptive_headroom(1.65, 16, 0.02, most=8) == 2
    assert adaptive_headroom(1.65, 16, 0.1, most=8) == 1
    assert adaptive_headroom(0.3, 16, 0.005, most=8) == 2  # a lighter tenant needs fewer
    assert adaptive_headroom(0.0, 16, 0.005, most=8) == 0  # nobody to keep them for
    assert adaptive_headroom(1.65, 64, 0.005, most=8) == 2  # a larger pool frees slots faster
    assert adaptive_headroom(12.0, 16, 0.005, most=4) == 4  # never more than the bound
    loads = [0.1 * i for i in range(60)]
    needed = [adaptive_headroom(load, 16, 0.005, most=16) for load in loads]
    assert needed == sorted(needed)  # more concurrency, more headroom


def test_the_reservation_grows_with_the_quiet_tenants_concurrency() -> None:
    clock = Clock()
    slots = Slots(16)
    queue = FairQueue("b", slots.room, capacity=lambda: 16, headroom=1, headroom_target=0.005, clock=clock)
    assert take_while_room(queue, slots, "quiet") == 16  # alone: every slot
    for _ in range(15):
        give_back(queue, slots, "quiet")
    clock.now += 60  # quiet has held one slot for a minute
    assert queue.concurrency("quiet") == pytest.approx(1.0, abs=0.01)
    assert take_while_room(queue, slots, "noisy") == 13
    assert slots.free == 2  # adaptive_headroom(1, 16, 0.005) free for quiet's next requests
    assert queue.reserve("noisy") == 2
    assert queue.room("quiet")  # which go straight in
    hold(queue, slots, "quiet", 2)
    clock.now += 60  # quiet now holds three at a time
    assert queue.concurrency("quiet") == pytest.approx(3.0, abs=0.01)
    assert queue.reserve("noisy") == 4  # the most: a quarter of the pool
    for _ in range(4):
        give_back(queue, slots, "noisy")
    assert take_while_room(queue, slots, "noisy") == 0  # four free now, all kept for quiet
    assert slots.free == 4
    assert queue.room("quiet")


def test_the_reservation_vanishes_when_the_quiet_tenant_goes_idle() -> None:
    clock = Clock()
    slots = Slots(16)
    queue = FairQueue("b", slots.room, capacity=lambda: 16, headroom=0, headroom_target=0.005, clock=clock)
    hold(queue, slots, "quiet", 3)
    clock.now += 60
    assert take_while_room(queue, slots, "noisy") == 9
    assert slots.free == 4
    for _ in range(3):
        give_back(queue, slots, "quiet")
    assert queue.reserve("noisy") == 4  # just finished: quiet is still active
    clock.now += queue.active_s + 0.01  # and then it sent nothing
    assert queue.reserve("noisy") == 0
    assert take_while_room(queue, slots, "noisy") == 7
    assert slots.free == 0  # the noisy tenant, alone now, fills the pool
    # quiet comes back: its concurrency is measured afresh, not from before it went idle
    give_back(queue, slots, "noisy")
    hold(queue, slots, "quiet")
    assert queue.concurrency("quiet") == pytest.approx(1.0)


def test_a_tenant_alone_gets_every_slot_with_adaptive_headroom() -> None:
    clock = Clock()
    slots = Slots(16)
    queue = FairQueue("b", slots.room, capacity=lambda: 16, headroom=1, headroom_target=0.005, clock=clock)
    assert take_while_room(queue, slots, "noisy") == 16
    clock.now += 60
    for _ in range(16):
        give_back(queue, slots, "noisy")
    assert take_while_room(queue, slots, "noisy") == 16
    assert queue.reserve("noisy") == 0


def test_the_reservation_stays_within_the_quiet_tenants_fair_share_and_the_fair_share_of_the_full_one() -> None:
    clock = Clock()
    slots = Slots(8)
    queue = FairQueue("b", slots.room, capacity=lambda: 8, headroom=0, headroom_target=0.005, clock=clock)
    hold(queue, slots, "quiet", 3)
    clock.now += 60
    # quiet holds 3 of its fair share of 4: one more slot is all that can be kept for it, though its concurrency
    # (3 of 8) would want more
    assert adaptive_headroom(queue.concurrency("quiet"), 8, 0.005, most=8) > 1
    assert queue.reserve("noisy") == 0  # noisy holds nothing: below its share, it takes slots freely
    assert take_while_room(queue, slots, "noisy") == 4
    assert queue.holding == {"quiet": 3, "noisy": 4}
    assert queue.reserve("noisy") == 1
    assert slots.free == 1
    # with a third tenant active, the shares are 8/3: quiet, holding 3, is no longer below its share, and what is
    # kept is the third's: one slot, its share less the one it holds
    hold(queue, slots, "third")
    assert queue.reserve("noisy") == 1
    assert queue.reserve("quiet") == 1  # quiet, above its share now, leaves it free too
    assert queue.reserve("third") == 0  # below its share
    give_back(queue, slots, "noisy")
    assert not queue.room("noisy")
    assert not queue.room("quiet")
    assert queue.room("third")


async def test_bounds_hold_with_adaptive_headroom() -> None:
    clock = Clock()
    slots = Slots(4)
    queue = FairQueue(
        "b", slots.room, capacity=lambda: 4, max_queued=3, max_queued_per_tenant=2, headroom_target=0.005, clock=clock
    )
    assert take_while_room(queue, slots, "noisy") == 4
    waiting = [asyncio.create_task(queue.wait("noisy", "standard")) for _ in range(2)]
    await eventually(lambda: queue.queued == 2)
    with pytest.raises(QueueRejected) as info:
        await queue.wait("noisy", "standard")
    assert info.value.reason == "tenant_queue_full"
    waiting.append(asyncio.create_task(queue.wait("quiet", "standard")))
    await eventually(lambda: queue.queued == 3)
    with pytest.raises(QueueRejected) as info:
        await queue.wait("other", "standard")
    assert info.value.reason == "queue_full"
    for task in waiting:
        task.cancel()
    await asyncio.gather(*waiting, return_exceptions=True)
    assert queue.queued == 0
