"""Reading a raw Anthropic event stream in tests: ``event: <type>`` and ``data: <json>`` per event."""

from __future__ import annotations

from typing import Any

import orjson

__all__ = ["anthropic_events"]


def anthropic_events(text: str) -> list[dict[str, Any]]:
    """The data of each event, checking that every event is named after its data's ``type``."""
    events = []
    for block in text.split("\n\n"):
        if not block:
            continue
        name, data = block.split("\n")
        assert name.startswith("event: ")
        assert data.startswith("data: ")
        event = orjson.loads(data.removeprefix("data: "))
        assert event["type"] == name.removeprefix("event: ")
        events.append(event)
    return events
