"""Structured output: JSON that validates against the requested schema, and the generator behind it."""

from __future__ import annotations

import json
from typing import Any

import jsonschema
import pytest

from tests.mockprovider.served import Served

pytestmark = pytest.mark.asyncio(loop_scope="session")

ORDER: dict[str, Any] = {
    "$defs": {
        "address": {
            "type": "object",
            "properties": {
                "street": {"type": "string"},
                "country": {"type": "string", "enum": ["NO", "SE", "DK"]},
                "postcode": {"type": "string", "minLength": 4, "maxLength": 4},
            },
            "required": ["street", "country", "postcode"],
            "additionalProperties": False,
        },
        "line": {
            "type": "object",
            "properties": {
                "sku": {"type": "string"},
                "quantity": {"type": "integer", "minimum": 1, "maximum": 9},
                "price": {"type": "number", "exclusiveMinimum": 0},
            },
            "required": ["sku", "quantity", "price"],
        },
    },
    "type": "object",
    "properties": {
        "id": {"type": "string", "format": "uuid"},
        "placed_at": {"type": "string", "format": "date-time"},
        "status": {"type": "string", "enum": ["open", "shipped"]},
        "ship_to": {"$ref": "#/$defs/address"},
        "lines": {"type": "array", "items": {"$ref": "#/$defs/line"}, "minItems": 2, "uniqueItems": True},
        "gift": {"type": ["boolean", "null"]},
        "note": {"anyOf": [{"type": "null"}, {"type": "string", "maxLength": 20}]},
        "kind": {"const": "order"},
    },
    "required": ["id", "placed_at", "status", "ship_to", "lines", "gift", "note", "kind"],
    "additionalProperties": False,
}


def _format(schema: dict[str, Any]) -> Any:
    return {"type": "json_schema", "json_schema": {"name": "order", "schema": schema, "strict": True}}


async def test_json_schema_output_validates(mock: Served) -> None:
    messages: Any = [{"role": "user", "content": "An order, please."}]
    reply = await mock.client.chat.completions.create(model="m", messages=messages, response_format=_format(ORDER))
    assert reply.choices[0].finish_reason == "stop"
    document = json.loads(reply.choices[0].message.content or "")
    jsonschema.validate(document, ORDER)
    assert len(document["lines"]) == 2
    stream = await mock.client.chat.completions.create(
        model="m", messages=messages, response_format=_format(ORDER), stream=True
    )
    streamed = "".join([chunk.choices[0].delta.content or "" async for chunk in stream])
    assert streamed == reply.choices[0].message.content


async def test_json_object_output_is_an_object(mock: Served) -> None:
    messages: Any = [{"role": "user", "content": "JSON please"}]
    reply = await mock.client.chat.completions.create(
        model="m", messages=messages, response_format={"type": "json_object"}
    )
    assert isinstance(json.loads(reply.choices[0].message.content or ""), dict)


async def test_malformed_schema_is_400(mock: Served) -> None:
    schema = {"type": "object", "properties": {"n": {"type": "integer", "minimum": "one"}}}
    body = {"model": "m", "messages": [{"role": "user", "content": "x"}], "response_format": _format(schema)}
    response = await mock.http.post("/v1/chat/completions", json=body)
    assert response.status_code == 400
    assert response.json()["error"]["param"] == "response_format"
