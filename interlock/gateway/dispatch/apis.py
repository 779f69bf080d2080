"""The wire APIs the gateway speaks, and how a request crosses from the client's API to an upstream's.

A crossing is either a passthrough (same API: bytes relayed, only ``model`` rewritten) or a translator module
(``translate/<in>_<out>.py``). Each upstream provider speaks one API; a route may mix providers, so the crossing
is chosen per attempt, from the target's backend.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from enum import StrEnum
from typing import Any

from interlock.gateway.translate import anthropic_openai, openai_anthropic, responses_anthropic, responses_openai
from interlock.gateway.translate.base import StreamTranslator

__all__ = ["API", "CROSSINGS", "UPSTREAM_API", "UPSTREAM_PATH", "Crossing"]


class API(StrEnum):
    CHAT = "openai-chat"
    """OpenAI Chat Completions: OpenAI, vLLM, TGI, llama.cpp, Ollama, the mock provider."""
    MESSAGES = "anthropic-messages"
    """Anthropic Messages."""
    RESPONSES = "openai-responses"
    """OpenAI Responses (client side only: no upstream speaks it here)."""


UPSTREAM_API: dict[str, API] = {"openai": API.CHAT, "vllm": API.CHAT, "mock": API.CHAT, "anthropic": API.MESSAGES}
UPSTREAM_PATH: dict[API, str] = {API.CHAT: "/chat/completions", API.MESSAGES: "/messages"}


@dataclass(frozen=True, slots=True)
class Crossing:
    """How a request in one API reaches an upstream in another; all None for a passthrough."""

    upstream: API
    translate_request: Callable[[dict[str, Any]], dict[str, Any]] | None = None
    translate_response: Callable[[dict[str, Any], dict[str, Any]], dict[str, Any]] | None = None
    stream_translator: Callable[[dict[str, Any]], StreamTranslator] | None = None

    @property
    def passthrough(self) -> bool:
        return self.translate_request is None


def _translated(upstream: API, module: Any) -> Crossing:
    return Crossing(upstream, module.translate_request, module.translate_response, module.StreamTranslator)


CROSSINGS: dict[tuple[API, API], Crossing] = {
    (API.CHAT, API.CHAT): Crossing(API.CHAT),
    (API.CHAT, API.MESSAGES): _translated(API.MESSAGES, openai_anthropic),
    (API.MESSAGES, API.MESSAGES): Crossing(API.MESSAGES),
    (API.MESSAGES, API.CHAT): _translated(API.CHAT, anthropic_openai),
    (API.RESPONSES, API.CHAT): _translated(API.CHAT, responses_openai),
    (API.RESPONSES, API.MESSAGES): _translated(API.MESSAGES, responses_anthropic),
}
