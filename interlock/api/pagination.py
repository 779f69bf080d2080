"""Opaque keyset cursors: ``(started_at, id)`` of the last row of a page, or a tenant name.

Keyset (not offset) pagination stays correct while usage keeps arriving and costs the same on page 1000 as on
page 1. A cursor that does not decode is a 422, never a 500.
"""

from __future__ import annotations

import base64
import binascii
import datetime as dt
import json

from interlock.api.errors import InvalidError

__all__ = ["decode_cursor", "decode_name_cursor", "encode_cursor", "encode_name_cursor"]


def _encode(payload: list[object]) -> str:
    return base64.urlsafe_b64encode(json.dumps(payload, separators=(",", ":")).encode()).decode().rstrip("=")


def _decode(cursor: str) -> list[object]:
    if len(cursor) > 512:
        raise InvalidError("cursor is not valid (too long)")
    try:
        raw = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4))
        payload = json.loads(raw)
    except (binascii.Error, ValueError) as exc:
        raise InvalidError("cursor is not valid: pass the next_cursor of a previous page") from exc
    if not isinstance(payload, list):
        raise InvalidError("cursor is not valid: pass the next_cursor of a previous page")
    return payload


def encode_cursor(started_at: dt.datetime, row_id: int) -> str:
    return _encode(["t", started_at.isoformat(), row_id])


def decode_cursor(cursor: str) -> tuple[dt.datetime, int]:
    payload = _decode(cursor)
    try:
        kind, stamp, row_id = payload
        if kind != "t" or not isinstance(stamp, str) or type(row_id) is not int:
            raise ValueError(kind)
        when = dt.datetime.fromisoformat(stamp)
    except ValueError as exc:
        raise InvalidError("cursor is not valid: pass the next_cursor of a previous page") from exc
    if when.tzinfo is None or not -(2**62) < row_id < 2**62:
        raise InvalidError("cursor is not valid: pass the next_cursor of a previous page")
    return when, row_id


def encode_name_cursor(name: str) -> str:
    return _encode(["n", name])


def decode_name_cursor(cursor: str) -> str:
    payload = _decode(cursor)
    if len(payload) != 2 or payload[0] != "n" or not isinstance(payload[1], str) or "\x00" in payload[1]:
        raise InvalidError("cursor is not valid: pass the next_cursor of a previous page")
    return payload[1]
