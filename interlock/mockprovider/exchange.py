"""One API request in flight: what the endpoints need of it, and the paced SSE sender both APIs use."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

from interlock.mockprovider.asgi import SSE, Receive, Send
from interlock.mockprovider.disconnect import DisconnectWatch
from interlock.mockprovider.engine_metrics import EngineRequest
from interlock.mockprovider.errors import MockError
from interlock.mockprovider.settings import Fault

__all__ = ["NOT_JSON", "Exchange", "json_body", "run_unary", "send_stream", "wait"]

NOT_JSON: Any = object()  # the body of a request whose body is not JSON


@dataclass(frozen=True, slots=True)
class Exchange:
    receive: Receive
    send: Send
    path: str
    body: Any  # parsed JSON, or NOT_JSON
    fault: Fault
    headers: list[tuple[bytes, bytes]]  # added to the response
    on_disconnect: Callable[[float], None]


def json_body(exchange: Exchange) -> Any:
    if exchange.body is NOT_JSON:
        raise MockError(400, "We could not parse the JSON body of your request.", code="invalid_json")
    return exchange.body


async def wait(exchange: Exchange, delay: float) -> bool:
    """Wait ``delay`` seconds or until the client leaves; True while the client is still there."""
    watch = DisconnectWatch(exchange.receive, exchange.on_disconnect)
    try:
        return await watch.sleep(delay)
    finally:
        watch.close()


async def run_unary(exchange: Exchange, engine: EngineRequest) -> bool:
    """The engine's prefill and decode time of a unary answer, or until the client leaves; True while it is there."""
    watch = DisconnectWatch(exchange.receive, exchange.on_disconnect)
    try:
        return await engine.run_unary(watch.sleep)
    finally:
        watch.close()


async def send_stream(
    exchange: Exchange,
    chunks: Iterator[bytes],
    *,
    chunk_delay_s: float,
    end: bytes,
    error: bytes,
    engine: EngineRequest | None = None,
) -> None:
    """Send ``chunks`` paced, then ``end``; stop at once when the client leaves or the fault drops us.

    ``error`` is the in-stream error event a ``Fault.stream_error_after_chunks`` sends (followed by ``end``).
    ``engine`` (engine metrics) computes the prompt before the first chunk, paces the chunks by its decode step
    when that is slower, takes a step per chunk sent and completes only when the whole stream went out.
    """
    fault, send = exchange.fault, exchange.send
    delay = chunk_delay_s if fault.chunk_delay_s is None else fault.chunk_delay_s
    if engine is not None:
        delay = max(delay, engine.decode_s)
    watch = DisconnectWatch(exchange.receive, exchange.on_disconnect)
    try:
        start = [(b"content-type", SSE), (b"cache-control", b"no-cache"), *exchange.headers]
        await send({"type": "http.response.start", "status": 200, "headers": start})
        drop, fail = fault.drop_after_chunks, fault.stream_error_after_chunks
        if engine is not None and not await engine.prefill(watch.sleep):
            return
        for sent, chunk in enumerate(chunks):
            if sent in (drop, fail):
                break
            if not await watch.sleep(fault.first_token_delay_s if sent == 0 else delay):
                return
            await send({"type": "http.response.body", "body": chunk, "more_body": True})
            if engine is not None:
                engine.step()
        if drop is not None and (fail is None or drop <= fail):
            return  # the connection closes without the end of the stream
        watch.close()
        if fail is not None:
            await send({"type": "http.response.body", "body": error, "more_body": True})
        await send({"type": "http.response.body", "body": end, "more_body": False})
        if engine is not None and fail is None:
            engine.complete()
    finally:
        watch.close()
