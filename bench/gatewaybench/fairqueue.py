"""What one admission decision of the fair queue costs at saturation, fixed headroom against headroomTarget.

    .venv/bin/python bench/gatewaybench/fairqueue.py [--decisions 20000]

In process, ``FairQueue._may_take`` (what ``room()`` and ``release()`` ask per tenant): one tenant holds 13 of 16
slots and asks for another, with 1, 9 or 99 other active tenants (two holding a slot, the rest served a moment
ago). Below a quarter of the pool from full nothing is looked up; this is the case where everything is.
"""

from __future__ import annotations

import argparse
import timeit

from interlock.gateway.pool.fairqueue import FairQueue


def saturated(target: float, tenants: int) -> FairQueue:
    queue = FairQueue("b", lambda: True, capacity=lambda: 16, headroom=1, headroom_target=target)
    for _ in range(13):
        queue.hold("noisy")
    for i in range(tenants - 1):
        queue.hold(f"quiet{i}")
        if i >= 2:
            queue.finished(0.5, f"quiet{i}")
    return queue


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--decisions", type=int, default=20000)
    n = parser.parse_args().decisions
    for tenants in (2, 10, 100):
        line = f"active tenants {tenants:>3}:"
        for label, target in (("headroom 1 only", 0.0), ("headroomTarget 0.005", 0.005)):
            queue = saturated(target, tenants)
            seconds = timeit.timeit(lambda q=queue: q._may_take("noisy"), number=n) / n
            line += f"  {label} {seconds * 1e6:6.2f} us (takes: {queue._may_take('noisy')})"
        print(line)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
