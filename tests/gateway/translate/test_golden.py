"""Golden fixtures for the OpenAI <-> Anthropic translators (conventions 3 and 4).

Each case is a folder ``tests/testdata/translate/<pair>/<case>/`` holding ``request.json`` (the client's body) and
either ``error.txt`` (a substring of the ``ValueError`` the request translation must raise) or
``upstream_request.json`` (its expected translation) with one or both of:

- unary: ``upstream_response.json`` (the upstream's answer) and ``response.json`` (what the client gets);
- stream: ``upstream_stream.sse`` (raw SSE as the upstream sends it), ``stream.sse`` (what the client gets,
  ``finish()`` included) and ``usage.json`` (the last usage ``feed`` reported, or null).

Outputs are compared exactly (JSON-equal; streams as lists of (event name, data)) and validated with the official
SDKs' types (streams also through the SDKs' own stream accumulators); every input must be unchanged afterwards.
A case folder with a missing or unknown file fails.
"""

from __future__ import annotations

import copy
import dataclasses
import json
import re
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest

from interlock.gateway.translate import anthropic_openai, openai_anthropic
from interlock.gateway.translate.base import DONE, Event
from tests.gateway.translate.wire import (
    anthropic_stream_message,
    check_anthropic_event,
    check_anthropic_message,
    check_openai_chunk,
    check_openai_completion,
    openai_stream_completion,
    parse_sse,
)

ROOT = Path(__file__).resolve().parents[2] / "testdata" / "translate"
PAIRS: dict[str, ModuleType] = {"openai_anthropic": openai_anthropic, "anthropic_openai": anthropic_openai}
UNARY = {"upstream_response.json", "response.json"}
STREAM = {"upstream_stream.sse", "stream.sse", "usage.json"}
# Per pair: checks for (the client's response, the upstream's response, the client's events, the upstream's events).
CHECKS = {
    "openai_anthropic": (check_openai_completion, check_anthropic_message, check_openai_chunk, check_anthropic_event),
    "anthropic_openai": (check_anthropic_message, check_openai_completion, check_anthropic_event, check_openai_chunk),
}
# Upstream fixtures that the SDK types refuse on purpose: an Anthropic-compatible server that omits ``usage``.
NOT_SDK_VALID_UPSTREAM = {"openai_anthropic/stream_upstream_without_usage"}


def _cases() -> list[Any]:
    params = []
    for pair in PAIRS:
        for case in sorted(p for p in (ROOT / pair).iterdir() if p.is_dir()):
            params.append(pytest.param(pair, case, id=f"{pair}/{case.name}"))
    return params


def _json(path: Path) -> Any:
    return json.loads(path.read_text())


def _pairs(events: list[Event]) -> list[tuple[str | None, Any]]:
    return [(event.name, event.data) for event in events]


def test_every_pair_has_cases() -> None:
    for pair in PAIRS:
        assert len([p for p in (ROOT / pair).iterdir() if p.is_dir()]) >= 17, pair


@pytest.mark.parametrize(("pair", "case"), _cases())
def test_golden(pair: str, case: Path) -> None:
    module = PAIRS[pair]
    check_response, check_upstream_response, check_event, check_upstream_event = CHECKS[pair]
    files = {p.name for p in case.iterdir()}
    assert "request.json" in files, f"{case} has no request.json"
    request = _json(case / "request.json")
    pristine = copy.deepcopy(request)

    if "error.txt" in files:
        assert files == {"request.json", "error.txt"}, f"{case}: an error case holds request.json and error.txt only"
        with pytest.raises(ValueError, match=re.escape((case / "error.txt").read_text().strip())):
            module.translate_request(request)
        assert request == pristine
        return

    assert "upstream_request.json" in files, f"{case} has no upstream_request.json"
    has_unary, has_stream = bool(files & UNARY), bool(files & STREAM)
    assert has_unary or has_stream, f"{case} has neither unary nor stream files"
    assert not has_unary or files >= UNARY, f"{case} lacks {sorted(UNARY - files)}"
    assert not has_stream or files >= STREAM, f"{case} lacks {sorted(STREAM - files)}"
    assert files <= {"request.json", "upstream_request.json"} | UNARY | STREAM, f"{case} has unknown files"

    assert module.translate_request(request) == _json(case / "upstream_request.json")
    assert request == pristine, "translate_request mutated its input"

    if has_unary:
        upstream = _json(case / "upstream_response.json")
        check_upstream_response(upstream)
        upstream_pristine = copy.deepcopy(upstream)
        response = module.translate_response(upstream, request)
        assert response == _json(case / "response.json")
        check_response(response)
        assert upstream == upstream_pristine, "translate_response mutated the upstream response"
        assert request == pristine, "translate_response mutated the request"

    if has_stream:
        upstream_events = parse_sse((case / "upstream_stream.sse").read_text())
        if f"{pair}/{case.name}" not in NOT_SDK_VALID_UPSTREAM:
            for event in upstream_events:
                check_upstream_event(event)
        upstream_pristine = copy.deepcopy(upstream_events)
        translator = module.StreamTranslator(request)
        out: list[Event] = []
        usage = None
        for event in upstream_events:
            events, seen = translator.feed(event)
            out.extend(events)
            usage = seen if seen is not None else usage
        out.extend(translator.finish())
        assert _pairs(out) == _pairs(parse_sse((case / "stream.sse").read_text()))
        for event in out:
            check_event(event)
        if not any(event.name == "error" or "error" in event.data for event in out if event.data != DONE):
            accumulate = openai_stream_completion if pair == "openai_anthropic" else anthropic_stream_message
            accumulate(out)  # the client's SDK accepts the stream as a whole, not only event by event
        expected_usage = _json(case / "usage.json")
        assert (dataclasses.asdict(usage) if usage is not None else None) == expected_usage
        assert upstream_events == upstream_pristine, "the stream translator mutated an upstream event"
        assert request == pristine, "the stream translator mutated the request"
