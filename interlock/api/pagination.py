"""Opaque keyset cursors: ``(started_at, id)`` of the last row of a page, a tenant name, or the cost and group
values of the last group of a ranking (``/v1/costs``).

Keyset (not offset) pagination stays correct while usage keeps arriving and costs the same on page 1000 as on
page 1. A cursor that does not decode is a 422, never a 500.
"""

from __future__ import annotations

import base64
import binascii
import datetime as dt
import json
from decimal import Decimal, InvalidOperation

from interlock.api.errors import InvalidError

__all__ = [
    "decode_cursor",
    "decode_name_cursor",
    "decode_rank_cursor",
    "encode_cursor",
    "encode_name_cursor",
    "encode_rank_cursor",
]


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


def encode_rank_cursor(cost: Decimal, groups: tuple[str, ...]) -> str:
    return _encode(["c", str(cost), list(groups)])


def decode_rank_cursor(cursor: str, width: int) -> tuple[Decimal, tuple[str, ...]]:
    """``(cost, group values)``; ``width``: how many group values the ranking has (a cursor of another grouping is
    not valid)."""
    payload = _decode(cursor)
    invalid = InvalidError("cursor is not valid: pass the next_cursor of a previous page with the same group_by")
    if len(payload) != 3 or payload[0] != "c" or not isinstance(payload[1], str) or not isinstance(payload[2], list):
        raise invalid
    groups = payload[2]
    if len(groups) != width or not all(isinstance(g, str) and "\x00" not in g for g in groups):
        raise invalid
    try:
        cost = Decimal(payload[1])
    except InvalidOperation as exc:
        raise invalid from exc
    if not cost.is_finite() or abs(cost) >= Decimal(10) ** 11 or len(payload[1]) > 40:
        raise invalid
    return cost, tuple(groups)
