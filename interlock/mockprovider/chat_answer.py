"""What the mock answers to a chat request: text, structured JSON, or tool calls, with usage.

The choice, in order: a tool call when tools are offered, ``tool_choice`` is not "none" and the last message is
not a tool result (so a conversation can continue after the result); JSON when ``response_format`` asks for it;
a reply quoting the tool result after one; otherwise words derived from the last user message.
Two tools are called at once when parallel calls are allowed, several tools are offered, no single tool is forced,
and the last user message says "parallel" or "both".
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import orjson

from interlock.mockprovider.answers import answer_pieces, seed_of
from interlock.mockprovider.chat_request import ChatRequest, Tool, message_text
from interlock.mockprovider.errors import MockError
from interlock.mockprovider.schema_instances import instance_for
from interlock.mockprovider.settings import MockSettings
from interlock.mockprovider.tokens import count_tokens, split_pieces

__all__ = ["ChatAnswer", "ToolCall", "answer_chat", "prompt_tokens"]

_PARALLEL = re.compile(r"\b(parallel|both)\b", re.IGNORECASE)
_QUOTE_CHARS = 40
_MESSAGE_OVERHEAD = 3
_IMAGE_TOKENS = 85


@dataclass(frozen=True, slots=True)
class ToolCall:
    id: str
    name: str
    arguments: str  # JSON text
    fragments: tuple[str, ...]  # what a stream sends, concatenating to ``arguments``


@dataclass(frozen=True, slots=True)
class ChatAnswer:
    pieces: tuple[str, ...]  # content, one token per piece; empty for tool calls
    tool_calls: tuple[ToolCall, ...]
    finish_reason: str
    usage: dict[str, Any]

    @property
    def content(self) -> str | None:
        return None if self.tool_calls else "".join(self.pieces)


def prompt_tokens(request: ChatRequest) -> int:
    """A count of everything the model would read: message texts, tool calls, tool definitions, the schema."""
    total = 0
    for message in request.messages:
        total += _MESSAGE_OVERHEAD + count_tokens(message_text(message))
        content = message.get("content")
        if isinstance(content, list):
            total += _IMAGE_TOKENS * sum(1 for part in content if isinstance(part, dict) and part.get("type") != "text")
        calls = message.get("tool_calls")
        for call in calls if isinstance(calls, list) else ():
            function = call.get("function") if isinstance(call, dict) else None
            if isinstance(function, dict):
                total += count_tokens(str(function.get("name", ""))) + count_tokens(str(function.get("arguments", "")))
    if request.body.get("tools"):
        total += count_tokens(orjson.dumps(request.body["tools"]).decode())
    if request.response_format is not None:
        total += count_tokens(orjson.dumps(request.response_format).decode())
    return total


def answer_chat(request: ChatRequest, settings: MockSettings) -> ChatAnswer:
    last_user = next((m for m in reversed(request.messages) if m["role"] == "user"), request.messages[-1])
    user_text = message_text(last_user)
    seed = seed_of(user_text)
    after_tool = request.messages[-1]["role"] == "tool"
    prompt = prompt_tokens(request)
    if request.tools and request.tool_choice != "none" and not after_tool:
        calls = _tool_calls(request, user_text, seed, settings)
        completion = sum(count_tokens(call.arguments) for call in calls)
        return ChatAnswer((), calls, "tool_calls", _usage(prompt, completion, settings))
    pieces: Sequence[str]
    if request.response_format is not None:
        pieces = split_pieces(_json_text(request.response_format))
    elif after_tool:
        quoted = message_text(request.messages[-1])[:_QUOTE_CHARS]
        rest = "".join(answer_pieces(seed, settings.min_answer_tokens))
        pieces = split_pieces(f'The tool returned "{quoted}". {rest}')
    else:
        span = settings.max_answer_tokens - settings.min_answer_tokens + 1
        pieces = answer_pieces(seed, settings.stream_chunks or settings.min_answer_tokens + seed % span)
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
        return _instance_json(schema, "response_format")
    return orjson.dumps({"answer": "example", "ok": True}).decode()


def _instance_json(schema: Any, param: str) -> str:
    try:
        return orjson.dumps(instance_for(schema)).decode()
    except (TypeError, ValueError, RecursionError) as exc:  # a malformed schema, e.g. "minimum": "one"
        raise MockError(400, f"Invalid JSON schema in '{param}': {exc}", param=param, code="invalid_value") from exc


def _tool_calls(request: ChatRequest, user_text: str, seed: int, settings: MockSettings) -> tuple[ToolCall, ...]:
    chosen: list[Tool]
    if request.forced_tool is not None:
        chosen = [t for t in request.tools if t.name == request.forced_tool]
    elif request.parallel_tool_calls and len(request.tools) > 1 and _PARALLEL.search(user_text):
        chosen = list(request.tools[:2])
    else:
        chosen = [request.tools[0]]
    return tuple(_tool_call(tool, seed, index, settings) for index, tool in enumerate(chosen))


def _tool_call(tool: Tool, seed: int, index: int, settings: MockSettings) -> ToolCall:
    arguments = _instance_json(tool.parameters, "tools")
    call_id = "call_" + hashlib.blake2b(f"{seed}:{index}:{tool.name}".encode(), digest_size=12).hexdigest()
    pieces = split_pieces(arguments)
    groups = settings.stream_chunks or max(1, (len(pieces) + 3) // 4)
    return ToolCall(call_id, tool.name, arguments, _regroup(pieces, groups))


def _regroup(pieces: list[str], groups: int) -> tuple[str, ...]:
    """``pieces`` joined into at most ``groups`` consecutive fragments of near-equal size."""
    groups = max(1, min(groups, len(pieces)))
    size, extra = divmod(len(pieces), groups)
    fragments = []
    start = 0
    for index in range(groups):
        end = start + size + (1 if index < extra else 0)
        fragments.append("".join(pieces[start:end]))
        start = end
    return tuple(fragments)
