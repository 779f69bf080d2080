"""What the mock answers to a chat request: text, structured JSON, or tool calls, with usage.

The choice, in order: a tool call when tools are offered, ``tool_choice`` is not "none" and the last message is
not a tool result (so a conversation can continue after the result); JSON when ``response_format`` asks for it;
a reply quoting the tool result after one; otherwise words derived from the last user message. Which tools are
called, and how, is ``tool_calls``'s rule, shared with the Anthropic API.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import orjson

from interlock.mockprovider.answers import text_answer, tool_result_answer
from interlock.mockprovider.chat_request import ChatRequest, message_text
from interlock.mockprovider.settings import ChatTemplate, MockSettings
from interlock.mockprovider.tokens import (
    LLAMA3_PER_MESSAGE,
    LLAMA3_PREAMBLE,
    LLAMA3_TOOLS,
    REPLY_PRIMING,
    count_tokens,
    json_tokens,
    message_tokens,
    split_pieces,
    tool_definition_tokens,
)
from interlock.mockprovider.tool_calls import ToolCall, instance_json, make_tool_calls

__all__ = ["ChatAnswer", "ToolCall", "answer_chat", "prompt_tokens"]


@dataclass(frozen=True, slots=True)
class ChatAnswer:
    pieces: tuple[str, ...]  # content, one token per piece; empty for tool calls
    tool_calls: tuple[ToolCall, ...]
    finish_reason: str
    usage: dict[str, Any]

    @property
    def content(self) -> str | None:
        return None if self.tool_calls else "".join(self.pieces)


def prompt_tokens(request: ChatRequest, template: ChatTemplate = "openai") -> int:
    """A count of everything the model would read (the rule in ``tokens``), plus the response schema; with the
    ``llama3`` template, plus what Llama 3.1's chat template adds (``tokens.LLAMA3_*``)."""
    total = REPLY_PRIMING
    if template == "llama3":
        total += LLAMA3_PREAMBLE + LLAMA3_PER_MESSAGE * len(request.messages)
        if request.tools:
            total += LLAMA3_TOOLS
    for message in request.messages:
        content = message.get("content")
        images = 0
        if isinstance(content, list):
            images = sum(1 for part in content if isinstance(part, dict) and part.get("type") != "text")
        calls = []
        raw_calls = message.get("tool_calls")
        for call in raw_calls if isinstance(raw_calls, list) else ():
            function = call.get("function") if isinstance(call, dict) else None
            if isinstance(function, dict):
                calls.append((str(function.get("name", "")), str(function.get("arguments", ""))))
        total += message_tokens(message_text(message), images=images, calls=calls)
    total += tool_definition_tokens(request.tools)
    if request.response_format is not None:
        total += json_tokens(request.response_format)
    return total


def answer_chat(request: ChatRequest, settings: MockSettings) -> ChatAnswer:
    last_user = next((m for m in reversed(request.messages) if m["role"] == "user"), request.messages[-1])
    user_text = message_text(last_user)
    after_tool = request.messages[-1]["role"] == "tool"
    prompt = prompt_tokens(request, settings.chat_template)
    if request.tools and request.tool_choice != "none" and not after_tool:
        calls = make_tool_calls(
            request.tools,
            user_text,
            settings,
            forced=request.forced_tool,
            parallel_allowed=request.parallel_tool_calls,
            id_prefix="call_",
        )
        completion = sum(count_tokens(call.arguments) for call in calls)
        return ChatAnswer((), calls, "tool_calls", _usage(prompt, completion, settings))
    pieces: Sequence[str]
    if request.response_format is not None:
        pieces = split_pieces(_json_text(request.response_format))
    elif after_tool:
        pieces = tool_result_answer(message_text(request.messages[-1]), user_text, settings)
    else:
        pieces = text_answer(user_text, settings)
    finish = "stop"
    if request.max_tokens is not None and len(pieces) > request.max_tokens:
        pieces, finish = pieces[: request.max_tokens], "length"
    return ChatAnswer(tuple(pieces), (), finish, _usage(prompt, len(pieces), settings))


def _usage(prompt: int, completion: int, settings: MockSettings) -> dict[str, Any]:
    usage: dict[str, Any] = {
        "prompt_tokens": prompt,
        "completion_tokens": completion,
        "total_tokens": prompt + completion,
    }
    if settings.cached_tokens is not None:
        usage["prompt_tokens_details"] = {"cached_tokens": min(settings.cached_tokens, prompt)}
    return usage


def _json_text(response_format: dict[str, Any]) -> str:
    if response_format["type"] == "json_schema":
        schema = response_format["json_schema"].get("schema") or {"type": "object"}
        return instance_json(schema, "response_format")
    return orjson.dumps({"answer": "example", "ok": True}).decode()
