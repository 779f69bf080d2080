"""Errors of the control plane and how they render: always ``{"detail": ...}`` with a 4xx, never a traceback.

CRUD functions raise ``NotFoundError`` / ``ConflictError`` / ``InvalidError`` (no HTTP in them); the handlers
registered by ``install_error_handlers`` turn them, and anything unexpected, into JSON answers.
"""

from __future__ import annotations

import logging

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse

__all__ = ["ApiError", "ConflictError", "InvalidError", "NotFoundError", "install_error_handlers"]

log = logging.getLogger("interlock.api")


class ApiError(Exception):
    status_code = 400

    def __init__(self, detail: str) -> None:
        super().__init__(detail)
        self.detail = detail


class NotFoundError(ApiError):
    status_code = 404


class ConflictError(ApiError):
    status_code = 409


class InvalidError(ApiError):
    status_code = 422


async def _api_error(_request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, ApiError)
    return JSONResponse({"detail": exc.detail}, status_code=exc.status_code)


async def _validation_error(_request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, RequestValidationError)
    errors = [
        {"loc": list(err.get("loc", ())), "msg": str(err.get("msg", "")), "type": str(err.get("type", ""))}
        for err in exc.errors()
    ]  # no "input" echo: a body may carry a secret
    return JSONResponse({"detail": errors}, status_code=422)


async def _unexpected(_request: Request, exc: Exception) -> JSONResponse:
    log.error("unhandled error: %s", type(exc).__name__, exc_info=exc)
    return JSONResponse({"detail": "Internal error."}, status_code=500)


def install_error_handlers(app: FastAPI) -> None:
    app.add_exception_handler(ApiError, _api_error)
    app.add_exception_handler(RequestValidationError, _validation_error)
    app.add_exception_handler(Exception, _unexpected)
