"""The translator contract between two wire APIs.

A translator module is named ``<in>_<out>.py`` (the client's API, then the upstream's) and exposes:

- ``translate_request(request: dict) -> dict``: the client's request body as the upstream's request body.
- ``translate_response(response: dict, request: dict) -> dict``: the upstream's unary answer as the client's;
  ``request`` is the client's original request, for context (for example a structured-output tool to unwrap).
- ``StreamTranslator(request: dict)``: one per streamed request. ``feed(event)`` takes one upstream event and
  returns the client events it produces plus the usage seen so far; ``finish()`` returns what closes the
  client's stream when the upstream has ended (terminators, blocks left open).

Translators are pure: no I/O, no logging of payloads, and they never mutate their inputs, so a retry can
translate the same request again. Usage is normalised into ``metering.Usage``.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Protocol

from interlock.gateway.usage.metering import Usage

__all__ = ["DONE", "Event", "StreamTranslator"]

DONE = "[DONE]"
"""``Event.data`` of OpenAI's stream terminator, ``data: [DONE]``."""


@dataclass(frozen=True, slots=True)
class Event:
    """One server-sent event: ``data`` is the decoded JSON payload (or ``DONE``); ``name`` is the SSE ``event:``
    field, which the Anthropic and Responses APIs set and OpenAI chat completions do not."""

    data: Any
    name: str | None = None


class StreamTranslator(Protocol):
    def feed(self, event: Event) -> tuple[list[Event], Usage | None]: ...

    def finish(self) -> list[Event]: ...
