"""Strict json_schema requests cannot stall the gateway: a schema is checked when the request arrives (recursive,
invalid, too large or too costly is a 400 that names the problem, before any upstream is called), and answers are
validated in the schema workers, with RE2 patterns and a time budget that kills an overrunning worker."""

from __future__ import annotations

import asyncio
from typing import Any

import orjson
import pytest

from bench.faults.hostile import HostileUpstream
from interlock.gateway.structured.engine import InvalidSchema, compile_schema, document_problem
from interlock.gateway.structured.pool import SchemaBudgetExceeded, SchemaWorkers
from interlock.gateway.structured.shape import schema_problem
from tests.gateway.harness import backend, config, route
from tests.support import eventually

HELLO = [{"role": "user", "content": "Hello"}]
# Python's re takes minutes on this answer (2^40 ways to split the a's); RE2 takes microseconds.
CATASTROPHIC = {"type": "string", "pattern": "^(a+)+$"}
CATASTROPHIC_ANSWER = orjson.dumps("a" * 40 + "!").decode()


def strict(schema: dict[str, Any], name: str = "answer") -> dict[str, Any]:
    return {"type": "json_schema", "json_schema": {"name": name, "schema": schema, "strict": True}}


def chain_of_any_of(levels: int) -> dict[str, Any]:
    defs: dict[str, Any] = {
        f"d{i}": {"anyOf": [{"$ref": f"#/$defs/d{i + 1}"}, {"$ref": f"#/$defs/d{i + 1}"}]} for i in range(levels)
    }
    defs[f"d{levels}"] = {"type": "integer"}
    return {"$defs": defs, "$ref": "#/$defs/d0"}


async def start(servers, gateway, text: str, **settings: Any):
    upstream = HostileUpstream(text=text)
    root = await servers.start(upstream, lifespan="off")
    gw = await gateway(
        config(
            backend("oa", f"{root}/v1", models=["ok"]),
            backend("an", f"{root}/v1", provider="anthropic", models=["ok"]),
            route("chat", [("oa", "ok")]),
            route("claude", [("an", "ok")], retry={"attempts": 1}),
        ),
        **settings,
    )
    return gw, upstream


@pytest.mark.parametrize(
    ("schema", "says"),
    [
        ({"$ref": "#"}, "refers to itself without descending"),
        (
            {"$defs": {"a": {"$ref": "#/$defs/b"}, "b": {"allOf": [{"$ref": "#/$defs/a"}]}}, "$ref": "#/$defs/a"},
            "#/$defs/a -> #/$defs/b",
        ),
        ({"type": "object", "properties": {"x": {"type": "nonsense"}}}, "not a valid JSON Schema at properties/x/type"),
        ({"type": "string", "pattern": "(a)\\1"}, "is not supported"),
        ({"$ref": "https://example.com/schema.json"}, "only local JSON pointers"),
        ({"$ref": "#/$defs/missing"}, "points nowhere"),
        (chain_of_any_of(12), "more than 2000 subschemas"),
    ],
)
async def test_an_unusable_schema_is_a_400_before_any_upstream_call(servers, gateway, schema, says):
    gw, upstream = await start(servers, gateway, "{}")
    body = {"model": "chat", "messages": HELLO, "response_format": strict(schema)}
    for stream in (False, True):
        response = await gw.http.post("/v1/chat/completions", json={**body, "stream": stream})
        assert response.status_code == 400, response.text
        error = response.json()["error"]
        assert error["code"] == "invalid_json_schema"
        assert error["param"] == "response_format"
        assert says in error["message"]
        assert "Traceback" not in error["message"]
    responses = await gw.http.post(
        "/v1/responses",
        json={
            "model": "chat",
            "input": "Hi",
            "text": {"format": {**strict(schema)["json_schema"], "type": "json_schema"}},
        },
    )
    assert responses.status_code == 400, responses.text
    assert responses.json()["error"]["param"] == "text.format"
    assert upstream.requests == 0, "the schema is refused on arrival"


async def test_a_recursive_schema_that_descends_is_fine(servers, gateway):
    tree = {
        "type": "object",
        "properties": {"name": {"type": "string"}, "children": {"type": "array", "items": {"$ref": "#"}}},
        "required": ["name", "children"],
    }
    answer = orjson.dumps({"name": "root", "children": [{"name": "leaf", "children": []}]}).decode()
    gw, _ = await start(servers, gateway, answer)
    result = await gw.client.chat.completions.create(model="chat", messages=HELLO, response_format=strict(tree))
    assert orjson.loads(result.choices[0].message.content or "") == orjson.loads(answer)


async def test_a_catastrophic_pattern_is_matched_in_linear_time(servers, gateway):
    gw, _ = await start(servers, gateway, CATASTROPHIC_ANSWER)
    response = await gw.http.post(
        "/v1/chat/completions", json={"model": "chat", "messages": HELLO, "response_format": strict(CATASTROPHIC)}
    )
    assert response.status_code == 502, response.text
    assert response.json()["error"]["code"] == "invalid_structured_output"
    assert "does not match" in response.json()["error"]["message"]


async def test_a_schema_over_the_size_limit_is_a_400(servers, gateway):
    gw, upstream = await start(servers, gateway, "{}", max_schema_bytes=2048)
    big = {"type": "object", "properties": {f"p{i}": {"type": "string"} for i in range(200)}}
    response = await gw.http.post(
        "/v1/chat/completions", json={"model": "chat", "messages": HELLO, "response_format": strict(big)}
    )
    assert response.status_code == 400
    assert response.json()["error"]["code"] == "json_schema_too_large"
    assert upstream.requests == 0
    assert 'interlock_limit_trips_total{limit="schema_bytes"} 1.0' in (await gw.ops.get("/metrics")).text


async def test_a_validation_over_the_budget_is_a_400_and_the_worker_goes_on(servers, gateway):
    """uniqueItems over thousands of objects is quadratic in jsonschema: seconds for a 30 KB answer."""
    slow = orjson.dumps([{"a": i} for i in range(3000)]).decode()
    gw, _ = await start(servers, gateway, slow, structured_budget_s=0.5, structured_workers=1)
    schema = {"type": "array", "uniqueItems": True}
    body = {"model": "chat", "messages": HELLO, "response_format": strict(schema)}
    response = await gw.http.post("/v1/chat/completions", json=body)
    assert response.status_code == 400, response.text
    assert response.json()["error"]["code"] == "json_schema_too_complex"
    assert (await gw.http.get("/healthz")).status_code == 200
    stream = await gw.http.post("/v1/chat/completions", json={**body, "stream": True})
    assert stream.status_code == 200
    assert b'"code":"json_schema_too_complex"' in stream.content, "the stream ends in the error, not [DONE] alone"
    metrics = (await gw.ops.get("/metrics")).text
    assert 'interlock_limit_trips_total{limit="schema_budget"} 2.0' in metrics
    assert 'status="400"' in metrics, "the answer was metered"
    ok = await gw.client.chat.completions.create(
        model="chat", messages=HELLO, response_format=strict({"type": "array"})
    )
    assert ok.choices[0].message.content == slow
    assert gw.core.services.schemas.started == 1, "the worker stopped the overrunning jobs itself and went on"


async def test_an_answer_over_the_document_limit_is_not_validated(servers, gateway):
    gw, _ = await start(servers, gateway, orjson.dumps("x" * 5000).decode(), max_structured_output_bytes=1024)
    response = await gw.http.post(
        "/v1/chat/completions",
        json={"model": "chat", "messages": HELLO, "response_format": strict({"type": "string"})},
    )
    assert response.status_code == 400
    assert response.json()["error"]["code"] == "json_schema_too_complex"


def test_shape_checks():
    assert schema_problem({"type": "object", "properties": {"next": {"$ref": "#"}}}) is None
    assert schema_problem({"anyOf": [{"$ref": "#"}]}) is not None
    assert schema_problem({"not": {"$ref": "#"}}) is not None
    assert "deeper" in (schema_problem(_nested(100)) or "")
    assert schema_problem(chain_of_any_of(8)) is None  # 2^9 subschemas: within the fan-out limit
    assert "$dynamicRef" in (schema_problem({"$dynamicRef": "#x"}) or "")


def _nested(depth: int) -> dict[str, Any]:
    schema: dict[str, Any] = {"type": "string"}
    for _ in range(depth):
        schema = {"type": "array", "items": schema}
    return schema


def test_engine_uses_re2_for_patterns_and_pattern_properties():
    validator = compile_schema(orjson.dumps({"type": "object", "patternProperties": {"^(x+)+$": CATASTROPHIC}}))
    problem = document_problem(validator, orjson.dumps({"x" * 40 + "!": "a", "xx": "a" * 40 + "!"}))
    assert problem is not None
    assert "does not match" in problem
    with pytest.raises(InvalidSchema, match=r"not supported"):
        compile_schema(orjson.dumps({"type": "string", "pattern": "(?=a)a"}))


async def test_one_owner_cannot_hold_every_worker():
    workers = SchemaWorkers(workers=2, budget_s=30.0)
    slow_schema = orjson.dumps({"type": "array", "uniqueItems": True})
    slow_answer = orjson.dumps([{"a": i} for i in range(6000)])  # tens of seconds in jsonschema
    try:
        hostile = [asyncio.create_task(workers.validate(slow_schema, slow_answer, "tenant-a")) for _ in range(2)]
        assert await workers.validate(orjson.dumps({"type": "integer"}), b"1", "tenant-b") is None
        await eventually(lambda: workers.started == 2, within=60, what="tenant-a's first job has its worker")
        assert not any(task.done() for task in hostile), "tenant-a's jobs are still running or waiting"
        assert workers.busy == 1, "tenant-a holds one worker; its second job waits for it, not for the idle one"
        for task in hostile:
            task.cancel()
        await asyncio.gather(*hostile, return_exceptions=True)
    finally:
        await workers.close()


async def test_a_schema_over_the_budget_is_remembered():
    trips: list[str] = []
    workers = SchemaWorkers(workers=1, budget_s=0.2, on_trip=trips.append)
    big = {"type": "object", "properties": {f"p{i}": {"type": "string", "maxLength": 9} for i in range(3000)}}
    try:
        for _ in range(2):
            with pytest.raises(SchemaBudgetExceeded):
                await workers.check(orjson.dumps(big), "tenant-a")
        assert workers.started == 1, "the second time costs no worker"
        assert trips == ["schema_budget", "schema_budget"]
    finally:
        await workers.close()
