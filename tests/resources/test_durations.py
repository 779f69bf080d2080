"""Go-style durations and status conditions."""

from __future__ import annotations

import re
from datetime import UTC, datetime

import pytest
from pydantic import ValidationError

from interlock.resources import Condition, RetryPolicy, RouteTimeouts, parse_duration, set_condition


@pytest.mark.parametrize(
    ("text", "seconds"),
    [
        ("250ms", 0.25),
        ("0s", 0.0),
        ("30s", 30.0),
        ("1.5s", 1.5),
        ("5m", 300.0),
        ("1m30s", 90.0),
        ("2h", 7200.0),
        ("1h2m3s4ms", 3723.004),
    ],
)
def test_parse_duration(text: str, seconds: float) -> None:
    assert parse_duration(text) == pytest.approx(seconds)


@pytest.mark.parametrize("text", ["", "5", "s", "5 minutes", "1m 30s", "-1s", "1d", "1.s", "30S", " 30s"])
def test_parse_duration_rejects(text: str) -> None:
    with pytest.raises(ValueError, match="bad duration") as info:
        parse_duration(text)
    assert repr(text) in str(info.value)
    assert "250ms" in str(info.value), "the message shows what a duration looks like"


def test_duration_fields_keep_the_text() -> None:
    policy = RetryPolicy.model_validate({"backoff": "1m30s"})
    assert policy.backoff == "1m30s"
    assert RouteTimeouts().request == "300s"
    with pytest.raises(ValidationError, match="bad duration '10 sec'"):
        RouteTimeouts.model_validate({"firstToken": "10 sec"})


T0 = datetime(2025, 1, 2, 3, 4, 5, tzinfo=UTC)
T1 = datetime(2025, 1, 2, 4, 0, 0, tzinfo=UTC)
T0_TEXT = "2025-01-02T03:04:05Z"
T1_TEXT = "2025-01-02T04:00:00Z"


def test_set_condition_appends_with_a_timestamp() -> None:
    conditions = set_condition([], Condition(type="Ready", status="False", reason="Pending"), now=T0)
    assert conditions == [Condition(type="Ready", status="False", reason="Pending", last_transition_time=T0_TEXT)]


def test_same_status_keeps_transition_time_but_updates_the_rest() -> None:
    before = set_condition([], Condition(type="Ready", status="False", reason="Pending"), now=T0)
    after = set_condition(
        before,
        Condition(type="Ready", status="False", reason="BackendMissing", message="x", observed_generation=2),
        now=T1,
    )
    [cond] = after
    assert cond.last_transition_time == T0_TEXT
    assert (cond.reason, cond.message, cond.observed_generation) == ("BackendMissing", "x", 2)


def test_status_change_moves_transition_time() -> None:
    before = set_condition([], Condition(type="Ready", status="False"), now=T0)
    [cond] = set_condition(before, Condition(type="Ready", status="True", reason="Ready"), now=T1)
    assert cond.last_transition_time == T1_TEXT
    assert cond.status == "True"


def test_condition_without_transition_time_gets_one() -> None:
    [cond] = set_condition([Condition(type="Ready", status="True")], Condition(type="Ready", status="True"), now=T1)
    assert cond.last_transition_time == T1_TEXT


def test_other_conditions_stay_in_place_and_input_is_not_mutated() -> None:
    accepted = Condition(type="Accepted", status="True", last_transition_time=T0_TEXT)
    ready = Condition(type="Ready", status="False", last_transition_time=T0_TEXT)
    original = [accepted, ready]
    updated = set_condition(original, Condition(type="Accepted", status="False", reason="Invalid"), now=T1)
    assert [c.type for c in updated] == ["Accepted", "Ready"]
    assert updated[1] is ready
    assert updated[0].last_transition_time == T1_TEXT
    assert original == [accepted, ready]
    assert accepted.status == "True"


def test_set_condition_defaults_to_now_in_utc() -> None:
    [cond] = set_condition([], Condition(type="Ready", status="Unknown"))
    assert cond.last_transition_time is not None
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ", cond.last_transition_time)
    stamp = datetime.strptime(cond.last_transition_time, "%Y-%m-%dT%H:%M:%SZ").replace(tzinfo=UTC)
    assert abs((datetime.now(UTC) - stamp).total_seconds()) < 60


def test_condition_reason_must_be_camel_case() -> None:
    with pytest.raises(ValidationError, match="reason"):
        Condition(type="Ready", status="False", reason="backend missing")
    assert Condition.model_validate({"type": "Ready", "status": "True", "lastTransitionTime": T0_TEXT}).model_dump(
        by_alias=True, exclude_none=True
    ) == {"type": "Ready", "status": "True", "reason": "", "message": "", "lastTransitionTime": T0_TEXT}
