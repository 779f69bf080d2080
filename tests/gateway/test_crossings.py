"""Every client API against every upstream API, through the gateway, with the official SDKs over real HTTP.

The mock provider answers the same prompt with the same text in both of its APIs, so whatever the crossing,
the client must see exactly the upstream's answer, in its own API's shape.
"""

from __future__ import annotations

import json
from typing import Any

import anthropic
import jsonschema
import openai
import pytest

from interlock.mockprovider import Fault
from tests.gateway.harness import KEY, backend, config, route

UPSTREAMS = ["openai", "anthropic"]
PROMPT = "Tell me about gateways"
WEATHER_SCHEMA = {
    "type": "object",
    "properties": {"city": {"type": "string"}, "unit": {"type": "string", "enum": ["c", "f"]}},
    "required": ["city", "unit"],
}
REVIEW_SCHEMA = {
    "type": "object",
    "properties": {
        "title": {"type": "string"},
        "stars": {"type": "integer", "minimum": 1, "maximum": 5},
        "tags": {"type": "array", "items": {"type": "string"}},
    },
    "required": ["title", "stars", "tags"],
    "additionalProperties": False,
}


@pytest.fixture(params=UPSTREAMS)
async def setup(request, upstream, gateway, stack):
    up = await upstream()
    gw = await gateway(
        config(backend("up", up.url, provider=request.param), route("chat", [("up", "m1")], retry={"attempts": 1}))
    )
    claude = anthropic.AsyncAnthropic(base_url=gw.root, api_key=KEY, max_retries=0)
    stack.push_async_callback(claude.close)
    return up, gw, claude


async def expected_text(up, gw, prompt: str = PROMPT) -> str:
    """The upstream's own answer to the prompt, asked directly (not through the gateway)."""
    async with openai.AsyncOpenAI(base_url=up.url, api_key="x", max_retries=0) as direct:
        answer = await direct.chat.completions.create(model="m1", messages=[{"role": "user", "content": prompt}])
    return answer.choices[0].message.content


# --- OpenAI chat completions client ---------------------------------------------------------------------


async def test_chat_text_and_stream(setup):
    up, gw, _ = setup
    want = await expected_text(up, gw)
    answer = await gw.client.chat.completions.create(model="chat", messages=[{"role": "user", "content": PROMPT}])
    assert answer.choices[0].message.content == want
    assert answer.usage.total_tokens == answer.usage.prompt_tokens + answer.usage.completion_tokens
    stream = await gw.client.chat.completions.create(
        model="chat",
        messages=[{"role": "user", "content": PROMPT}],
        stream=True,
        stream_options={"include_usage": True},
    )
    chunks = [c async for c in stream]
    assert "".join(c.choices[0].delta.content or "" for c in chunks if c.choices) == want
    assert chunks[-1].usage.model_dump(include={"prompt_tokens", "completion_tokens", "total_tokens"}) == (
        answer.usage.model_dump(include={"prompt_tokens", "completion_tokens", "total_tokens"})
    )


async def test_chat_tool_call_result_turn_and_streamed_arguments(setup):
    _, gw, _ = setup
    tools = [{"type": "function", "function": {"name": "weather", "parameters": WEATHER_SCHEMA}}]
    messages: list[dict[str, Any]] = [{"role": "user", "content": "weather in Oslo?"}]
    first = await gw.client.chat.completions.create(model="chat", messages=messages, tools=tools)
    call = first.choices[0].message.tool_calls[0]
    assert first.choices[0].finish_reason == "tool_calls"
    jsonschema.validate(json.loads(call.function.arguments), WEATHER_SCHEMA)

    stream = await gw.client.chat.completions.create(model="chat", messages=messages, tools=tools, stream=True)
    arguments = ""
    async for chunk in stream:
        for delta in (chunk.choices[0].delta.tool_calls or []) if chunk.choices else []:
            arguments += delta.function.arguments or ""
    jsonschema.validate(json.loads(arguments), WEATHER_SCHEMA)

    messages += [
        first.choices[0].message.model_dump(exclude_none=True),
        {"role": "tool", "tool_call_id": call.id, "content": "minus four and snowing"},
    ]
    second = await gw.client.chat.completions.create(model="chat", messages=messages, tools=tools)
    assert "minus four" in second.choices[0].message.content


async def test_chat_json_schema_output_validates(setup):
    _, gw, _ = setup
    format_ = {"type": "json_schema", "json_schema": {"name": "review", "schema": REVIEW_SCHEMA, "strict": True}}
    answer = await gw.client.chat.completions.create(
        model="chat", messages=[{"role": "user", "content": "review it"}], response_format=format_
    )
    jsonschema.validate(json.loads(answer.choices[0].message.content), REVIEW_SCHEMA)
    stream = await gw.client.chat.completions.create(
        model="chat", messages=[{"role": "user", "content": "review it"}], response_format=format_, stream=True
    )
    text = "".join([c.choices[0].delta.content or "" async for c in stream if c.choices])
    jsonschema.validate(json.loads(text), REVIEW_SCHEMA)


# --- Anthropic messages client --------------------------------------------------------------------------


async def test_messages_text_and_stream(setup):
    up, gw, claude = setup
    want = await expected_text(up, gw)
    message = await claude.messages.create(model="chat", max_tokens=500, messages=[{"role": "user", "content": PROMPT}])
    assert message.content[0].text == want
    assert message.stop_reason == "end_turn"
    async with claude.messages.stream(
        model="chat", max_tokens=500, messages=[{"role": "user", "content": PROMPT}]
    ) as stream:
        pieces = [text async for text in stream.text_stream]
        final = await stream.get_final_message()
    assert "".join(pieces) == want
    assert final.usage.output_tokens == message.usage.output_tokens
    assert final.usage.input_tokens == message.usage.input_tokens


async def test_messages_tool_use_result_turn_and_streamed_input(setup):
    _, _, claude = setup
    tools = [{"name": "weather", "description": "Weather", "input_schema": WEATHER_SCHEMA}]
    messages: list[dict[str, Any]] = [{"role": "user", "content": "weather in Oslo?"}]
    first = await claude.messages.create(model="chat", max_tokens=500, messages=messages, tools=tools)
    use = next(block for block in first.content if block.type == "tool_use")
    assert first.stop_reason == "tool_use"
    jsonschema.validate(use.input, WEATHER_SCHEMA)

    async with claude.messages.stream(model="chat", max_tokens=500, messages=messages, tools=tools) as stream:
        final = await stream.get_final_message()
    streamed = next(block for block in final.content if block.type == "tool_use")
    jsonschema.validate(streamed.input, WEATHER_SCHEMA)

    messages += [
        {"role": "assistant", "content": [block.model_dump(exclude_none=True) for block in first.content]},
        {"role": "user", "content": [{"type": "tool_result", "tool_use_id": use.id, "content": "minus four"}]},
    ]
    second = await claude.messages.create(model="chat", max_tokens=500, messages=messages, tools=tools)
    assert "minus four" in second.content[0].text


# --- OpenAI responses client ----------------------------------------------------------------------------


async def test_responses_text_and_stream(setup):
    up, gw, _ = setup
    want = await expected_text(up, gw)
    response = await gw.client.responses.create(model="chat", input=PROMPT)
    assert response.output_text == want
    assert response.usage.total_tokens == response.usage.input_tokens + response.usage.output_tokens
    async with gw.client.responses.stream(model="chat", input=PROMPT) as stream:
        deltas = [e.delta async for e in stream if e.type == "response.output_text.delta"]
        final = await stream.get_final_response()
    assert "".join(deltas) == want
    assert final.usage.total_tokens == response.usage.total_tokens


async def test_responses_function_call_and_output_turn(setup):
    _, gw, _ = setup
    tools = [{"type": "function", "name": "weather", "parameters": WEATHER_SCHEMA}]
    first = await gw.client.responses.create(model="chat", input="weather in Oslo?", tools=tools)
    call = next(item for item in first.output if item.type == "function_call")
    jsonschema.validate(json.loads(call.arguments), WEATHER_SCHEMA)
    async with gw.client.responses.stream(model="chat", input="weather in Oslo?", tools=tools) as stream:
        final = await stream.get_final_response()
    streamed = next(item for item in final.output if item.type == "function_call")
    jsonschema.validate(json.loads(streamed.arguments), WEATHER_SCHEMA)
    second = await gw.client.responses.create(
        model="chat",
        tools=tools,
        input=[
            {"role": "user", "content": "weather in Oslo?"},
            {"type": "function_call", "call_id": call.call_id, "name": "weather", "arguments": call.arguments},
            {"type": "function_call_output", "call_id": call.call_id, "output": "minus four"},
        ],
    )
    assert "minus four" in second.output_text


async def test_responses_json_schema_output_validates(setup):
    _, gw, _ = setup
    text = {"format": {"type": "json_schema", "name": "review", "schema": REVIEW_SCHEMA, "strict": True}}
    response = await gw.client.responses.create(model="chat", input="review it", text=text)
    jsonschema.validate(json.loads(response.output_text), REVIEW_SCHEMA)


async def test_responses_refuses_server_state_with_a_clear_400(setup):
    _, gw, _ = setup
    with pytest.raises(openai.BadRequestError) as caught:
        await gw.client.responses.create(model="chat", input="hi", previous_response_id="resp_123")
    assert "previous_response_id" in caught.value.message
    with pytest.raises(openai.BadRequestError) as caught:
        await gw.client.responses.create(model="chat", input="hi", tools=[{"type": "web_search"}])
    assert "web_search" in caught.value.message


# --- provider errors, mapped to each SDK's exception classes ----------------------------------------------

ERRORS = [
    (400, openai.BadRequestError, anthropic.BadRequestError),
    (422, openai.UnprocessableEntityError, anthropic.UnprocessableEntityError),
    (429, openai.RateLimitError, anthropic.RateLimitError),
    (500, openai.InternalServerError, anthropic.InternalServerError),
    (401, openai.InternalServerError, anthropic.InternalServerError),  # the gateway's own key was refused
    (529, openai.InternalServerError, anthropic.OverloadedError),
]


@pytest.mark.parametrize(("status", "openai_error", "anthropic_error"), ERRORS)
async def test_provider_errors_map_to_the_right_sdk_exception(setup, status, openai_error, anthropic_error):
    up, gw, claude = setup
    messages = [{"role": "user", "content": "hi"}]
    up.provider.push_faults([Fault(status=status, retry_after=0.01)])
    with pytest.raises(openai_error):
        await gw.client.chat.completions.create(model="chat", messages=messages)
    up.provider.push_faults([Fault(status=status, retry_after=0.01)])
    with pytest.raises(anthropic_error):
        await claude.messages.create(model="chat", max_tokens=50, messages=messages)
    up.provider.push_faults([Fault(status=status, retry_after=0.01)])
    with pytest.raises(openai_error):
        await gw.client.responses.create(model="chat", input="hi")


async def test_an_in_stream_upstream_error_reaches_every_client_as_an_error(setup):
    up, gw, claude = setup
    messages = [{"role": "user", "content": PROMPT}]
    up.provider.push_faults([Fault(stream_error_after_chunks=3)])
    with pytest.raises(openai.APIError):
        async for _ in await gw.client.chat.completions.create(model="chat", messages=messages, stream=True):
            pass
    up.provider.push_faults([Fault(stream_error_after_chunks=3)])
    with pytest.raises(anthropic.APIError):
        async with claude.messages.stream(model="chat", max_tokens=500, messages=messages) as stream:
            await stream.get_final_message()
    up.provider.push_faults([Fault(stream_error_after_chunks=3)])
    # The Responses API reports a failed stream with typed events; the SDK hands them over instead of raising.
    async with gw.client.responses.stream(model="chat", input=PROMPT) as stream:
        kinds = [event.type async for event in stream]
    assert kinds[0] == "response.created"
    assert kinds[-2:] == ["error", "response.failed"]


async def test_count_tokens(setup, request):
    up, _, claude = setup
    messages = [{"role": "user", "content": PROMPT}]
    if request.node.callspec.params["setup"] == "anthropic":
        counted = await claude.messages.count_tokens(model="chat", messages=messages)
        message = await claude.messages.create(model="chat", max_tokens=500, messages=messages)
        assert counted.input_tokens == message.usage.input_tokens
        assert up.provider.stats.recent[0].body["model"] == "m1"
    else:
        with pytest.raises(anthropic.APIStatusError) as caught:
            await claude.messages.count_tokens(model="chat", messages=messages)
        assert caught.value.status_code == 501
        assert "Anthropic backend" in caught.value.message


# --- structured output you can rely on ----------------------------------------------------------------------

REVIEW_FORMAT = {"type": "json_schema", "json_schema": {"name": "review", "schema": REVIEW_SCHEMA, "strict": True}}


async def test_off_schema_answer_from_an_unconstrained_provider_is_retried_once_with_a_hint(upstream, gateway):
    up = await upstream()
    gw = await gateway(config(backend("claude", up.url, provider="anthropic"), route("chat", [("claude", "m1")])))
    up.provider.push_faults([Fault(off_schema=True)])

    answer = await gw.client.chat.completions.create(
        model="chat", messages=[{"role": "user", "content": "review it"}], response_format=REVIEW_FORMAT
    )

    jsonschema.validate(json.loads(answer.choices[0].message.content), REVIEW_SCHEMA)
    assert up.requests == 2
    retry = up.provider.stats.last.body
    assert "did not match the required JSON schema" in json.dumps(retry["messages"][-1])


async def test_off_schema_twice_is_a_clear_error_never_a_success(upstream, gateway):
    up = await upstream()
    gw = await gateway(config(backend("claude", up.url, provider="anthropic"), route("chat", [("claude", "m1")])))
    up.provider.push_faults([Fault(off_schema=True)] * 2)
    with pytest.raises(openai.APIStatusError) as caught:
        await gw.client.chat.completions.create(
            model="chat", messages=[{"role": "user", "content": "review it"}], response_format=REVIEW_FORMAT
        )
    assert caught.value.status_code == 502
    assert caught.value.code == "invalid_structured_output"
    assert "review" in caught.value.message
    assert up.requests == 2


async def test_a_constrained_provider_is_not_retried(upstream, gateway):
    up = await upstream()
    gw = await gateway(config(backend("oa", up.url, provider="openai"), route("chat", [("oa", "m1")])))
    up.provider.push_faults([Fault(off_schema=True)])
    with pytest.raises(openai.APIStatusError) as caught:
        await gw.client.responses.create(
            model="chat",
            input="review it",
            text={"format": {"type": "json_schema", "name": "review", "schema": REVIEW_SCHEMA, "strict": True}},
        )
    assert caught.value.code == "invalid_structured_output"
    assert up.requests == 1


async def test_non_strict_schemas_are_not_enforced(upstream, gateway):
    up = await upstream()
    gw = await gateway(config(backend("oa", up.url), route("chat", [("oa", "m1")])))
    up.provider.push_faults([Fault(off_schema=True)])
    loose = {"type": "json_schema", "json_schema": {"name": "review", "schema": REVIEW_SCHEMA}}
    answer = await gw.client.chat.completions.create(
        model="chat", messages=[{"role": "user", "content": "review it"}], response_format=loose
    )
    assert json.loads(answer.choices[0].message.content) == {"unexpected": True}


@pytest.mark.parametrize("provider", UPSTREAMS)
async def test_an_off_schema_stream_ends_in_an_error_instead_of_done(upstream, gateway, provider):
    up = await upstream()
    gw = await gateway(config(backend("b", up.url, provider=provider), route("chat", [("b", "m1")])))
    up.provider.push_faults([Fault(off_schema=True)])
    async with gw.http.stream(
        "POST",
        "/v1/chat/completions",
        json={
            "model": "chat",
            "messages": [{"role": "user", "content": "x"}],
            "stream": True,
            "response_format": REVIEW_FORMAT,
        },
    ) as response:
        body = b"".join([part async for part in response.aiter_bytes()])
    events = [e for e in body.split(b"\n\n") if e]
    assert events[-1] == b"data: [DONE]"
    assert b"invalid_structured_output" in events[-2]

    up.provider.push_faults([Fault(off_schema=True)])
    text = {"format": {"type": "json_schema", "name": "review", "schema": REVIEW_SCHEMA, "strict": True}}
    async with gw.client.responses.stream(model="chat", input="x", text=text) as stream:
        kinds = [event.type async for event in stream]
    assert kinds[-1] == "error"
    assert "response.completed" not in kinds


async def test_an_invalid_schema_is_a_400(upstream, gateway):
    up = await upstream()
    gw = await gateway(config(backend("oa", up.url), route("chat", [("oa", "m1")])))
    bad = {"type": "json_schema", "json_schema": {"name": "x", "schema": {"type": "nonsense"}, "strict": True}}
    with pytest.raises(openai.BadRequestError) as caught:
        await gw.client.chat.completions.create(
            model="chat", messages=[{"role": "user", "content": "x"}], response_format=bad
        )
    assert "not a valid JSON Schema" in caught.value.message
