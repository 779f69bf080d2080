"""Validation of a chat completion request, into the few fields the mock's answer depends on."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from interlock.mockprovider.errors import MockError
from interlock.mockprovider.tool_calls import Tool

__all__ = ["ChatRequest", "message_text", "parse_chat_request"]


@dataclass(frozen=True, slots=True)
class ChatRequest:
    body: dict[str, Any]
    model: str
    messages: list[dict[str, Any]]
    stream: bool
    include_usage: bool
    max_tokens: int | None
    tools: tuple[Tool, ...]
    tool_choice: str | None  # "none" | "auto" | "required" | None (absent)
    forced_tool: str | None  # the function tool_choice names
    parallel_tool_calls: bool
    response_format: dict[str, Any] | None


def _invalid(message: str, param: str | None) -> MockError:
    return MockError(400, message, param=param, code="invalid_value" if param else None)


def message_text(message: dict[str, Any]) -> str:
    """The text of a message's content: a string, or the text parts of a list."""
    content = message.get("content")
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        return "\n".join(
            part["text"] for part in content if isinstance(part, dict) and isinstance(part.get("text"), str)
        )
    return ""


def _positive_int(body: dict[str, Any], name: str) -> int | None:
    value = body.get(name)
    if value is None:
        return None
    if not isinstance(value, int) or isinstance(value, bool) or value < 1:
        raise _invalid(f"Invalid '{name}': expected an integer of at least 1, got {value!r}.", name)
    return value


def _tools(body: dict[str, Any]) -> tuple[Tool, ...]:
    raw = body.get("tools")
    if raw is None:
        return ()
    if not isinstance(raw, list):
        raise _invalid("Invalid 'tools': expected an array.", "tools")
    tools = []
    for index, entry in enumerate(raw):
        function = entry.get("function") if isinstance(entry, dict) else None
        if not isinstance(function, dict) or not isinstance(function.get("name"), str) or not function["name"]:
            raise _invalid(f"Invalid 'tools[{index}]': expected a function with a name.", f"tools[{index}]")
        parameters = function.get("parameters")
        if parameters is None:
            parameters = {"type": "object", "properties": {}}
        if not isinstance(parameters, dict):
            raise _invalid(f"Invalid 'tools[{index}].function.parameters': expected an object.", f"tools[{index}]")
        description = function.get("description")
        tools.append(Tool(function["name"], parameters, description if isinstance(description, str) else ""))
    return tuple(tools)


def _tool_choice(body: dict[str, Any], tools: tuple[Tool, ...]) -> tuple[str | None, str | None]:
    choice = body.get("tool_choice")
    if choice is None or choice in ("none", "auto", "required"):
        return choice, None
    if isinstance(choice, dict):
        function = choice.get("function")
        name = function.get("name") if isinstance(function, dict) else None
        if isinstance(name, str):
            if name not in {tool.name for tool in tools}:
                raise _invalid(f"Invalid 'tool_choice': no tool named {name!r} in 'tools'.", "tool_choice")
            return "required", name
    raise _invalid(f"Invalid 'tool_choice': {choice!r}.", "tool_choice")


def _response_format(body: dict[str, Any]) -> dict[str, Any] | None:
    value = body.get("response_format")
    if value is None:
        return None
    kind = value.get("type") if isinstance(value, dict) else None
    if kind == "text":
        return None
    if kind == "json_object":
        return value  # type: ignore[no-any-return]
    if kind == "json_schema":
        spec = value.get("json_schema")
        if not isinstance(spec, dict) or not isinstance(spec.get("schema", {}), dict):
            message = "Invalid 'response_format.json_schema': expected an object with a schema."
            raise _invalid(message, "response_format")
        return value  # type: ignore[no-any-return]
    raise _invalid(f"Invalid 'response_format': unsupported type {kind!r}.", "response_format")


def parse_chat_request(body: Any) -> ChatRequest:
    if not isinstance(body, dict):
        raise _invalid("The request body must be a JSON object.", None)
    model = body.get("model")
    if not isinstance(model, str) or not model:
        raise MockError(400, "You must provide a model parameter.", param="model", code="missing_required_parameter")
    messages = body.get("messages")
    if not isinstance(messages, list) or not messages:
        raise _invalid("Invalid 'messages': expected a non-empty array of messages.", "messages")
    for index, message in enumerate(messages):
        if not isinstance(message, dict) or not isinstance(message.get("role"), str):
            raise _invalid(f"Invalid 'messages[{index}]': expected an object with a role.", f"messages[{index}]")
    n = body.get("n")
    if n is not None and n != 1:
        raise _invalid("The mock provider supports only n=1.", "n")
    stream = body.get("stream") is True
    options = body.get("stream_options")
    include_usage = stream and isinstance(options, dict) and options.get("include_usage") is True
    max_tokens = _positive_int(body, "max_completion_tokens") or _positive_int(body, "max_tokens")
    tools = _tools(body)
    tool_choice, forced_tool = _tool_choice(body, tools)
    return ChatRequest(
        body=body,
        model=model,
        messages=messages,
        stream=stream,
        include_usage=include_usage,
        max_tokens=max_tokens,
        tools=tools,
        tool_choice=tool_choice,
        forced_tool=forced_tool,
        parallel_tool_calls=body.get("parallel_tool_calls") is not False,
        response_format=_response_format(body),
    )
