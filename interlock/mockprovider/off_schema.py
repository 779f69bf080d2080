"""``Fault(off_schema=True)``: answer as a model without constrained decoding sometimes does, with JSON that
ignores the schema it was given, so the gateway's structured-output checks can be tested."""

from __future__ import annotations

import copy
from typing import Any

__all__ = ["OFF_SCHEMA", "ignore_schemas"]

OFF_SCHEMA: dict[str, Any] = {
    "type": "object",
    "properties": {"unexpected": {"type": "boolean"}},
    "required": ["unexpected"],
}


def ignore_schemas(body: dict[str, Any]) -> dict[str, Any]:
    """A copy of a chat or messages request whose response format and tool schemas are all ``OFF_SCHEMA``."""
    body = copy.deepcopy(body)
    response_format = body.get("response_format")
    if isinstance(response_format, dict) and isinstance(response_format.get("json_schema"), dict):
        response_format["json_schema"]["schema"] = OFF_SCHEMA
    for tool in body.get("tools") or []:
        if not isinstance(tool, dict):
            continue
        if isinstance(tool.get("function"), dict):
            tool["function"]["parameters"] = OFF_SCHEMA
        elif "input_schema" in tool:
            tool["input_schema"] = OFF_SCHEMA
    return body
