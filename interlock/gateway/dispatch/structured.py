"""Structured output you can rely on: an answer to a strict ``json_schema`` request counts as success only
when its content validates against the schema.

The schema is checked when the request arrives, before any upstream sees it: too large, invalid, recursive
without progress, or too costly to apply is a 400 that says why. Checking and validating run in the schema
workers (``gateway/structured/``) with a time budget, so no tenant's schema can stall the event loop.

Providers with constrained decoding (OpenAI's strict mode, vLLM's guided decoding) produce valid JSON by
construction; a violation from them is reported at once. Others (Anthropic, reached through a forced tool)
get one corrective retry with the validation error as a hint. Streams cannot be retried once they have
started, so a stream whose content fails validation ends with an error instead of its terminator.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import orjson

from interlock.gateway.dispatch.apis import API
from interlock.gateway.errors import GatewayError, InvalidRequestError, UpstreamError
from interlock.gateway.structured.pool import SchemaBudgetExceeded, SchemaWorkers
from interlock.gateway.upstream.relay import StreamRelay
from interlock.gateway.upstream.sse import DONE, encode_data, encode_event, event_data, event_name, split_events
from interlock.gateway.usage.metering import Usage

__all__ = [
    "CONSTRAINED_DECODING",
    "SchemaBudgetExceeded",
    "SchemaCheck",
    "ValidatingRelay",
    "content_of",
    "schema_check",
    "with_hint",
]

CONSTRAINED_DECODING = frozenset({"openai", "vllm"})
"""Providers that enforce a strict JSON schema while decoding."""


@dataclass(frozen=True, slots=True)
class SchemaCheck:
    name: str
    schema: bytes
    """The schema as JSON."""
    param: str
    workers: SchemaWorkers
    max_document_bytes: int
    owner: str = ""
    """Whose request this is (the tenant): one owner cannot hold every schema worker."""

    async def admit(self) -> None:
        """400 when the schema cannot be used (or cannot be checked within the budget)."""
        try:
            problem = await self.workers.check(self.schema, self.owner)
        except SchemaBudgetExceeded:
            raise self.too_complex() from None
        if problem is not None:
            raise InvalidRequestError(
                f"The json_schema {self.name!r} cannot be used: {problem}.",
                code="invalid_json_schema",
                param=self.param,
            )

    async def problem(self, content: str | None) -> str | None:
        """Why ``content`` does not satisfy the schema, or None when it does. ``SchemaBudgetExceeded`` when it
        cannot be told within the budget (the answer too large, or the work too long)."""
        if content is None:
            return "the answer has no text content"
        document = content.encode()
        if len(document) > self.max_document_bytes:
            self.workers.trip("schema_budget")
            raise SchemaBudgetExceeded(f"the answer is over {self.max_document_bytes} bytes")
        return await self.workers.validate(self.schema, document, self.owner)

    def failure(self, problem: str) -> UpstreamError:
        return UpstreamError(
            f"The model's answer does not match the JSON schema {self.name!r}: {problem}",
            code="invalid_structured_output",
        )

    def too_complex(self) -> InvalidRequestError:
        return InvalidRequestError(
            f"The json_schema {self.name!r} could not be applied within the gateway's budget "
            f"({self.workers.budget_s:g}s, answers up to {self.max_document_bytes} bytes); simplify it.",
            code="json_schema_too_complex",
            param=self.param,
        )


def schema_check(
    api: API,
    payload: dict[str, Any],
    workers: SchemaWorkers,
    *,
    max_schema_bytes: int,
    max_document_bytes: int,
    owner: str = "",
) -> SchemaCheck | None:
    """The check a strict ``json_schema`` request asks for (OpenAI chat or Responses), or None; 400 at once
    when the schema is larger than ``max_schema_bytes``."""
    if api is API.CHAT:
        param = "response_format"
        spec = payload.get("response_format")
        spec = spec.get("json_schema") if isinstance(spec, dict) and spec.get("type") == "json_schema" else None
    elif api is API.RESPONSES:
        param = "text.format"
        text = payload.get("text")
        spec = text.get("format") if isinstance(text, dict) else None
        spec = spec if isinstance(spec, dict) and spec.get("type") == "json_schema" else None
    else:
        return None
    if not isinstance(spec, dict) or spec.get("strict") is not True or not isinstance(spec.get("schema"), dict):
        return None
    name = str(spec.get("name") or "response")
    schema = orjson.dumps(spec["schema"])
    if len(schema) > max_schema_bytes:
        workers.trip("schema_bytes")
        raise InvalidRequestError(
            f"The json_schema {name!r} is {len(schema)} bytes; the limit is {max_schema_bytes} bytes.",
            code="json_schema_too_large",
            param=param,
        )
    return SchemaCheck(name, schema, param, workers, max_document_bytes, owner)


def content_of(api: API, answer: dict[str, Any]) -> str | None:
    """The text an answer in the client's API carries."""
    if api is API.CHAT:
        choices = answer.get("choices") or [{}]
        message = choices[0].get("message") or {}
        content = message.get("content")
        return content if isinstance(content, str) else None
    texts = [
        part.get("text", "")
        for item in answer.get("output") or []
        if item.get("type") == "message"
        for part in item.get("content") or []
        if part.get("type") == "output_text"
    ]
    return "".join(texts) if texts else None


def with_hint(api: API, payload: dict[str, Any], content: str | None, problem: str) -> dict[str, Any]:
    """The request again, with the invalid answer and what is wrong with it appended to the conversation."""
    hint = (
        f"Your previous answer did not match the required JSON schema: {problem}. "
        "Answer again with only a JSON document that validates against the schema."
    )
    previous = content or ""
    if api is API.CHAT:
        messages = [*payload["messages"], {"role": "assistant", "content": previous}, {"role": "user", "content": hint}]
        return {**payload, "messages": messages}
    items = payload["input"]
    items = [{"role": "user", "content": items}] if isinstance(items, str) else list(items)
    items += [{"role": "assistant", "content": previous}, {"role": "user", "content": hint}]
    return {**payload, "input": items}


class ValidatingRelay:
    """Wraps a stream relay: collects the content the client receives and holds back the stream's terminator
    (``[DONE]``, ``response.completed``) until that content validates; otherwise the stream ends in an error."""

    __slots__ = ("_api", "_check", "_held", "_inner", "_parts")

    def __init__(self, inner: StreamRelay, api: API, check: SchemaCheck) -> None:
        self._inner = inner
        self._api = api
        self._check = check
        self._parts: list[str] = []
        self._held: list[bytes] = []

    @property
    def usage(self) -> Usage | None:
        return self._inner.usage

    def feed(self, chunk: bytes) -> bytes:
        return self._scan(self._inner.feed(chunk))

    def finish(self) -> bytes:
        """What the stream still has, but its terminator: that waits for ``verdict``."""
        return self._scan(self._inner.finish())

    async def verdict(self) -> bytes:
        """The held terminator when the content validates; otherwise the error that ends the stream instead."""
        try:
            problem = await self._check.problem("".join(self._parts))
        except SchemaBudgetExceeded:
            return self._error_end(self._check.too_complex())
        if problem is None:
            return b"".join(self._held)
        return self._error_end(self._check.failure(problem))

    def _error_end(self, error: GatewayError) -> bytes:
        if self._api is API.CHAT:
            return encode_data(error.openai_body()) + DONE
        completed = _json(self._held[0]) if self._held else {}
        event = {
            "type": "error",
            "code": error.code,
            "message": error.message,
            "param": None,
            "sequence_number": completed.get("sequence_number", 0),
        }
        return encode_event("error", orjson.dumps(event))

    def error(self, error: GatewayError) -> bytes:
        return self._inner.error(error)

    def _scan(self, block: bytes) -> bytes:
        if not block:
            return block
        kept: list[bytes] = []
        for event in split_events(block):
            if self._api is API.CHAT:
                if event.startswith(DONE):
                    self._held.append(event)
                    continue
                chunk = _json(event)
                choices = chunk.get("choices") or [{}]
                piece = (choices[0].get("delta") or {}).get("content")
            else:
                name = event_name(event)
                if name == "response.completed":
                    self._held.append(event)
                    continue
                piece = _json(event).get("delta") if name == "response.output_text.delta" else None
            if isinstance(piece, str):
                self._parts.append(piece)
            kept.append(event)
        return b"".join(kept)


def _json(event: bytes) -> dict[str, Any]:
    data = event_data(event)
    if data is None or data == b"[DONE]":
        return {}
    try:
        value = orjson.loads(data)
    except orjson.JSONDecodeError:
        return {}
    return value if isinstance(value, dict) else {}
