"""The gateway's one exception tree, and the OpenAI error envelope it renders to.

Hierarchy (each class fixes the HTTP status and the OpenAI ``type``/``code``)::

    GatewayError
    ├── InvalidRequestError          400 invalid_request_error
    ├── AuthenticationError          401 invalid_request_error / invalid_api_key
    ├── PermissionDeniedError        403 invalid_request_error / model_not_allowed
    ├── NotFoundError                404 invalid_request_error
    │   └── ModelNotFoundError       404 invalid_request_error / model_not_found
    ├── PayloadTooLargeError         413 invalid_request_error / request_too_large
    ├── RateLimitError               429 (a tenant or route limit; also: every upstream attempt was rate limited)
    │   └── InsufficientQuotaError   429 insufficient_quota  (the tenant's monthly budget is spent)
    ├── UpstreamError                502 upstream_error      (every target and fallback failed)
    ├── UpstreamOverloadedError      503 (529 for Anthropic clients): every upstream was overloaded
    ├── UnsupportedEndpointError     501 invalid_request_error / unsupported (no backend of the route offers it)
    ├── ServiceUnavailableError      503 service_unavailable (nothing to send to: cooling down, at capacity)
    └── GatewayTimeoutError          504 timeout             (the route's deadline passed)

Upstream failures during one attempt are ``AttemptFailure`` (not a ``GatewayError``): the dispatcher decides
whether to retry, fall back or give up, and only then raises a ``GatewayError`` for the client.
"""

from __future__ import annotations

from typing import ClassVar, Literal

import orjson

__all__ = [
    "AttemptFailure",
    "AuthenticationError",
    "FailureKind",
    "GatewayError",
    "GatewayTimeoutError",
    "InsufficientQuotaError",
    "InvalidRequestError",
    "ModelNotFoundError",
    "NotFoundError",
    "PayloadTooLargeError",
    "PermissionDeniedError",
    "RateLimitError",
    "ServiceUnavailableError",
    "UnsupportedEndpointError",
    "UpstreamError",
    "UpstreamOverloadedError",
    "anthropic_error_body",
    "anthropic_error_type",
    "openai_error_body",
    "openai_error_from_upstream",
    "upstream_message",
]


def openai_error_body(message: str, type_: str, code: str | None = None, param: str | None = None) -> bytes:
    """The OpenAI error envelope: ``{"error": {"message", "type", "param", "code"}}``."""
    return orjson.dumps({"error": {"message": message, "type": type_, "param": param, "code": code}})


_ANTHROPIC_TYPES = {
    400: "invalid_request_error",
    401: "authentication_error",
    402: "billing_error",
    403: "permission_error",
    404: "not_found_error",
    413: "request_too_large",
    429: "rate_limit_error",
    501: "api_error",
    503: "overloaded_error",
    504: "timeout_error",
    529: "overloaded_error",
}


def anthropic_error_type(status: int) -> str:
    """The Anthropic error ``type`` for an HTTP status (other 4xx are invalid requests, other 5xx API errors)."""
    return _ANTHROPIC_TYPES.get(status, "invalid_request_error" if status < 500 else "api_error")


def anthropic_error_body(message: str, type_: str) -> bytes:
    """The Anthropic error envelope: ``{"type": "error", "error": {"type", "message"}}``."""
    return orjson.dumps({"type": "error", "error": {"type": type_, "message": message}})


def upstream_message(body: bytes) -> str:
    """The human message of an upstream error body, whatever its shape (OpenAI, vLLM, Anthropic, plain text)."""
    try:
        data = orjson.loads(body)
    except orjson.JSONDecodeError:
        data = None
    if isinstance(data, dict):
        err = data.get("error")
        if isinstance(err, dict) and isinstance(err.get("message"), str):
            return str(err["message"])
        if isinstance(err, str):
            return err
        if isinstance(data.get("message"), str):
            return str(data["message"])
    return body[:300].decode("utf-8", "replace").strip() or "(empty body)"


def openai_error_from_upstream(body: bytes, status: int) -> bytes:
    """An upstream's 4xx body in the OpenAI envelope: relayed as is when it already is one."""
    try:
        data = orjson.loads(body)
    except orjson.JSONDecodeError:
        data = None
    if isinstance(data, dict) and isinstance(data.get("error"), dict):
        return body
    return openai_error_body(upstream_message(body), "invalid_request_error", str(status))


class GatewayError(Exception):
    """An error the client sees, rendered in its own API's envelope."""

    status: ClassVar[int] = 500
    type: ClassVar[str] = "server_error"
    default_code: ClassVar[str | None] = None

    def __init__(
        self,
        message: str,
        *,
        code: str | None = None,
        param: str | None = None,
        headers: dict[str, str] | None = None,
    ) -> None:
        super().__init__(message)
        self.message = message
        self.code = code if code is not None else self.default_code
        self.param = param
        self.headers = headers or {}

    def openai_body(self) -> bytes:
        return openai_error_body(self.message, self.type, self.code, self.param)

    def anthropic_body(self) -> bytes:
        return anthropic_error_body(self.message, anthropic_error_type(self.status_for_anthropic()))

    def status_for_anthropic(self) -> int:
        """The HTTP status for an Anthropic client, where its API has a more specific one."""
        return self.status


class InvalidRequestError(GatewayError):
    status = 400
    type = "invalid_request_error"


class AuthenticationError(GatewayError):
    status = 401
    type = "invalid_request_error"
    default_code = "invalid_api_key"


class PermissionDeniedError(GatewayError):
    status = 403
    type = "invalid_request_error"
    default_code = "model_not_allowed"


class NotFoundError(GatewayError):
    status = 404
    type = "invalid_request_error"
    default_code = "not_found"


class ModelNotFoundError(NotFoundError):
    default_code = "model_not_found"


class PayloadTooLargeError(GatewayError):
    status = 413
    type = "invalid_request_error"
    default_code = "request_too_large"


class RateLimitError(GatewayError):
    status = 429
    type = "rate_limit_exceeded"
    default_code = "rate_limit_exceeded"


class InsufficientQuotaError(RateLimitError):
    """OpenAI's answer when an account's credit is spent: 429 with type and code ``insufficient_quota``."""

    type = "insufficient_quota"
    default_code = "insufficient_quota"


class UpstreamError(GatewayError):
    status = 502
    type = "upstream_error"
    default_code = "upstream_error"


class ServiceUnavailableError(GatewayError):
    status = 503
    type = "service_unavailable"
    default_code = "service_unavailable"


class UnsupportedEndpointError(GatewayError):
    status = 501
    type = "invalid_request_error"
    default_code = "unsupported"


class UpstreamOverloadedError(GatewayError):
    """Every upstream answered "overloaded" (503, or Anthropic's 529). Anthropic clients get 529, which their
    SDK turns into ``OverloadedError``; OpenAI clients get 503."""

    status = 503
    type = "service_unavailable"
    default_code = "upstream_overloaded"

    def status_for_anthropic(self) -> int:
        return 529


class GatewayTimeoutError(GatewayError):
    status = 504
    type = "timeout"
    default_code = "timeout"


FailureKind = Literal["connect", "timeout", "429", "5xx", "protocol", "rejected", "redirect"]


class AttemptFailure(Exception):
    """One upstream attempt failed in a way that may be retried or fallen back from.

    ``kind`` is the failure class: ``connect``, ``timeout``, ``429`` and ``5xx`` may be retried as the route
    says; ``protocol`` (a broken response) is retried under ``5xx``; ``rejected`` (the upstream refused the
    gateway's own credentials or model name: 401, 403, 404) is never retried but falls back to the next target;
    nor is ``redirect`` (a 3xx: the gateway follows no redirect and relays none; the backend's URL is wrong).
    ``retry_after`` is the upstream's Retry-After in seconds when it sent one. ``message`` may reach the client;
    ``detail`` (default: the message) is for the log only, and may name internal hosts and addresses. ``limit``
    names the gateway limit the upstream ran into (``sse_event_bytes``, ``upstream_body_bytes``), for
    ``interlock_limit_trips_total``.
    """

    def __init__(
        self,
        kind: FailureKind,
        message: str,
        *,
        status: int | None = None,
        retry_after: float | None = None,
        detail: str | None = None,
        limit: str | None = None,
    ) -> None:
        super().__init__(message)
        self.kind = kind
        self.message = message
        self.status = status
        self.retry_after = retry_after
        self.detail = detail or message
        self.limit = limit
