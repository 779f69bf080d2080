"""``POST /v1/messages`` (unary and streamed) and ``POST /v1/messages/count_tokens``, as Anthropic serves them."""

from __future__ import annotations

import functools

import orjson

from interlock.mockprovider.asgi import send_bytes
from interlock.mockprovider.engine_metrics import EngineMetrics, engine_request
from interlock.mockprovider.errors import anthropic_stream_error
from interlock.mockprovider.exchange import Exchange, json_body, run_unary, send_stream, wait
from interlock.mockprovider.messages_answer import answer_messages, input_tokens
from interlock.mockprovider.messages_request import block_text, parse_messages_request
from interlock.mockprovider.messages_wire import message_body, message_events
from interlock.mockprovider.off_schema import ignore_schemas
from interlock.mockprovider.settings import MockSettings
from interlock.mockprovider.tokens import prompt_ids

__all__ = ["count_message_tokens", "create_message"]


async def create_message(settings: MockSettings, exchange: Exchange, engines: EngineMetrics | None = None) -> None:
    body = json_body(exchange)
    request = parse_messages_request(ignore_schemas(body) if exchange.fault.off_schema else body)
    answer = answer_messages(request, settings)
    fault = exchange.fault
    with_usage = not fault.omit_usage
    usage = answer.usage
    prompt = usage["input_tokens"] + usage["cache_creation_input_tokens"] + usage["cache_read_input_tokens"]
    reason = "length" if answer.stop_reason == "max_tokens" else "stop"
    turns = [("system", request.system)] if request.system is not None else []
    turns += ((str(m["role"]), block_text(m["content"])) for m in request.messages)
    ids = functools.partial(prompt_ids, turns)
    async with engine_request(engines, request.model, prompt, usage["output_tokens"], reason, ids) as engine:
        if request.stream:
            events = message_events(answer, request.model, with_usage=with_usage)
            error = anthropic_stream_error(fault.message, kind=fault.error_type)
            await send_stream(
                exchange, events, chunk_delay_s=settings.chunk_delay_s, end=b"", error=error, engine=engine
            )
            return
        if fault.first_token_delay_s > 0 and not await wait(exchange, fault.first_token_delay_s):
            return
        if engine is not None and not await run_unary(exchange, engine):
            return
        await send_bytes(
            exchange.send, 200, message_body(answer, request.model, with_usage=with_usage), headers=exchange.headers
        )
        if engine is not None:
            engine.step()
            engine.complete()


async def count_message_tokens(settings: MockSettings, exchange: Exchange) -> None:
    request = parse_messages_request(json_body(exchange), count_only=True)
    await send_bytes(
        exchange.send, 200, orjson.dumps({"input_tokens": input_tokens(request)}), headers=exchange.headers
    )
