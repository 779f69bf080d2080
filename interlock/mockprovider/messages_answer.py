"""What the mock answers to an Anthropic Messages request: thinking, then text or tool uses, with usage.

The same rules as the chat answer, through the same shared modules, so one conversation gets one answer on
both APIs: tool use when tools are offered, ``tool_choice`` is not "none" and the last user turn is not a tool
result; after one, a reply quoting the result; otherwise words derived from the last user text. With thinking
on, a ``thinking`` block with a signature comes first. ``max_tokens`` counts thinking and text together, and a
stop sequence in the text cuts it there (the sequence itself is not sent).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import orjson

from interlock.mockprovider.answers import signature_of, text_answer, thinking_answer, tool_result_answer
from interlock.mockprovider.messages_request import MessagesRequest, block_text, blocks_of
from interlock.mockprovider.settings import MockSettings
from interlock.mockprovider.tokens import REPLY_PRIMING, count_tokens, message_tokens, tool_definition_tokens
from interlock.mockprovider.tool_calls import ToolCall, make_tool_calls

__all__ = ["MessagesAnswer", "answer_messages", "input_tokens"]

_NON_TEXT = frozenset({"image", "document"})


@dataclass(frozen=True, slots=True)
class MessagesAnswer:
    thinking: tuple[str, ...]  # one token per piece; empty without thinking
    signature: str
    text: tuple[str, ...]  # one token per piece; empty for tool use (or when nothing is left of it)
    tool_calls: tuple[ToolCall, ...]
    stop_reason: str  # end_turn | max_tokens | stop_sequence | tool_use
    stop_sequence: str | None
    usage: dict[str, int]  # input_tokens, cache_creation_input_tokens, cache_read_input_tokens, output_tokens


def input_tokens(request: MessagesRequest) -> int:
    """Everything the model reads, by the rule in ``tokens``: what ``/v1/messages/count_tokens`` answers."""
    total = REPLY_PRIMING + (0 if request.system is None else message_tokens(request.system))
    for message in request.messages:
        texts: list[str] = []
        images = 0
        calls: list[tuple[str, str]] = []
        for block in message["content"]:
            kind = block["type"]
            if kind == "text":
                texts.append(block["text"])
            elif kind in _NON_TEXT:
                images += 1
            elif kind == "tool_use":
                calls.append((block["name"], orjson.dumps(block["input"]).decode()))
            elif kind == "tool_result":
                inner = blocks_of(block.get("content", ""))
                texts.append(block_text(inner))
                images += sum(1 for b in inner if b.get("type") in _NON_TEXT)
        total += message_tokens("\n".join(texts), images=images, calls=calls)
    return total + tool_definition_tokens(request.tools)


def answer_messages(request: MessagesRequest, settings: MockSettings) -> MessagesAnswer:
    assert request.max_tokens is not None
    user_text = _last_user_text(request.messages)
    last = request.messages[-1]
    results = [b for b in last["content"] if b["type"] == "tool_result"] if last["role"] == "user" else []
    thinking: tuple[str, ...] = ()
    if request.thinking:
        thinking = thinking_answer(user_text, request.max_tokens - 1, settings)
    signature = signature_of("".join(thinking)) if thinking else ""
    prompt = input_tokens(request)
    if request.tools and request.tool_choice != "none" and not results:
        calls = make_tool_calls(
            request.tools,
            user_text,
            settings,
            forced=request.forced_tool,
            parallel_allowed=request.parallel_tool_use,
            id_prefix="toolu_",
        )
        output = len(thinking) + sum(count_tokens(call.arguments) for call in calls)
        return MessagesAnswer(thinking, signature, (), calls, "tool_use", None, _usage(prompt, output, settings))
    if results:
        pieces = tool_result_answer(block_text(blocks_of(results[-1].get("content", ""))), user_text, settings)
    else:
        pieces = text_answer(user_text, settings)
    text, stop_reason, stop_sequence = _stop(pieces, request.stop_sequences, request.max_tokens - len(thinking))
    usage = _usage(prompt, len(thinking) + len(text), settings)
    return MessagesAnswer(thinking, signature, text, (), stop_reason, stop_sequence, usage)


def _last_user_text(messages: list[dict[str, Any]]) -> str:
    """The text of the last user turn that has any (a turn of only tool results has none), or ""."""
    for message in reversed(messages):
        if message["role"] == "user" and any(b["type"] == "text" for b in message["content"]):
            return block_text(message["content"])
    return ""


def _stop(pieces: tuple[str, ...], stops: tuple[str, ...], room: int) -> tuple[tuple[str, ...], str, str | None]:
    """The pieces sent, the stop reason and the stop sequence: whichever of a stop sequence or the cap comes first."""
    text = "".join(pieces)
    hits = [(at + len(s), at, s) for s in stops if (at := text.find(s)) >= 0]
    if hits:
        done, cut, sequence = min(hits)
        needed = _pieces_to(pieces, done)
        if needed <= room:
            return _cut(pieces, cut), "stop_sequence", sequence
    if len(pieces) > room:
        return pieces[: max(room, 0)], "max_tokens", None
    return pieces, "end_turn", None


def _pieces_to(pieces: tuple[str, ...], end: int) -> int:
    """How many pieces it takes to generate the first ``end`` characters."""
    length = 0
    for count, piece in enumerate(pieces, 1):
        length += len(piece)
        if length >= end:
            return count
    return len(pieces)


def _cut(pieces: tuple[str, ...], at: int) -> tuple[str, ...]:
    """The pieces of the first ``at`` characters; the last one may be cut short."""
    kept: list[str] = []
    length = 0
    for piece in pieces:
        if length + len(piece) <= at:
            kept.append(piece)
            length += len(piece)
        else:
            if at > length:
                kept.append(piece[: at - length])
            break
    return tuple(kept)


def _usage(prompt: int, output: int, settings: MockSettings) -> dict[str, int]:
    """Anthropic's usage: ``input_tokens`` excludes the tokens read from and written to the cache."""
    read = min(settings.cached_tokens or 0, prompt)
    created = min(settings.cache_creation_tokens or 0, prompt - read)
    return {
        "input_tokens": prompt - read - created,
        "cache_creation_input_tokens": created,
        "cache_read_input_tokens": read,
        "output_tokens": output,
    }
