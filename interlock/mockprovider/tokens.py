"""A stand-in tokenizer: a token is a word or a single punctuation mark; and the prompt counting rules of both APIs.

Prompt and completion counts use the same rule, so usage is consistent however a request is streamed: every
streamed content piece is exactly one token, and the pieces of a text concatenate back to the text.

A prompt costs, per message (a system prompt is one), ``MESSAGE_OVERHEAD`` plus the tokens of its text,
``IMAGE_TOKENS`` per image or other non-text part, and the tokens of each tool call's name and JSON arguments;
plus, per tool definition, the tokens of its name, description and schema JSON. The OpenAI and the Anthropic
request for the same conversation therefore cost the same.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from typing import Any

import orjson

__all__ = [
    "IMAGE_TOKENS",
    "MESSAGE_OVERHEAD",
    "count_tokens",
    "json_tokens",
    "message_tokens",
    "split_pieces",
    "tool_definition_tokens",
]

MESSAGE_OVERHEAD = 3
IMAGE_TOKENS = 85

_TOKEN = re.compile(r"\w+|[^\w\s]")
_PIECE = re.compile(r"\s*(?:\w+|[^\w\s])")


def count_tokens(text: str) -> int:
    return len(_TOKEN.findall(text))


def json_tokens(value: Any) -> int:
    return count_tokens(orjson.dumps(value).decode())


def message_tokens(text: str, *, images: int = 0, calls: Iterable[tuple[str, str]] = ()) -> int:
    """One message: its text, its non-text parts, and its tool calls as (name, JSON arguments)."""
    total = MESSAGE_OVERHEAD + count_tokens(text) + IMAGE_TOKENS * images
    return total + sum(count_tokens(name) + count_tokens(arguments) for name, arguments in calls)


def tool_definition_tokens(tools: Iterable[Any]) -> int:
    """Tool definitions, each with ``name``, ``description`` and ``parameters`` (a ``tool_calls.Tool``)."""
    return sum(count_tokens(t.name) + count_tokens(t.description) + json_tokens(t.parameters) for t in tools)


def split_pieces(text: str) -> list[str]:
    """One piece per token, each with the whitespace before it; trailing whitespace joins the last piece."""
    pieces: list[str] = _PIECE.findall(text)
    consumed = sum(map(len, pieces))
    if consumed < len(text):
        tail = text[consumed:]
        if pieces:
            pieces[-1] += tail
        else:
            pieces.append(tail)
    return pieces
