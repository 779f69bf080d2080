"""The JSON Schema instance generator behind tool arguments and structured output."""

from __future__ import annotations

from typing import Any

import jsonschema
import pytest

from interlock.mockprovider.schema_instances import instance_for


@pytest.mark.parametrize(
    "schema",
    [
        {"type": "string", "minLength": 30},
        {"type": "integer", "exclusiveMinimum": 5, "exclusiveMaximum": 7},
        {"type": "integer", "minimum": 10, "multipleOf": 4},
        {"type": "number", "minimum": -3.5, "maximum": -1},
        {
            "$schema": "http://json-schema.org/draft-04/schema#",
            "type": "number",
            "maximum": 0,
            "exclusiveMaximum": True,
        },
        {"type": "array", "items": {"enum": ["a", "b", "c"]}, "minItems": 3, "uniqueItems": True},
        {"type": "array", "prefixItems": [{"type": "integer"}, {"type": "string"}], "items": False},
        {"type": "array", "maxItems": 0},
        {
            "allOf": [
                {"type": "object", "properties": {"a": {"type": "integer"}}, "required": ["a"]},
                {"required": ["b"]},
            ]
        },
        {"oneOf": [{"type": "string", "format": "email"}, {"type": "integer"}]},
        {
            "type": "object",
            "properties": {"child": {"$ref": "#"}, "name": {"type": "string"}},
            "required": ["name"],
        },
        {
            "definitions": {"node": {"type": "object", "properties": {"next": {"$ref": "#/definitions/node"}}}},
            "$ref": "#/definitions/node",
        },
        {"type": "null"},
        {},
    ],
)
def test_instances_validate(schema: dict[str, Any]) -> None:
    instance = instance_for(schema)
    jsonschema.validate(instance, schema)
    assert instance_for(schema) == instance
