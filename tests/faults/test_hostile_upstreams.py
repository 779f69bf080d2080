"""The hostile-upstream fault cases (``bench/faults/cases/hostile_upstreams.py``): nothing lost, counted twice or
leaked."""

from __future__ import annotations

import pytest

from bench.faults import Case
from bench.faults.cases.hostile_upstreams import CASES


@pytest.mark.timeout(180)
@pytest.mark.parametrize("case", CASES, ids=lambda c: c.name)
async def test_hostile_upstream_case_is_clean(case: Case) -> None:
    outcome = await case.run()
    counts = f"lost {outcome.lost}, counted twice {outcome.double_counted}, leaked {outcome.leaked}"
    assert outcome.clean, f"{case.name}: {counts}: {outcome.detail}"
