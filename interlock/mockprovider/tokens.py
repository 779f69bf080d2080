"""Token counts like a real engine's: a real BPE tokenizer (``cl100k_base``, ``interlock.tokenizer``, whose first
100,000 tokens Llama 3 shares), and the prompt counting rules of both APIs.

Prompt and completion counts use the same tokenizer, so usage is consistent however a request is streamed: every
streamed content piece is exactly one token, and the pieces of a text concatenate back to the text.

A prompt costs ``REPLY_PRIMING`` (the start of the reply the model is primed with) and, per message (a system
prompt is one), ``MESSAGE_OVERHEAD`` plus the tokens of its text,
``IMAGE_TOKENS`` per image or other non-text part, and the tokens of each tool call's name and JSON arguments;
plus, per tool definition, the tokens of its name, description and schema JSON. The OpenAI and the Anthropic
request for the same conversation therefore cost the same.
"""

from __future__ import annotations

import functools
from collections.abc import Iterable
from typing import Any

import orjson

from interlock import tokenizer

__all__ = [
    "IMAGE_TOKENS",
    "LLAMA3_PER_MESSAGE",
    "LLAMA3_PREAMBLE",
    "LLAMA3_TOOLS",
    "MESSAGE_OVERHEAD",
    "REPLY_PRIMING",
    "count_tokens",
    "json_tokens",
    "message_tokens",
    "prompt_ids",
    "split_pieces",
    "tool_definition_tokens",
]

MESSAGE_OVERHEAD = 3
REPLY_PRIMING = 3
"""OpenAI's documented chat template cost: 3 tokens a message and 3 for the reply's start."""
IMAGE_TOKENS = 85
LLAMA3_PREAMBLE = 27
"""With the ``llama3`` template (``MockSettings.chat_template``): Llama 3.1's begin-of-text, its default system
preamble ("Cutting Knowledge Date: ... Today Date: ...") and the reply header, beyond ``REPLY_PRIMING``."""
LLAMA3_PER_MESSAGE = 2
"""... its header and end-of-turn tokens cost 5 a message: 2 beyond ``MESSAGE_OVERHEAD``."""
LLAMA3_TOOLS = 150
"""... and its tool-calling instructions, when tools are defined."""


def count_tokens(text: str) -> int:
    return tokenizer.count(text)


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
    """One piece per token; the pieces concatenate back to ``text``."""
    return tokenizer.pieces(text)


_ROLE_MARK = {"system": -1, "developer": -1, "user": -2, "assistant": -3, "tool": -4}


@functools.lru_cache(maxsize=4096)
def _text_ids(text: str) -> tuple[int, ...]:
    return tuple(tokenizer.encoding().encode_ordinary(text)) if text else ()


def prompt_ids(turns: Iterable[tuple[str, str]]) -> list[int]:
    """The token sequence of a conversation as (role, text) turns, for the engine model's prefix cache.

    Each turn is a role marker (a negative id no text produces) and its text's tokens, so two requests share a
    prefix exactly when their conversations start with the same turns; the same conversation in either API gives
    the same sequence. Texts are tokenized once each while they recur (a shared system prompt), within a bound.
    """
    ids: list[int] = []
    for role, text in turns:
        ids.append(_ROLE_MARK.get(role, -5))
        ids.extend(_text_ids(text))
    return ids
