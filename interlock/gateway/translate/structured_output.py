"""OpenAI's ``response_format: json_schema`` on an upstream that only has tools: a forced tool.

The request gets one extra tool, named after the schema, whose ``input_schema`` is the schema, and a
``tool_choice`` that forces it; the model's input to that tool is the structured answer. The response and stream
translators find the tool by the same name in the client's request and turn its input back into ``content``.
"""

from __future__ import annotations

from typing import Any

__all__ = ["DEFAULT_SCHEMA_NAME", "schema_tool", "schema_tool_name"]

DEFAULT_SCHEMA_NAME = "json_response"
"""The tool's name when the client's ``json_schema`` has no ``name`` (OpenAI requires one; some clients omit it)."""

_DESCRIPTION = "Answer by calling this tool: its input is your whole response, a JSON value matching the schema."


def _json_schema(request: dict[str, Any]) -> dict[str, Any] | None:
    response_format = request.get("response_format")
    if not isinstance(response_format, dict) or response_format.get("type") != "json_schema":
        return None
    spec = response_format.get("json_schema")
    if not isinstance(spec, dict):
        raise ValueError("response_format.json_schema must be an object with a 'name' and a 'schema'")
    return spec


def schema_tool_name(request: dict[str, Any]) -> str | None:
    """The forced tool's name for a client request with ``response_format: json_schema``; else None."""
    spec = _json_schema(request)
    if spec is None:
        return None
    name = spec.get("name")
    return name if isinstance(name, str) and name else DEFAULT_SCHEMA_NAME


def schema_tool(request: dict[str, Any]) -> dict[str, Any] | None:
    """The Anthropic tool definition that carries the client's JSON schema; None without ``json_schema``."""
    spec = _json_schema(request)
    if spec is None:
        return None
    schema = spec.get("schema")
    if schema is None:
        schema = {"type": "object"}
    if not isinstance(schema, dict):
        raise ValueError("response_format.json_schema.schema must be a JSON schema object")
    description = spec.get("description")
    return {
        "name": schema_tool_name(request),
        "description": description if isinstance(description, str) and description else _DESCRIPTION,
        "input_schema": schema,
    }
