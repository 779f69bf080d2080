"""The fault suite's process cases (``bench/faults/cases/processes.py``): kill -9 of the gateway under load, the
control plane down and hung. Each must lose nothing, count nothing twice and leak nothing."""

from __future__ import annotations

import pytest

from bench.faults import Case
from bench.faults.cases.processes import CASES


@pytest.mark.timeout(180)
@pytest.mark.parametrize("case", CASES, ids=lambda c: c.name)
async def test_case(case: Case) -> None:
    outcome = await case.run()
    assert outcome.clean, outcome
    assert outcome.facts["200s"] > 0, outcome
