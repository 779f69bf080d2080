"""Structured output you can rely on: an answer to a strict ``json_schema`` request counts as success only
when its content validates against the schema.

Providers with constrained decoding (OpenAI's strict mode, vLLM's guided decoding) produce valid JSON by
construction; a violation from them is reported at once. Others (Anthropic, reached through a forced tool)
get one corrective retry with the validation error as a hint. Streams cannot be retried once they have
started, so a stream whose content fails validation ends with an error instead of its terminator.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache
from typing import Any

import jsonschema
import orjson
from jsonschema.exceptions import SchemaError, best_match
from jsonschema.protocols import Validator

from interlock.gateway.dispatch.apis import API
from interlock.gateway.errors import GatewayError, InvalidRequestError, UpstreamError
from interlock.gateway.upstream.relay import StreamRelay
from interlock.gateway.upstream.sse import DONE, encode_data, encode_event, event_data, event_name, split_events
from interlock.gateway.usage.metering import Usage

__all__ = ["CONSTRAINED_DECODING", "SchemaCheck", "ValidatingRelay", "content_of", "schema_check", "with_hint"]

CONSTRAINED_DECODING = frozenset({"openai", "vllm"})
"""Providers that enforce a strict JSON schema while decoding."""


@lru_cache(maxsize=256)
def _validator(schema_json: bytes) -> Validator:
    schema = orjson.loads(schema_json)
    cls = jsonschema.validators.validator_for(schema)
    try:
        cls.check_schema(schema)
    except SchemaError as exc:
        raise InvalidRequestError(f"The json_schema is not a valid JSON Schema: {exc.message}") from None
    validator: Validator = cls(schema)
    return validator


@dataclass(frozen=True, slots=True)
class SchemaCheck:
    name: str
    validator: Validator

    def problem(self, content: str | None) -> str | None:
        """Why ``content`` does not satisfy the schema, or None when it does."""
        if content is None:
            return "the answer has no text content"
        try:
            document = orjson.loads(content)
        except orjson.JSONDecodeError as exc:
            return f"the answer is not JSON ({exc})"
        error = best_match(self.validator.iter_errors(document))
        if error is None:
            return None
        where = "/".join(str(p) for p in error.absolute_path) or "(root)"
        return f"at {where}: {error.message}"

    def failure(self, problem: str) -> UpstreamError:
        return UpstreamError(
            f"The model's answer does not match the JSON schema {self.name!r}: {problem}",
            code="invalid_structured_output",
        )


def schema_check(api: API, payload: dict[str, Any]) -> SchemaCheck | None:
    """The check a strict ``json_schema`` request asks for (OpenAI chat or Responses), or None."""
    if api is API.CHAT:
        spec = payload.get("response_format")
        spec = spec.get("json_schema") if isinstance(spec, dict) and spec.get("type") == "json_schema" else None
    elif api is API.RESPONSES:
        text = payload.get("text")
        spec = text.get("format") if isinstance(text, dict) else None
        spec = spec if isinstance(spec, dict) and spec.get("type") == "json_schema" else None
    else:
        return None
    if not isinstance(spec, dict) or spec.get("strict") is not True or not isinstance(spec.get("schema"), dict):
        return None
    return SchemaCheck(str(spec.get("name") or "response"), _validator(orjson.dumps(spec["schema"])))


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
        out = self._scan(self._inner.finish())
        problem = self._check.problem("".join(self._parts))
        if problem is None:
            return out + b"".join(self._held)
        error = self._check.failure(problem)
        if self._api is API.CHAT:
            return out + encode_data(error.openai_body()) + DONE
        completed = _json(self._held[0]) if self._held else {}
        event = {
            "type": "error",
            "code": error.code,
            "message": error.message,
            "param": None,
            "sequence_number": completed.get("sequence_number", 0),
        }
        return out + encode_event("error", orjson.dumps(event))

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
