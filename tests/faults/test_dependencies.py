"""The fault suite's dependency cases (``bench/faults/cases/dependencies.py``): Redis refused, hung and with a
wrong password, Postgres stopped under ingest. Each must lose nothing, count nothing twice and leak nothing."""

from __future__ import annotations

import pytest

from bench.faults import Case
from bench.faults.cases.dependencies import CASES


@pytest.mark.timeout(180)
@pytest.mark.parametrize("case", CASES, ids=lambda c: c.name)
async def test_case(case: Case) -> None:
    outcome = await case.run()
    assert outcome.clean, outcome
    assert outcome.facts["200s"] > 0, outcome
