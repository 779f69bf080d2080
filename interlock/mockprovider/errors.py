"""Errors in each API's envelope, before a response starts and inside a stream.

OpenAI: ``{"error": {"message", "type", "param", "code"}}``; in a stream, the same object as a ``data:`` event.
Anthropic: ``{"type": "error", "error": {"type", "message"}, "request_id"}`` with its documented type per status
(400 invalid_request_error, 401 authentication_error, 403 permission_error, 404 not_found_error, 413
request_too_large, 429 rate_limit_error, 500 api_error, 529 overloaded_error); in a stream, ``event: error``.
"""

from __future__ import annotations

from typing import Any

import orjson

__all__ = ["MockError", "anthropic_error_body", "anthropic_stream_error", "error_body", "openai_stream_error"]

_DEFAULTS: dict[int, tuple[str, str, str | None]] = {
    400: ("invalid_request_error", "Bad request.", None),
    401: ("invalid_request_error", "Incorrect API key provided.", "invalid_api_key"),
    403: ("permission_error", "You are not allowed to do this.", None),
    404: ("invalid_request_error", "Not found.", "not_found"),
    405: ("invalid_request_error", "Method not allowed.", None),
    409: ("invalid_request_error", "Conflict.", None),
    413: ("invalid_request_error", "Request too large.", None),
    429: ("requests", "Rate limit reached for requests.", "rate_limit_exceeded"),
    500: ("server_error", "The server had an error while processing your request.", None),
    502: ("server_error", "Bad gateway.", None),
    503: ("server_error", "The engine is currently overloaded, please try again later.", "service_unavailable"),
    504: ("server_error", "The server timed out.", None),
}
_ANTHROPIC: dict[int, tuple[str, str]] = {
    400: ("invalid_request_error", "Bad request."),
    401: ("authentication_error", "invalid x-api-key"),
    402: ("billing_error", "Your credit balance is too low to access the Anthropic API."),
    403: ("permission_error", "Your API key does not have permission to use the specified resource."),
    404: ("not_found_error", "Not found."),
    413: ("request_too_large", "Request exceeds the maximum allowed number of bytes."),
    429: ("rate_limit_error", "Number of requests has exceeded your per-minute rate limit."),
    500: ("api_error", "Internal server error"),
    529: ("overloaded_error", "Overloaded"),
}
_STREAM_ERROR_STATUS = 529  # what interrupts Claude's streams in practice
_OPENAI_STREAM_ERROR_STATUS = 500


def error_body(
    status: int,
    message: str | None = None,
    *,
    param: str | None = None,
    code: str | None = None,
    kind: str | None = None,
) -> bytes:
    return orjson.dumps({"error": _openai_error(status, message, param, code, kind)})


def _openai_error(status: int, message: str | None, param: str | None, code: str | None, kind: str | None) -> Any:
    default_kind, default_message, default_code = _DEFAULTS.get(
        status, ("invalid_request_error" if status < 500 else "server_error", f"Error {status}.", None)
    )
    return {
        "message": message or default_message,
        "type": kind or default_kind,
        "param": param,
        "code": code or default_code,
    }


def _anthropic_error(status: int, message: str | None, kind: str | None) -> dict[str, str]:
    default_kind, default_message = _ANTHROPIC.get(
        status, ("invalid_request_error", f"Error {status}.") if status < 500 else ("api_error", f"Error {status}.")
    )
    return {"type": kind or default_kind, "message": message or default_message}


def anthropic_error_body(
    status: int, message: str | None = None, *, kind: str | None = None, request_id: str | None = None
) -> bytes:
    body: dict[str, Any] = {"type": "error", "error": _anthropic_error(status, message, kind)}
    if request_id is not None:
        body["request_id"] = request_id
    return orjson.dumps(body)


def anthropic_stream_error(message: str | None = None, *, kind: str | None = None) -> bytes:
    """An ``error`` event, as Anthropic sends one after a stream has begun (``overloaded_error`` by default)."""
    data = orjson.dumps({"type": "error", "error": _anthropic_error(_STREAM_ERROR_STATUS, message, kind)})
    return b"event: error\ndata: " + data + b"\n\n"


def openai_stream_error(message: str | None = None, *, code: str | None = None, kind: str | None = None) -> bytes:
    """A ``data:`` event carrying an OpenAI error object (``server_error`` by default), as OpenAI sends one."""
    error = _openai_error(_OPENAI_STREAM_ERROR_STATUS, message, None, code, kind)
    return b"data: " + orjson.dumps({"error": error}) + b"\n\n"


class MockError(Exception):
    """A request the mock refuses, rendered in the envelope of the API it was made to."""

    def __init__(self, status: int, message: str, *, param: str | None = None, code: str | None = None) -> None:
        super().__init__(message)
        self.status = status
        self.message = message
        self.param = param
        self.code = code

    def body(self) -> bytes:
        return error_body(self.status, self.message, param=self.param, code=self.code)

    def anthropic_body(self, request_id: str | None = None) -> bytes:
        return anthropic_error_body(self.status, self.message, request_id=request_id)
