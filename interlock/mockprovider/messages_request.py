"""Validation of an Anthropic Messages request, into the few fields the mock's answer depends on.

Errors name the field the way Anthropic does (``max_tokens: Field required``, ``messages.1.content.0...``), and
the checks Anthropic makes on a conversation hold here too: roles are user or assistant, each ``tool_result``
answers a ``tool_use`` of the assistant turn just before it, and that turn's tool uses are all answered.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

from interlock.mockprovider.errors import MockError
from interlock.mockprovider.tool_calls import Tool

__all__ = ["MessagesRequest", "block_text", "blocks_of", "parse_messages_request"]

_TOOL_NAME = re.compile(r"^[a-zA-Z0-9_-]{1,128}$")
_MIN_THINKING_BUDGET = 1024
_TOOL_CHOICES = ("auto", "any", "tool", "none")


@dataclass(frozen=True, slots=True)
class MessagesRequest:
    model: str
    messages: list[dict[str, Any]]  # each with ``content`` as a list of blocks
    system: str | None  # the system prompt's text
    max_tokens: int | None  # None only for count_tokens
    stream: bool
    stop_sequences: tuple[str, ...]
    tools: tuple[Tool, ...]
    tool_choice: str  # "auto" | "any" | "tool" | "none"
    forced_tool: str | None
    parallel_tool_use: bool
    thinking: bool


def _invalid(message: str) -> MockError:
    return MockError(400, message)


def blocks_of(content: Any) -> list[dict[str, Any]]:
    """Content as a list of blocks: a string is one text block."""
    if isinstance(content, str):
        return [{"type": "text", "text": content}]
    return content if isinstance(content, list) else []


def block_text(blocks: list[dict[str, Any]]) -> str:
    """The text of the text blocks, joined by newlines (what ``chat_request.message_text`` does for OpenAI)."""
    return "\n".join(block["text"] for block in blocks if block.get("type") == "text")


def _number(body: dict[str, Any], name: str, low: float, high: float | None, *, integer: bool = False) -> None:
    value = body.get(name)
    if value is None:
        return
    kinds = (int,) if integer else (int, float)
    if isinstance(value, bool) or not isinstance(value, kinds):
        raise _invalid(f"{name}: Input should be a valid {'integer' if integer else 'number'}")
    if value < low or (high is not None and value > high):
        raise _invalid(f"{name}: Input should be between {low:g} and {high:g}" if high else f"{name}: must be >= {low}")


def _block(block: Any, where: str, role: str) -> None:
    if not isinstance(block, dict) or not isinstance(block.get("type"), str):
        raise _invalid(f"{where}: Input should be an object with a type")
    kind = block["type"]
    if kind == "text" and not isinstance(block.get("text"), str):
        raise _invalid(f"{where}.text: Field required")
    if kind == "image":
        source = block.get("source")
        ok = isinstance(source, dict) and (
            (source.get("type") == "base64" and isinstance(source.get("data"), str) and "media_type" in source)
            or (source.get("type") == "url" and isinstance(source.get("url"), str))
        )
        if not ok:
            raise _invalid(f"{where}.source: expected a base64 source (media_type, data) or a url source")
    if kind == "tool_use":
        if role != "assistant":
            raise _invalid(f"{where}: tool_use blocks may only appear in assistant messages")
        if not isinstance(block.get("id"), str) or not isinstance(block.get("name"), str):
            raise _invalid(f"{where}: tool_use blocks need an id and a name")
        if not isinstance(block.get("input"), dict):
            raise _invalid(f"{where}.input: Input should be a valid dictionary")
    if kind == "tool_result":
        if role != "user":
            raise _invalid(f"{where}: tool_result blocks may only appear in user messages")
        if not isinstance(block.get("tool_use_id"), str):
            raise _invalid(f"{where}.tool_use_id: Field required")
        content = block.get("content", "")
        if not isinstance(content, str | list):
            raise _invalid(f"{where}.content: Input should be a valid string or list of blocks")
        for index, inner in enumerate(blocks_of(content)):
            _block(inner, f"{where}.content.{index}", "tool")


def _messages(body: dict[str, Any]) -> list[dict[str, Any]]:
    raw = body.get("messages")
    if raw is None:
        raise _invalid("messages: Field required")
    if not isinstance(raw, list) or not raw:
        raise _invalid("messages: at least one message is required")
    messages = []
    for index, message in enumerate(raw):
        if not isinstance(message, dict):
            raise _invalid(f"messages.{index}: Input should be a valid dictionary")
        role = message.get("role")
        if role not in ("user", "assistant"):
            raise _invalid(f"messages.{index}.role: Input should be 'user' or 'assistant'")
        content = message.get("content")
        if not isinstance(content, str | list):
            raise _invalid(f"messages.{index}.content: Input should be a valid string or list of blocks")
        for position, block in enumerate(blocks_of(content)):
            _block(block, f"messages.{index}.content.{position}", role)
        messages.append({**message, "content": blocks_of(content)})
    _check_tool_pairs(messages)
    return messages


def _check_tool_pairs(messages: list[dict[str, Any]]) -> None:
    for index, message in enumerate(messages):
        results = {b["tool_use_id"] for b in message["content"] if b.get("type") == "tool_result"}
        before = messages[index - 1] if index else None
        uses = set()
        if before is not None and before["role"] == "assistant":
            uses = {b["id"] for b in before["content"] if b.get("type") == "tool_use"}
        if results - uses:
            unknown = sorted(results - uses)[0]
            raise _invalid(
                f"messages.{index}.content: unexpected `tool_use_id` found in `tool_result` blocks: {unknown}. "
                "Each `tool_result` block must have a corresponding `tool_use` block in the previous message."
            )
        if uses and message["role"] == "user" and uses - results:
            missing = sorted(uses - results)[0]
            raise _invalid(
                f"messages.{index}: `tool_use` ids were found without `tool_result` blocks immediately after: "
                f"{missing}. Each `tool_use` block must have a corresponding `tool_result` block in the next message."
            )


def _system(body: dict[str, Any]) -> str | None:
    system = body.get("system")
    if system is None or isinstance(system, str):
        return system
    if isinstance(system, list) and all(isinstance(b, dict) and isinstance(b.get("text"), str) for b in system):
        return block_text([{**b, "type": "text"} for b in system])
    raise _invalid("system: Input should be a valid string or a list of text blocks")


def _tools(body: dict[str, Any]) -> tuple[Tool, ...]:
    raw = body.get("tools")
    if raw is None:
        return ()
    if not isinstance(raw, list):
        raise _invalid("tools: Input should be a valid list")
    tools = []
    for index, entry in enumerate(raw):
        if not isinstance(entry, dict):
            raise _invalid(f"tools.{index}: Input should be a valid dictionary")
        if entry.get("type") not in (None, "custom"):
            continue  # a server tool (web search, …): the mock never calls one
        name, schema = entry.get("name"), entry.get("input_schema")
        if not isinstance(name, str) or not _TOOL_NAME.match(name):
            raise _invalid(f"tools.{index}.name: String should match pattern '^[a-zA-Z0-9_-]{{1,128}}$'")
        if not isinstance(schema, dict):
            raise _invalid(f"tools.{index}.input_schema: Field required")
        description = entry.get("description")
        tools.append(Tool(name, schema, description if isinstance(description, str) else ""))
    return tuple(tools)


def _tool_choice(body: dict[str, Any], tools: tuple[Tool, ...]) -> tuple[str, str | None, bool]:
    choice = body.get("tool_choice")
    if choice is None:
        return "auto", None, True
    kind = choice.get("type") if isinstance(choice, dict) else None
    if kind not in _TOOL_CHOICES:
        raise _invalid("tool_choice.type: Input should be 'auto', 'any', 'tool' or 'none'")
    assert isinstance(choice, dict)
    parallel = choice.get("disable_parallel_tool_use") is not True
    if kind in ("any", "tool") and not tools:
        raise _invalid("tool_choice: may only be specified while providing tools")
    if kind != "tool":
        return kind, None, parallel
    name = choice.get("name")
    if not isinstance(name, str):
        raise _invalid("tool_choice.tool.name: Field required")
    if name not in {tool.name for tool in tools}:
        raise _invalid(f"tool_choice: tool {name!r} not found in 'tools'")
    return kind, name, parallel


def _thinking(body: dict[str, Any], max_tokens: int | None) -> bool:
    thinking = body.get("thinking")
    if thinking is None:
        return False
    kind = thinking.get("type") if isinstance(thinking, dict) else None
    if kind == "disabled":
        return False
    if kind == "adaptive":
        return True
    if kind != "enabled":
        raise _invalid("thinking.type: Input should be 'enabled', 'disabled' or 'adaptive'")
    assert isinstance(thinking, dict)
    budget = thinking.get("budget_tokens")
    if not isinstance(budget, int) or isinstance(budget, bool):
        raise _invalid("thinking.enabled.budget_tokens: Field required")
    if budget < _MIN_THINKING_BUDGET:
        raise _invalid(
            f"thinking.enabled.budget_tokens: Input should be greater than or equal to {_MIN_THINKING_BUDGET}"
        )
    if max_tokens is not None and budget >= max_tokens:
        raise _invalid("`max_tokens` must be greater than `thinking.budget_tokens`.")
    return True


def parse_messages_request(body: Any, *, count_only: bool = False) -> MessagesRequest:
    """``count_only``: the body of ``/v1/messages/count_tokens``, which has no ``max_tokens``."""
    if not isinstance(body, dict):
        raise _invalid("The request body must be a JSON object.")
    model = body.get("model")
    if not isinstance(model, str) or not model:
        raise _invalid("model: Field required")
    max_tokens = body.get("max_tokens")
    if not count_only:
        if max_tokens is None:
            raise _invalid("max_tokens: Field required")
        _number(body, "max_tokens", 1, None, integer=True)
    messages = _messages(body)
    _number(body, "temperature", 0, 1)
    _number(body, "top_p", 0, 1)
    _number(body, "top_k", 0, None, integer=True)
    stops = body.get("stop_sequences") or []
    if not isinstance(stops, list) or not all(isinstance(s, str) for s in stops):
        raise _invalid("stop_sequences: Input should be a valid list of strings")
    if not isinstance(body.get("metadata", {}), dict):
        raise _invalid("metadata: Input should be a valid dictionary")
    tools = _tools(body)
    tool_choice, forced, parallel = _tool_choice(body, tools)
    thinking = _thinking(body, None if count_only else max_tokens)
    if thinking and tool_choice in ("any", "tool"):
        raise _invalid("Thinking may not be enabled when tool_choice forces tool use.")
    return MessagesRequest(
        model=model,
        messages=messages,
        system=_system(body),
        max_tokens=None if count_only else max_tokens,
        stream=body.get("stream") is True,
        stop_sequences=tuple(s for s in stops if s),
        tools=tools,
        tool_choice=tool_choice,
        forced_tool=forced,
        parallel_tool_use=parallel,
        thinking=thinking,
    )
