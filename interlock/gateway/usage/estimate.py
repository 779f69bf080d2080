"""Usage estimates for upstreams that do not report it (the llama.cpp server in streams, engines that ignore
``stream_options.include_usage``): counted with a real BPE tokenizer (``interlock.tokenizer``), marked estimated.

- Prompt: per message ``PER_MESSAGE`` tokens of chat template plus the tokens of its text, its tool calls (name and
  JSON arguments) and ``IMAGE`` per image; per tool definition its name, description and JSON schema; the
  ``response_format``; ``PRIMING`` for the reply's start. This is the rule OpenAI documents for its chat models;
  engines with other templates differ by a few tokens a message (Llama 3's: 5 a message, 5 for the reply).
  A backend whose template costs more is corrected by what it reported on other requests (``usage.calibration``).
- Completion: the tokens of the text the upstream streamed or answered (content, reasoning, tool-call arguments).

Counting is kept off the hot path: a stream's bytes are only kept (a list append per chunk) and counted once, at
its end, and only when the upstream sent no usage; past ``RETAIN_BYTES`` they are counted and dropped as the
stream goes (bounded memory). At most ``COUNT_CHARS`` characters of one text are tokenized; beyond that the rest
is extrapolated from the tokens per character of the part counted (bounded CPU for a 20 MB prompt).
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import orjson

from interlock import tokenizer
from interlock.gateway.dispatch.apis import API
from interlock.gateway.usage.calibration import PromptShape
from interlock.gateway.usage.metering import Usage

__all__ = [
    "COUNT_CHARS",
    "IMAGE",
    "PER_MESSAGE",
    "PRIMING",
    "RETAIN_BYTES",
    "StreamTally",
    "answer_tokens",
    "count_text",
    "prompt_estimate",
    "prompt_tokens",
]

PER_MESSAGE = 3
PRIMING = 3
IMAGE = 85
COUNT_CHARS = 256 * 1024
RETAIN_BYTES = 1024 * 1024


def count_text(text: str) -> int:
    """Tokens of ``text``, extrapolated past ``COUNT_CHARS`` characters."""
    if len(text) <= COUNT_CHARS:
        return tokenizer.count(text)
    head = tokenizer.count(text[:COUNT_CHARS])
    return head + round((len(text) - COUNT_CHARS) * head / COUNT_CHARS)


def _strings(value: Any) -> Iterator[str]:
    """Every string in a JSON value (keys of tool inputs included)."""
    if isinstance(value, str):
        yield value
    elif isinstance(value, list):
        for item in value:
            yield from _strings(item)
    elif isinstance(value, dict):
        for key, item in value.items():
            yield key
            yield from _strings(item)


def _json(value: Any) -> str:
    try:
        return orjson.dumps(value).decode()
    except TypeError:
        return ""


def _content(content: Any) -> tuple[list[str], int]:
    """Texts and image count of a message's content (a string, or parts of any API)."""
    if isinstance(content, str):
        return [content], 0
    texts: list[str] = []
    images = 0
    if isinstance(content, list):
        for part in content:
            if not isinstance(part, dict):
                continue
            kind = part.get("type")
            if kind in ("image_url", "image", "input_image"):
                images += 1
            elif kind in ("text", "input_text", "output_text") and isinstance(part.get("text"), str):
                texts.append(part["text"])
            elif kind == "tool_use":
                texts += [str(part.get("name", "")), _json(part.get("input"))]
            elif kind == "tool_result":
                inner, more = _content(part.get("content"))
                texts += inner
                images += more
            elif kind in ("thinking", "reasoning") and isinstance(part.get("thinking"), str):
                texts.append(part["thinking"])
    return texts, images


def _message(message: Any) -> tuple[list[str], int]:
    if not isinstance(message, dict):
        return [], 0
    texts, images = _content(message.get("content"))
    if isinstance(message.get("name"), str):
        texts.append(message["name"])
    for call in message.get("tool_calls") or ():
        function = call.get("function") if isinstance(call, dict) else None
        if isinstance(function, dict):
            texts += [str(function.get("name", "")), str(function.get("arguments", ""))]
    if message.get("type") == "function_call":  # a Responses input item
        texts += [str(message.get("name", "")), str(message.get("arguments", ""))]
    if message.get("type") == "function_call_output":
        texts.append(str(message.get("output", "")))
    return texts, images


def prompt_tokens(api: API, payload: dict[str, Any], *, embeddings: bool = False) -> int:
    """An estimate of the prompt tokens of a request in the client's API (see the module docstring)."""
    return prompt_estimate(api, payload, embeddings=embeddings)[0]


def prompt_estimate(api: API, payload: dict[str, Any], *, embeddings: bool = False) -> tuple[int, PromptShape]:
    """``prompt_tokens``, and the prompt's shape, for a backend's calibration (``usage.calibration``)."""
    if embeddings:
        return sum(count_text(text) for text in _strings(payload.get("input"))), PromptShape(0, False)
    messages: list[Any] = []
    if api is API.MESSAGES:
        system = payload.get("system")
        if system:
            messages.append({"content": system})
        messages += payload.get("messages") or []
    elif api is API.RESPONSES:
        if isinstance(payload.get("instructions"), str):
            messages.append({"content": payload["instructions"]})
        items = payload.get("input")
        messages += [{"content": items}] if isinstance(items, str) else list(items or [])
    else:
        messages += payload.get("messages") or []
    texts: list[str] = []
    images = 0
    for message in messages:
        more, pictures = _message(message)
        texts += more
        images += pictures
    definitions: list[str] = []
    tools = payload.get("tools")
    for tool in tools if isinstance(tools, list) else ():
        if isinstance(tool, dict):
            function = tool.get("function")
            spec: dict[str, Any] = function if isinstance(function, dict) else tool
            schema = spec.get("parameters", spec.get("input_schema"))
            definitions += [str(spec.get("name") or ""), str(spec.get("description") or ""), _json(schema or {})]
    response_format = payload.get("response_format")
    schema_text = _json(response_format) if isinstance(response_format, dict) else ""
    text_tokens = count_text("\n".join(texts))
    tool_tokens = count_text("\n".join(definitions)) if definitions else 0
    format_tokens = count_text(schema_text) if schema_text else 0
    tokens = PRIMING + PER_MESSAGE * len(messages) + IMAGE * images + text_tokens + tool_tokens + format_tokens
    return tokens, PromptShape(len(messages), bool(definitions), tool_tokens, format_tokens)


def answer_tokens(answer: Any) -> int:
    """Completion tokens of a unary OpenAI chat answer without usage."""
    texts: list[str] = []
    choices = answer.get("choices") if isinstance(answer, dict) else None
    for choice in choices if isinstance(choices, list) else ():
        message = choice.get("message") if isinstance(choice, dict) else None
        if not isinstance(message, dict):
            continue
        for field in ("content", "reasoning_content"):
            if isinstance(message.get(field), str):
                texts.append(message[field])
        for call in message.get("tool_calls") or ():
            function = call.get("function") if isinstance(call, dict) else None
            if isinstance(function, dict):
                texts.append(str(function.get("arguments", "")))
    return count_text("".join(texts))


class StreamTally:
    """An OpenAI chat stream's bytes, kept until its end and counted only if the upstream reported no usage."""

    __slots__ = ("_chunks", "_kept", "_tokens", "created", "id", "model")

    def __init__(self) -> None:
        self._chunks: list[bytes] = []
        self._kept = 0
        self._tokens = 0
        self.id: str | None = None
        self.model: str | None = None
        self.created: int | None = None

    def feed(self, chunk: bytes) -> None:
        self._chunks.append(chunk)
        self._kept += len(chunk)
        if self._kept > RETAIN_BYTES:
            self._fold(final=False)

    def _fold(self, *, final: bool) -> None:
        data = b"".join(self._chunks)
        cut = len(data) if final else data.rfind(b"\n\n") + 2
        rest = data[cut:] if cut > 1 else data
        if cut <= 1 and not final:
            return
        texts: list[str] = []
        for line in data[:cut].split(b"\n"):
            if not line.startswith(b"data:"):
                continue
            payload = line[5:].strip()
            if not payload or payload == b"[DONE]":
                continue
            try:
                chunk = orjson.loads(payload)
            except orjson.JSONDecodeError:
                continue
            if isinstance(chunk, dict):
                self._take(chunk, texts)
        self._tokens += count_text("".join(texts))
        self._chunks = [] if final else [rest]
        self._kept = 0 if final else len(rest)

    def _take(self, chunk: dict[str, Any], texts: list[str]) -> None:
        if self.id is None:
            self.id = chunk.get("id") if isinstance(chunk.get("id"), str) else None
            self.model = chunk.get("model") if isinstance(chunk.get("model"), str) else None
            self.created = chunk.get("created") if isinstance(chunk.get("created"), int) else None
        for choice in chunk.get("choices") or ():
            delta = choice.get("delta") if isinstance(choice, dict) else None
            if not isinstance(delta, dict):
                continue
            for field in ("content", "reasoning_content"):
                if isinstance(delta.get(field), str):
                    texts.append(delta[field])
            for call in delta.get("tool_calls") or ():
                function = call.get("function") if isinstance(call, dict) else None
                if isinstance(function, dict):
                    texts.append(str(function.get("arguments") or ""))

    def completion_tokens(self) -> int:
        """Count what was kept (once; the stream has ended)."""
        self._fold(final=True)
        return self._tokens

    def usage_chunk(self, usage: Usage) -> bytes:
        """The usage-only chunk a client that asked for ``include_usage`` expects before ``[DONE]``."""
        chunk = {
            "id": self.id or "chatcmpl-interlock",
            "object": "chat.completion.chunk",
            "created": self.created or 0,
            "model": self.model or "",
            "choices": [],
            "usage": {
                "prompt_tokens": usage.input_tokens,
                "completion_tokens": usage.output_tokens,
                "total_tokens": usage.input_tokens + usage.output_tokens,
            },
        }
        return b"data: " + orjson.dumps(chunk) + b"\n\n"


def estimated(prompt: int, completion: int) -> Usage:
    return Usage(input_tokens=prompt, output_tokens=completion, estimated=True)
