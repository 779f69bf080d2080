"""Errors in OpenAI's envelope: ``{"error": {"message", "type", "param", "code"}}``."""

from __future__ import annotations

import orjson

__all__ = ["MockError", "error_body"]

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


def error_body(status: int, message: str | None = None, *, param: str | None = None, code: str | None = None) -> bytes:
    kind, default_message, default_code = _DEFAULTS.get(
        status, ("invalid_request_error" if status < 500 else "server_error", f"Error {status}.", None)
    )
    return orjson.dumps(
        {"error": {"message": message or default_message, "type": kind, "param": param, "code": code or default_code}}
    )


class MockError(Exception):
    """A request the mock refuses, rendered as an OpenAI error with ``status``."""

    def __init__(self, status: int, message: str, *, param: str | None = None, code: str | None = None) -> None:
        super().__init__(message)
        self.status = status
        self.message = message
        self.param = param
        self.code = code

    def body(self) -> bytes:
        return error_body(self.status, self.message, param=self.param, code=self.code)
