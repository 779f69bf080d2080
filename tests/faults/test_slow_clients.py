"""The slow-client fault cases (``bench/faults/cases/slow_clients.py``): every slow connection closed by the
gateway's timeouts, every normal request served and metered once."""

from __future__ import annotations

import pytest

from bench.faults import Case
from bench.faults.cases.slow_clients import CASES


@pytest.mark.timeout(180)
@pytest.mark.parametrize("case", CASES, ids=lambda c: c.name)
async def test_slow_client_case_is_clean(case: Case) -> None:
    outcome = await case.run()
    counts = f"lost {outcome.lost}, counted twice {outcome.double_counted}, leaked {outcome.leaked}"
    assert outcome.clean, f"{case.name}: {counts}: {outcome.detail}"
