"""In-stream errors between the two APIs' envelopes.

An Anthropic stream reports a failure as ``event: error`` with ``{"type": "error", "error": {"type", "message"}}``;
an OpenAI chat stream as a chunk ``{"error": {"message", "type", "param", "code"}}`` (vLLM's older servers send the
fields at the top level with ``"object": "error"``). The message is kept word for word; the type is mapped to the
closest one of the other API and, OpenAI-side, the Anthropic type is kept as ``code`` so nothing is lost.
"""

from __future__ import annotations

from typing import Any

__all__ = ["anthropic_error_event", "openai_error_chunk", "openai_stream_error"]

# Anthropic error type -> OpenAI error type (the types the gateway itself renders, see gateway/errors.py).
_OPENAI_TYPE = {
    "invalid_request_error": "invalid_request_error",
    "authentication_error": "invalid_request_error",
    "permission_error": "invalid_request_error",
    "not_found_error": "invalid_request_error",
    "request_too_large": "invalid_request_error",
    "billing_error": "insufficient_quota",
    "rate_limit_error": "rate_limit_exceeded",
    "timeout_error": "timeout",
    "overloaded_error": "service_unavailable",
    "api_error": "server_error",
}

# OpenAI (and vLLM exception-class) error types, lowercased without "_" -> Anthropic error type.
_ANTHROPIC_TYPE = {
    "invalidrequesterror": "invalid_request_error",
    "badrequesterror": "invalid_request_error",
    "authenticationerror": "authentication_error",
    "permissionerror": "permission_error",
    "permissiondeniederror": "permission_error",
    "notfounderror": "not_found_error",
    "ratelimitexceeded": "rate_limit_error",
    "ratelimiterror": "rate_limit_error",
    "requests": "rate_limit_error",
    "tokens": "rate_limit_error",
    "insufficientquota": "billing_error",
    "timeout": "timeout_error",
    "serviceunavailable": "overloaded_error",
    "overloadederror": "overloaded_error",
}


def openai_error_chunk(event: Any) -> dict[str, Any]:
    """The OpenAI error chunk for an Anthropic ``error`` event's payload."""
    error = event.get("error") if isinstance(event, dict) else None
    error = error if isinstance(error, dict) else {}
    kind = error.get("type")
    kind = kind if isinstance(kind, str) else "api_error"
    message = error.get("message") if isinstance(error.get("message"), str) else "upstream stream error"
    return {"error": {"message": message, "type": _OPENAI_TYPE.get(kind, "server_error"), "param": None, "code": kind}}


def openai_stream_error(chunk: Any) -> dict[str, Any] | None:
    """The error object of an OpenAI-compatible error chunk, or None when the chunk is not an error."""
    if not isinstance(chunk, dict):
        return None
    error = chunk.get("error")
    if isinstance(error, dict):
        return error
    if isinstance(error, str):
        return {"message": error}
    if chunk.get("object") == "error":
        return chunk
    return None


def anthropic_error_event(error: dict[str, Any]) -> dict[str, Any]:
    """The Anthropic ``error`` event payload for an OpenAI error object (see ``openai_stream_error``)."""
    kind = error.get("type")
    mapped = _ANTHROPIC_TYPE.get(kind.lower().replace("_", ""), "api_error") if isinstance(kind, str) else "api_error"
    message = error.get("message") if isinstance(error.get("message"), str) else "upstream stream error"
    return {"type": "error", "error": {"type": mapped, "message": message}}
