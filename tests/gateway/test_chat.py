"""Chat completions through the gateway with the official openai SDK, against a real upstream server."""

from __future__ import annotations

import json

import jsonschema
import orjson

from tests.gateway.harness import KEY, backend, config, route

HELLO = [{"role": "user", "content": "Hello there"}]

WEATHER_TOOL = {
    "type": "function",
    "function": {
        "name": "get_weather",
        "description": "Weather for a city",
        "parameters": {
            "type": "object",
            "properties": {
                "city": {"type": "string"},
                "unit": {"type": "string", "enum": ["celsius", "fahrenheit"]},
                "days": {"type": "integer", "minimum": 1, "maximum": 7},
            },
            "required": ["city", "unit"],
        },
    },
}


async def test_non_streaming_answer_is_the_upstream_answer(upstream, gateway):
    up = await upstream()
    gw = await gateway(config(backend("a", up.url), route("chat", [("a", "m1")])))

    raw = await gw.client.chat.completions.with_raw_response.create(model="chat", messages=HELLO)
    answer = raw.parse()

    assert answer.choices[0].message.content
    assert answer.choices[0].finish_reason == "stop"
    assert answer.usage is not None
    assert answer.usage.total_tokens == answer.usage.prompt_tokens + answer.usage.completion_tokens
    assert raw.headers["x-interlock-backend"] == "a"
    assert raw.headers["x-request-id"].startswith("req_")
    sent = up.provider.stats.last
    assert sent is not None
    assert sent.body["model"] == "m1", "the gateway sends the target's model name upstream"
    assert "stream_options" not in sent.body, "a unary request is passed through unchanged but for model"


async def test_client_request_id_is_echoed(upstream, gateway):
    up = await upstream()
    gw = await gateway(config(backend("a", up.url), route("chat", [("a", "m1")])))
    response = await gw.http.post(
        "/v1/chat/completions", json={"model": "chat", "messages": HELLO}, headers={"x-request-id": "trace-42"}
    )
    assert response.status_code == 200
    assert response.headers["x-request-id"] == "trace-42"


async def test_stream_without_include_usage_has_no_usage_anywhere(upstream, gateway):
    up = await upstream(stream_chunks=12)
    gw = await gateway(config(backend("a", up.url), route("chat", [("a", "m1")])))

    chunks = [c async for c in await gw.client.chat.completions.create(model="chat", messages=HELLO, stream=True)]

    assert all(c.usage is None for c in chunks)
    assert all(c.choices for c in chunks), "no usage-only chunk unless the client asked"
    assert chunks[-1].choices[0].finish_reason == "stop"
    text = "".join(c.choices[0].delta.content or "" for c in chunks)
    direct = await gw.client.chat.completions.create(model="chat", messages=HELLO)
    assert text == direct.choices[0].message.content
    assert up.provider.stats.recent[-2].body["stream_options"] == {"include_usage": True}, "gateway meters"


async def test_stream_without_include_usage_is_byte_clean(upstream, gateway):
    up = await upstream(stream_chunks=5)
    gw = await gateway(config(backend("a", up.url), route("chat", [("a", "m1")])))
    async with gw.http.stream(
        "POST", "/v1/chat/completions", json={"model": "chat", "messages": HELLO, "stream": True}
    ) as r:
        body = b"".join([part async for part in r.aiter_bytes()])
    assert r.headers["content-type"].startswith("text/event-stream")
    assert b'"usage"' not in body
    assert body.endswith(b"data: [DONE]\n\n")


async def test_stream_with_include_usage_matches_unary_usage(upstream, gateway):
    up = await upstream(stream_chunks=9)
    gw = await gateway(config(backend("a", up.url), route("chat", [("a", "m1")])))

    stream = await gw.client.chat.completions.create(
        model="chat", messages=HELLO, stream=True, stream_options={"include_usage": True}
    )
    chunks = [c async for c in stream]
    unary = await gw.client.chat.completions.create(model="chat", messages=HELLO)

    assert chunks[-1].choices == []
    assert chunks[-1].usage is not None
    assert chunks[-1].usage.model_dump() == unary.usage.model_dump()
    pieces = [c for c in chunks if c.choices and c.choices[0].delta.content]
    assert chunks[-1].usage.completion_tokens == len(pieces)


async def test_tool_call_and_tool_result_turn(upstream, gateway):
    up = await upstream()
    gw = await gateway(config(backend("a", up.url), route("chat", [("a", "m1")])))
    messages = [{"role": "user", "content": "What's the weather in Paris?"}]

    first = await gw.client.chat.completions.create(model="chat", messages=messages, tools=[WEATHER_TOOL])

    call = first.choices[0].message.tool_calls[0]
    assert first.choices[0].finish_reason == "tool_calls"
    assert call.function.name == "get_weather"
    jsonschema.validate(json.loads(call.function.arguments), WEATHER_TOOL["function"]["parameters"])
    second = await gw.client.chat.completions.create(
        model="chat",
        tools=[WEATHER_TOOL],
        messages=[
            *messages,
            first.choices[0].message.model_dump(exclude_none=True),
            {"role": "tool", "tool_call_id": call.id, "content": "18 degrees and sunny"},
        ],
    )
    assert second.choices[0].finish_reason == "stop"
    assert "18 degrees" in second.choices[0].message.content


async def test_streamed_tool_call_arguments_reassemble_into_valid_json(upstream, gateway):
    up = await upstream()
    gw = await gateway(config(backend("a", up.url), route("chat", [("a", "m1")])))

    stream = await gw.client.chat.completions.create(
        model="chat", messages=[{"role": "user", "content": "weather please"}], tools=[WEATHER_TOOL], stream=True
    )
    calls: dict[int, dict[str, str]] = {}
    finish = None
    async for chunk in stream:
        for delta in chunk.choices[0].delta.tool_calls or []:
            entry = calls.setdefault(delta.index, {"name": "", "arguments": ""})
            if delta.function.name:
                entry["name"] = delta.function.name
            entry["arguments"] += delta.function.arguments or ""
        finish = chunk.choices[0].finish_reason or finish

    assert finish == "tool_calls"
    assert len(calls) == 1
    assert calls[0]["name"] == "get_weather"
    arguments = json.loads(calls[0]["arguments"])
    jsonschema.validate(arguments, WEATHER_TOOL["function"]["parameters"])


async def test_response_format_json_schema_output_validates(upstream, gateway):
    up = await upstream()
    gw = await gateway(config(backend("a", up.url), route("chat", [("a", "m1")])))
    schema = {
        "type": "object",
        "properties": {
            "title": {"type": "string"},
            "tags": {"type": "array", "items": {"type": "string"}, "minItems": 1},
            "rating": {"type": "integer", "minimum": 1, "maximum": 5},
        },
        "required": ["title", "tags", "rating"],
        "additionalProperties": False,
    }
    answer = await gw.client.chat.completions.create(
        model="chat",
        messages=[{"role": "user", "content": "Review a film"}],
        response_format={"type": "json_schema", "json_schema": {"name": "review", "schema": schema, "strict": True}},
    )
    jsonschema.validate(json.loads(answer.choices[0].message.content), schema)


async def test_unknown_request_fields_pass_through_untouched(upstream, gateway):
    up = await upstream()
    gw = await gateway(config(backend("a", up.url), route("chat", [("a", "m1")])))
    body = {"model": "chat", "messages": HELLO, "temperature": 0.3, "seed": 7, "vendor_extension": {"x": [1, 2]}}
    response = await gw.http.post("/v1/chat/completions", content=orjson.dumps(body))
    assert response.status_code == 200
    sent = up.provider.stats.last.body
    assert {k: v for k, v in sent.items() if k != "model"} == {k: v for k, v in body.items() if k != "model"}


async def test_x_api_key_header_is_accepted(upstream, gateway):
    up = await upstream()
    gw = await gateway(config(backend("a", up.url), route("chat", [("a", "m1")])))
    response = await gw.http.post(
        "/v1/chat/completions",
        json={"model": "chat", "messages": HELLO},
        headers={"authorization": "", "x-api-key": KEY},
    )
    assert response.status_code == 200, response.text
