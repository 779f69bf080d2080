"""OpenAI chat messages as Anthropic ``system`` blocks and alternating turns: the messages half of ``openai_anthropic``.

See ``openai_anthropic`` for what is mapped, merged, dropped and refused.
"""

from __future__ import annotations

import json
import re
from typing import Any

__all__ = ["conversation", "text_block"]

_UNSUPPORTED = "not supported by the anthropic provider"
_BAD_ID_CHARS = re.compile(r"[^a-zA-Z0-9_-]")
_DATA_URL = re.compile(r"data:([^;,]+);base64,(.*)", re.DOTALL)


def conversation(messages: Any) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """The system prompt's text blocks, and the alternating user/assistant turns; ``ValueError`` when unmappable."""
    if not isinstance(messages, list) or not messages:
        raise ValueError("messages must be a non-empty list")
    system: list[dict[str, Any]] = []
    turns: list[dict[str, Any]] = []
    for i, message in enumerate(messages):
        where = f"messages[{i}]"
        if not isinstance(message, dict):
            raise ValueError(f"{where} must be an object")
        role, content = message.get("role"), message.get("content")
        if role in ("system", "developer"):
            system.extend(_blocks(content, where, media=False))
        elif role == "user":
            _append(turns, "user", _blocks(content, where, media=True), plain=isinstance(content, str))
        elif role == "assistant":
            blocks = _blocks(content, where, media=False)
            calls = message.get("tool_calls") or []
            if not isinstance(calls, list):
                raise ValueError(f"{where}.tool_calls must be a list")
            blocks += [_tool_use(call, f"{where}.tool_calls[{j}]") for j, call in enumerate(calls)]
            _append(turns, "assistant", blocks, plain=isinstance(content, str) and not calls)
        elif role == "tool":
            _append(turns, "user", [_tool_result(message, where)])
        else:
            raise ValueError(f"{where}: role {role!r} is {_UNSUPPORTED}")
    if not turns:
        raise ValueError("messages must hold at least one user or assistant message with content")
    return system, turns


def _append(turns: list[dict[str, Any]], role: str, blocks: list[dict[str, Any]], *, plain: bool = False) -> None:
    if not blocks:
        return
    if not turns or turns[-1]["role"] != role:
        turns.append({"role": role, "content": blocks[0]["text"] if plain else blocks})
        return
    previous = turns[-1]["content"]
    merged = [text_block(previous)] if isinstance(previous, str) else previous
    merged = [*merged, *blocks]
    if role == "user":
        merged = [b for b in merged if b["type"] == "tool_result"] + [b for b in merged if b["type"] != "tool_result"]
    turns[-1]["content"] = merged


def text_block(text: str) -> dict[str, Any]:
    return {"type": "text", "text": text}


def _blocks(content: Any, where: str, *, media: bool) -> list[dict[str, Any]]:
    """Anthropic blocks for a message's ``content`` (string or parts); blank texts dropped."""
    if content is None:
        return []
    if isinstance(content, str):
        return [text_block(content)] if content.strip() else []
    if not isinstance(content, list):
        raise ValueError(f"{where}.content must be a string or a list of parts")
    blocks: list[dict[str, Any]] = []
    for j, part in enumerate(content):
        at = f"{where}.content[{j}]"
        kind = part.get("type") if isinstance(part, dict) else None
        if kind in ("text", "refusal"):
            text = part.get(kind) if isinstance(part, dict) else None
            if not isinstance(text, str):
                raise ValueError(f"{at}.{kind} must be a string")
            if text.strip():
                blocks.append(text_block(text))
        elif media and kind == "image_url":
            blocks.append(_image(part.get("image_url"), at))
        elif media and kind == "file":
            blocks.append(_document(part.get("file"), at))
        else:
            raise ValueError(f"{at}: content parts of type {kind!r} are {_UNSUPPORTED} here")
    return blocks


def _image(image_url: Any, where: str) -> dict[str, Any]:
    url = image_url.get("url") if isinstance(image_url, dict) else image_url
    if not isinstance(url, str):
        raise ValueError(f"{where}.image_url.url must be a string")
    data = _DATA_URL.fullmatch(url)
    if data:
        return {"type": "image", "source": {"type": "base64", "media_type": data[1], "data": data[2]}}
    if url.startswith(("http://", "https://")):
        return {"type": "image", "source": {"type": "url", "url": url}}
    raise ValueError(f"{where}.image_url.url must be an http(s) URL or a base64 data: URL")


def _document(file: Any, where: str) -> dict[str, Any]:
    file_data = file.get("file_data") if isinstance(file, dict) else None
    data = _DATA_URL.fullmatch(file_data) if isinstance(file_data, str) else None
    if data is None or data[1] != "application/pdf":
        raise ValueError(f"{where}: only PDF file_data (a base64 data: URL) is supported by the anthropic provider")
    return {"type": "document", "source": {"type": "base64", "media_type": "application/pdf", "data": data[2]}}


def _tool_id(value: Any, where: str) -> str:
    if not isinstance(value, str) or not value:
        raise ValueError(f"{where} must be a non-empty string")
    return _BAD_ID_CHARS.sub("_", value)


def _tool_use(call: Any, where: str) -> dict[str, Any]:
    function = call.get("function") if isinstance(call, dict) else None
    if not isinstance(function, dict) or not isinstance(function.get("name"), str):
        raise ValueError(f"{where}.function must be an object with a name")
    arguments = function.get("arguments")
    if isinstance(arguments, dict):
        tool_input = arguments
    elif arguments is None or (isinstance(arguments, str) and not arguments.strip()):
        tool_input = {}
    elif isinstance(arguments, str):
        try:
            tool_input = json.loads(arguments)
        except ValueError as exc:
            raise ValueError(f"{where}.function.arguments is not valid JSON: {exc}") from exc
        if not isinstance(tool_input, dict):
            raise ValueError(f"{where}.function.arguments must be a JSON object")
    else:
        raise ValueError(f"{where}.function.arguments must be a JSON string")
    return {
        "type": "tool_use",
        "id": _tool_id(call.get("id"), f"{where}.id"),
        "name": function["name"],
        "input": tool_input,
    }


def _tool_result(message: dict[str, Any], where: str) -> dict[str, Any]:
    block: dict[str, Any] = {
        "type": "tool_result",
        "tool_use_id": _tool_id(message.get("tool_call_id"), f"{where}.tool_call_id"),
    }
    content = message.get("content")
    if isinstance(content, str):
        if content:
            block["content"] = content
    else:
        parts = _blocks(content, where, media=False)
        if parts:
            block["content"] = parts
    return block
