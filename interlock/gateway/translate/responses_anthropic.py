"""Responses API in, Anthropic Messages out: the two translators through Chat Completions, composed.

Chat Completions is the pivot both sides already map completely, so composing keeps one mapping per API
instead of a third hand-written one that would drift from the other two.
"""

from __future__ import annotations

from typing import Any

from interlock.gateway.translate import openai_anthropic, responses_openai
from interlock.gateway.translate.base import Event
from interlock.gateway.usage.metering import Usage

__all__ = ["StreamTranslator", "translate_request", "translate_response"]


def translate_request(request: dict[str, Any]) -> dict[str, Any]:
    return openai_anthropic.translate_request(responses_openai.translate_request(request))


def translate_response(response: dict[str, Any], request: dict[str, Any]) -> dict[str, Any]:
    chat_request = responses_openai.translate_request(request)
    chat = openai_anthropic.translate_response(response, chat_request)
    return responses_openai.translate_response(chat, request)


class StreamTranslator:
    def __init__(self, request: dict[str, Any]) -> None:
        self._anthropic = openai_anthropic.StreamTranslator(responses_openai.translate_request(request))
        self._responses = responses_openai.StreamTranslator(request)

    def _through(self, events: list[Event]) -> list[Event]:
        out: list[Event] = []
        for event in events:
            out.extend(self._responses.feed(event)[0])
        return out

    def feed(self, event: Event) -> tuple[list[Event], Usage | None]:
        chat_events, usage = self._anthropic.feed(event)
        return self._through(chat_events), usage

    def finish(self) -> list[Event]:
        return [*self._through(self._anthropic.finish()), *self._responses.finish()]
