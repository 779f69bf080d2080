"""Why generation stopped: Anthropic's ``stop_reason`` and OpenAI's ``finish_reason``, both ways.

Anthropic → OpenAI: ``end_turn``, ``stop_sequence`` and ``pause_turn`` are ``stop`` (OpenAI has no "paused"; a
paused server-tool turn ends the client's turn); ``max_tokens`` and ``model_context_window_exceeded`` are
``length``; ``tool_use`` is ``tool_calls``; ``refusal`` is ``content_filter``.

OpenAI → Anthropic: ``stop`` is ``end_turn``, or ``stop_sequence`` when the upstream names the stop string it
matched (vLLM's non-standard ``choices[].stop_reason``) and the client asked for that string; ``length`` is
``max_tokens``; ``tool_calls`` (and the legacy ``function_call``) is ``tool_use``; ``content_filter`` is
``refusal``. An answer that carries tool calls is ``tool_use`` whatever the upstream said, since some
OpenAI-compatible servers finish tool calls with ``stop``.
"""

from __future__ import annotations

from typing import Any

__all__ = ["finish_reason", "stop_reason"]

_FINISH_BY_STOP = {
    "end_turn": "stop",
    "stop_sequence": "stop",
    "pause_turn": "stop",
    "max_tokens": "length",
    "model_context_window_exceeded": "length",
    "tool_use": "tool_calls",
    "refusal": "content_filter",
}

_STOP_BY_FINISH = {
    "stop": "end_turn",
    "length": "max_tokens",
    "tool_calls": "tool_use",
    "function_call": "tool_use",
    "content_filter": "refusal",
}


def finish_reason(stop_reason: Any) -> str:
    """OpenAI's ``finish_reason`` for an Anthropic ``stop_reason`` (``stop`` for unknown or missing ones)."""
    return _FINISH_BY_STOP.get(stop_reason, "stop") if isinstance(stop_reason, str) else "stop"


def stop_reason(
    finish: Any, *, tool_calls: bool, matched: Any = None, stop_sequences: Any = None
) -> tuple[str, str | None]:
    """Anthropic's ``(stop_reason, stop_sequence)`` for an OpenAI ``finish_reason``.

    ``matched`` is the upstream's report of the stop string it hit, if any; it counts only when it is one of the
    client's ``stop_sequences``.
    """
    if tool_calls and finish in (None, "stop", "tool_calls", "function_call"):
        return "tool_use", None
    reason = _STOP_BY_FINISH.get(finish, "end_turn") if isinstance(finish, str) else "end_turn"
    if (
        reason == "end_turn"
        and isinstance(matched, str)
        and isinstance(stop_sequences, list)
        and matched in stop_sequences
    ):
        return "stop_sequence", matched
    return reason, None
