"""Anthropic Messages in, OpenAI Chat Completions out (OpenAI, vLLM and other compatible servers, the mock).

Request, mapped:
- ``system`` (a string, or text blocks joined with a newline) becomes one leading system message.
- User turns: string content stays a string; ``text`` blocks become text parts; ``image`` blocks become
  ``image_url`` parts (a base64 source as a ``data:`` URL, a ``url`` source as is); a base64 PDF ``document``
  becomes a ``file`` part and a plain-text document a text part. ``tool_result`` blocks become ``role: tool``
  messages placed before the rest of the turn (OpenAI wants them right after the assistant's ``tool_calls``):
  their content is flattened to text (blocks joined with a newline), ``is_error: true`` prefixes it with
  ``ERROR_PREFIX``, and images in a result (OpenAI tool messages carry text only) move to a user message after
  the tool messages.
- Assistant turns: text blocks are joined into ``content`` (null when there is none but tool calls);
  ``tool_use`` blocks become ``tool_calls`` with ``input`` as compact JSON ``arguments``.
- ``tools`` (custom tools) become function tools (``input_schema`` as ``parameters``); ``tool_choice``
  ``auto``/``any``/``tool``/``none`` becomes ``auto``/``required``/named/``none``; ``disable_parallel_tool_use``
  becomes ``parallel_tool_calls: false``.
- Structured output, ``output_config.format`` (or the beta's ``output_format``) ``json_schema``, becomes
  ``response_format: {type: json_schema, json_schema: {name: "json_response", schema}}``, without ``strict``
  (OpenAI's strict mode refuses schemas with optional properties); the answer comes back as a text block.
- ``stop_sequences`` becomes ``stop``; ``max_tokens``, ``temperature`` and ``top_p`` are kept;
  ``metadata.user_id`` becomes ``user``; ``stream: true`` also sets ``stream_options.include_usage`` so that the
  stream reports usage.

Dropped silently: ``top_k`` (not in OpenAI's API), ``thinking`` and ``output_config.effort`` (no portable
equivalent: ``reasoning_effort`` is refused by non-reasoning models), ``thinking``,
``redacted_thinking`` and server-tool blocks in assistant history, ``cache_control``, ``citations``,
``service_tier``, ``container``, ``mcp_servers``, ``context_management`` and any field not named here.

Rejected with ``ValueError`` ("... not supported by the openai provider", a 400 for the client): server tools
(``web_search_*``, ``bash_*``, ...), ``file``-id sources and URL documents, and unknown user content blocks.

Response: ``id`` gets a ``msg_`` prefix unless it has one; text becomes one ``text`` block (none when empty), a
``refusal`` another; each tool call a ``tool_use`` block whose ``input`` is the parsed ``arguments``. When the
upstream's arguments are not a JSON object, ``input`` is ``{"_raw": "<the arguments text>"}``: the call and its
text survive for the client to see, instead of a made-up empty input or a failed request. ``reasoning_content``
(or vLLM's ``reasoning``) becomes a ``thinking`` block with an empty signature, only when the client enabled
``thinking``. ``stop_reason`` and ``usage`` follow ``stop_reasons`` and ``anthropic_usage``
(``cache_creation_input_tokens`` is 0: OpenAI does not report cache writes); usage is all zeros when the upstream
sent none (the gateway then estimates it).
"""

from __future__ import annotations

import json
from typing import Any

from interlock.gateway.translate.anthropic_openai_stream import StreamTranslator, message_id, thinking_enabled
from interlock.gateway.translate.anthropic_usage import anthropic_usage
from interlock.gateway.translate.stop_reasons import stop_reason
from interlock.gateway.translate.structured_output import DEFAULT_SCHEMA_NAME
from interlock.gateway.usage.metering import Usage, usage_from_openai

__all__ = ["ERROR_PREFIX", "StreamTranslator", "translate_request", "translate_response"]

ERROR_PREFIX = "Error: "
"""Put before a ``tool_result``'s text when it has ``is_error: true``: OpenAI tool messages have no error flag."""

_UNSUPPORTED = "not supported by the openai provider"


def _dict(value: Any) -> dict[str, Any]:
    return value if isinstance(value, dict) else {}


def _dumps(value: Any) -> str:
    return json.dumps(value, ensure_ascii=False, separators=(",", ":"))


# ---------------------------------------------------------------------------------------------------- request


def translate_request(request: dict[str, Any]) -> dict[str, Any]:
    """The client's Messages body as a chat-completions body; ``ValueError`` for what cannot map."""
    if not isinstance(request, dict):
        raise ValueError("the request body must be a JSON object")
    messages: list[dict[str, Any]] = []
    system = request.get("system")
    if system:
        messages.append({"role": "system", "content": _system_text(system)})
    turns = request.get("messages")
    if not isinstance(turns, list):
        raise ValueError("messages must be a list")
    for i, turn in enumerate(turns):
        where = f"messages[{i}]"
        role = turn.get("role") if isinstance(turn, dict) else None
        if role == "user":
            messages.extend(_user_messages(turn.get("content"), where))
        elif role == "assistant":
            messages.append(_assistant_message(turn.get("content"), where))
        else:
            raise ValueError(f"{where}: role {role!r} is {_UNSUPPORTED}")
    out: dict[str, Any] = {"messages": messages}
    for field in ("model", "max_tokens", "temperature", "top_p"):
        if request.get(field) is not None:
            out[field] = request[field]
    stops = request.get("stop_sequences")
    if stops:
        out["stop"] = stops
    tools = request.get("tools")
    if tools:
        out["tools"] = [_tool(tool, f"tools[{i}]") for i, tool in enumerate(tools)]
        _tool_choice(request.get("tool_choice"), out)
    schema = _output_schema(request)
    if schema is not None:
        out["response_format"] = {"type": "json_schema", "json_schema": {"name": DEFAULT_SCHEMA_NAME, "schema": schema}}
    metadata = request.get("metadata")
    if isinstance(metadata, dict) and isinstance(metadata.get("user_id"), str):
        out["user"] = metadata["user_id"]
    if request.get("stream") is not None:
        out["stream"] = bool(request["stream"])
        if out["stream"]:
            out["stream_options"] = {"include_usage": True}
    return out


def _output_schema(request: dict[str, Any]) -> dict[str, Any] | None:
    """The JSON schema of ``output_config.format`` (or the beta's top-level ``output_format``), if any."""
    config = request.get("output_config")
    output_format = config.get("format") if isinstance(config, dict) else request.get("output_format")
    if not isinstance(output_format, dict) or output_format.get("type") != "json_schema":
        return None
    schema = output_format.get("schema")
    if not isinstance(schema, dict):
        raise ValueError("output_config.format.schema must be a JSON schema object")
    return schema


def _system_text(system: Any) -> str:
    if isinstance(system, str):
        return system
    if isinstance(system, list) and all(isinstance(b, dict) and b.get("type") == "text" for b in system):
        return "\n".join(str(block.get("text", "")) for block in system)
    raise ValueError("system must be a string or a list of text blocks")


def _user_messages(content: Any, where: str) -> list[dict[str, Any]]:
    if isinstance(content, str):
        return [{"role": "user", "content": content}]
    if not isinstance(content, list):
        raise ValueError(f"{where}.content must be a string or a list of blocks")
    tool_messages: list[dict[str, Any]] = []
    parts: list[dict[str, Any]] = []
    moved: list[dict[str, Any]] = []  # images out of tool results
    for j, block in enumerate(content):
        at = f"{where}.content[{j}]"
        kind = block.get("type") if isinstance(block, dict) else None
        if kind == "tool_result":
            tool_messages.append(_tool_message(block, at, moved))
        else:
            parts.append(_part(block, at))
    parts = moved + parts
    return tool_messages + ([{"role": "user", "content": parts}] if parts else [])


def _part(block: Any, where: str) -> dict[str, Any]:
    kind = block.get("type") if isinstance(block, dict) else None
    if kind == "text":
        return {"type": "text", "text": block.get("text", "")}
    source = block.get("source") if isinstance(block, dict) else None
    source = source if isinstance(source, dict) else {}
    if kind == "image" and source.get("type") == "base64":
        url = f"data:{source.get('media_type')};base64,{source.get('data')}"
        return {"type": "image_url", "image_url": {"url": url}}
    if kind == "image" and source.get("type") == "url":
        return {"type": "image_url", "image_url": {"url": source.get("url")}}
    if kind == "document" and source.get("type") == "base64" and source.get("media_type") == "application/pdf":
        title = block.get("title") if isinstance(block, dict) else None
        file = {"file_data": f"data:application/pdf;base64,{source.get('data')}", "filename": title or "document.pdf"}
        return {"type": "file", "file": file}
    if kind == "document" and source.get("type") == "text":
        return {"type": "text", "text": source.get("data", "")}
    detail = f"{kind!r} with a {source.get('type')!r} source" if source else repr(kind)
    raise ValueError(f"{where}: content blocks of type {detail} are {_UNSUPPORTED}")


def _tool_message(block: dict[str, Any], where: str, moved: list[dict[str, Any]]) -> dict[str, Any]:
    content = block.get("content")
    if content is None:
        text = ""
    elif isinstance(content, str):
        text = content
    elif isinstance(content, list):
        texts = []
        for j, item in enumerate(content):
            part = _part(item, f"{where}.content[{j}]")
            if part["type"] == "text":
                texts.append(part["text"])
            else:
                moved.append(part)
        text = "\n".join(texts)
    else:
        raise ValueError(f"{where}.content must be a string or a list of blocks")
    if block.get("is_error") is True:
        text = ERROR_PREFIX + text
    return {"role": "tool", "tool_call_id": block.get("tool_use_id"), "content": text}


def _assistant_message(content: Any, where: str) -> dict[str, Any]:
    if isinstance(content, str):
        return {"role": "assistant", "content": content}
    if not isinstance(content, list):
        raise ValueError(f"{where}.content must be a string or a list of blocks")
    texts: list[str] = []
    calls: list[dict[str, Any]] = []
    for block in content:
        kind = block.get("type") if isinstance(block, dict) else None
        if kind == "text":
            texts.append(block.get("text", ""))
        elif kind == "tool_use":
            function = {"name": block.get("name"), "arguments": _dumps(block.get("input") or {})}
            calls.append({"id": block.get("id"), "type": "function", "function": function})
    message: dict[str, Any] = {"role": "assistant", "content": "".join(texts) if texts or not calls else None}
    if calls:
        message["tool_calls"] = calls
    return message


def _tool(tool: Any, where: str) -> dict[str, Any]:
    if not isinstance(tool, dict) or tool.get("type") not in (None, "custom") or not isinstance(tool.get("name"), str):
        kind = tool.get("type") if isinstance(tool, dict) else None
        raise ValueError(f"{where}: tools of type {kind!r} are {_UNSUPPORTED}")
    function: dict[str, Any] = {"name": tool["name"]}
    if isinstance(tool.get("description"), str):
        function["description"] = tool["description"]
    function["parameters"] = tool.get("input_schema") or {"type": "object", "properties": {}}
    return {"type": "function", "function": function}


def _tool_choice(choice: Any, out: dict[str, Any]) -> None:
    if not isinstance(choice, dict):
        return
    kind = choice.get("type")
    if kind == "auto":
        out["tool_choice"] = "auto"
    elif kind == "any":
        out["tool_choice"] = "required"
    elif kind == "none":
        out["tool_choice"] = "none"
    elif kind == "tool" and isinstance(choice.get("name"), str):
        out["tool_choice"] = {"type": "function", "function": {"name": choice["name"]}}
    else:
        raise ValueError(f"tool_choice {kind!r} is {_UNSUPPORTED}")
    if choice.get("disable_parallel_tool_use") is True and kind != "none":
        out["parallel_tool_calls"] = False


# --------------------------------------------------------------------------------------------------- response


def _tool_input(arguments: Any) -> dict[str, Any]:
    if isinstance(arguments, dict):
        return arguments
    if arguments is None or (isinstance(arguments, str) and not arguments.strip()):
        return {}
    try:
        parsed = json.loads(arguments)
    except (TypeError, ValueError):
        parsed = None
    return parsed if isinstance(parsed, dict) else {"_raw": arguments if isinstance(arguments, str) else str(arguments)}


def _text_of(content: Any) -> str:
    if isinstance(content, str):
        return content
    if isinstance(content, list):  # some servers answer with parts
        return "".join(p.get("text", "") for p in content if isinstance(p, dict) and p.get("type") == "text")
    return ""


def translate_response(response: dict[str, Any], request: dict[str, Any]) -> dict[str, Any]:
    """A chat completion as an Anthropic message, for the client's ``request``."""
    choices = response.get("choices")
    choice = choices[0] if isinstance(choices, list) and choices and isinstance(choices[0], dict) else {}
    message = _dict(choice.get("message"))
    content: list[dict[str, Any]] = []
    reasoning = message.get("reasoning_content") or message.get("reasoning")
    if thinking_enabled(request) and isinstance(reasoning, str) and reasoning:
        content.append({"type": "thinking", "thinking": reasoning, "signature": ""})
    text = _text_of(message.get("content"))
    if text:
        content.append({"type": "text", "text": text})
    refusal = message.get("refusal")
    if isinstance(refusal, str) and refusal:
        content.append({"type": "text", "text": refusal})
    calls = [call for call in message.get("tool_calls") or [] if isinstance(call, dict)]
    for i, call in enumerate(calls):
        function = _dict(call.get("function"))
        content.append(
            {
                "type": "tool_use",
                "id": call.get("id") or f"toolu_{i}",
                "name": function.get("name") or "",
                "input": _tool_input(function.get("arguments")),
            }
        )
    finish = "content_filter" if isinstance(refusal, str) and refusal else choice.get("finish_reason")
    reason, sequence = stop_reason(
        finish, tool_calls=bool(calls), matched=choice.get("stop_reason"), stop_sequences=request.get("stop_sequences")
    )
    model = response.get("model") or request.get("model")
    return {
        "id": message_id(response.get("id")),
        "type": "message",
        "role": "assistant",
        "model": model,
        "content": content,
        "stop_reason": reason,
        "stop_sequence": sequence,
        "usage": anthropic_usage(usage_from_openai(response.get("usage")) or Usage()),
    }
