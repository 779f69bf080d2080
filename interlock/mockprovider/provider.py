"""The mock provider: a pure ASGI app over the OpenAI API, with fault injection and stats for tests.

Requests under ``/v1`` are recorded, then take the next queued ``Fault`` (if any): its delay, then its error
status, or its changes to a normal answer. ``/_mock/faults``, ``/_mock/stats`` and ``/_mock/reset`` do over HTTP
what ``push_faults``, ``stats`` and ``reset`` do in process; they and ``GET /health`` need no key, are not
counted, and consume no fault.
"""

from __future__ import annotations

import hmac
from collections import deque
from collections.abc import Awaitable, Callable, Iterable, Iterator
from dataclasses import dataclass
from typing import Any

import orjson
from pydantic import TypeAdapter, ValidationError

from interlock.mockprovider.asgi import SSE, Receive, Scope, Send, read_body, send_bytes
from interlock.mockprovider.chat_answer import answer_chat
from interlock.mockprovider.chat_request import parse_chat_request
from interlock.mockprovider.chat_wire import DONE, completion_body, completion_chunks
from interlock.mockprovider.disconnect import DisconnectWatch
from interlock.mockprovider.embeddings import embeddings_body
from interlock.mockprovider.errors import MockError, error_body
from interlock.mockprovider.settings import Fault, MockSettings
from interlock.mockprovider.stats import MockStats, RecordedRequest

__all__ = ["MockProvider", "create_app"]

_FAULT_LIST = TypeAdapter(list[Fault])
_NOT_JSON = object()
_NO_FAULT = Fault()


@dataclass(frozen=True, slots=True)
class _Exchange:
    receive: Receive
    send: Send
    path: str
    body: Any  # parsed JSON, or _NOT_JSON
    fault: Fault
    headers: list[tuple[bytes, bytes]]  # added to the response


_Handler = Callable[["MockProvider", _Exchange], Awaitable[None]]


def _json_body(exchange: _Exchange) -> Any:
    if exchange.body is _NOT_JSON:
        raise MockError(400, "We could not parse the JSON body of your request.", code="invalid_json")
    return exchange.body


class MockProvider:
    """Holds the settings, the fault queue and the stats; the instance itself is the ASGI app."""

    def __init__(self, settings: MockSettings | None = None) -> None:
        self.settings = settings or MockSettings()
        self.stats = MockStats(keep=self.settings.keep_requests)
        self.faults: deque[Fault] = deque()
        self._models = [
            {"id": m, "object": "model", "created": 0, "owned_by": "interlock-mock"} for m in self.settings.models
        ]
        self._models_body = orjson.dumps({"object": "list", "data": self._models})
        self._bearer = f"Bearer {self.settings.api_key}".encode() if self.settings.api_key else None

    @property
    def app(self) -> MockProvider:
        return self

    @property
    def provider(self) -> MockProvider:
        return self

    def push_faults(self, faults: Iterable[Fault]) -> None:
        """Queue behaviours for the next requests, one each, in order."""
        self.faults.extend(faults)

    def reset(self) -> None:
        """Drop queued faults and forget the stats."""
        self.faults.clear()
        self.stats.reset()

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http":
            await self._http(scope, receive, send)
        elif scope["type"] == "lifespan":
            await _lifespan(receive, send)

    async def _http(self, scope: Scope, receive: Receive, send: Send) -> None:
        raw = await read_body(receive)
        if raw is None:
            return
        method, path = scope["method"], scope["path"]
        if path.startswith("/_mock/"):
            await self._control(method, path, raw, send)
            return
        if path == "/health":  # vLLM's liveness probe; not an API request
            await send_bytes(send, 200, b"", content_type=b"text/plain")
            return
        body = _parse(raw)
        headers = {k.decode("latin-1"): v.decode("latin-1") for k, v in scope["headers"]}
        self.stats.record(RecordedRequest(method, path, headers, None if body is _NOT_JSON else body))
        fault = self.faults.popleft() if self.faults else _NO_FAULT
        extra: list[tuple[bytes, bytes]] = []
        if fault.retry_after is not None:
            extra.append((b"retry-after", f"{fault.retry_after:g}".encode()))
        self.stats.enter()
        try:
            if fault.delay_s > 0 and not await self._wait(receive, fault.delay_s):
                return
            if fault.status is not None:
                body = error_body(fault.status, fault.message, code=fault.code)
                await send_bytes(send, fault.status, body, headers=extra)
                return
            try:
                self._authorize(scope)
                handler = self._route(method, path)
                await handler(self, _Exchange(receive, send, path, body, fault, extra))
            except MockError as exc:
                await send_bytes(send, exc.status, exc.body(), headers=extra)
        finally:
            self.stats.leave()

    def _authorize(self, scope: Scope) -> None:
        if self._bearer is None:
            return
        given = next((v for k, v in scope["headers"] if k == b"authorization"), b"")
        if not hmac.compare_digest(given, self._bearer):
            raise MockError(401, "Incorrect API key provided.", code="invalid_api_key")

    def _route(self, method: str, path: str) -> _Handler:
        handlers = _ROUTES.get(path)
        if handlers is None and path.startswith("/v1/models/"):
            handlers = {"GET": MockProvider._model}
        if handlers is None:
            raise MockError(404, f"Unknown path {path!r}.", code="unknown_url")
        handler = handlers.get(method)
        if handler is None:
            raise MockError(405, f"Method {method} is not allowed on {path!r}.", code="method_not_allowed")
        return handler

    async def _wait(self, receive: Receive, delay: float) -> bool:
        watch = DisconnectWatch(receive, self.stats.record_disconnect)
        try:
            return await watch.sleep(delay)
        finally:
            watch.close()

    async def _chat(self, exchange: _Exchange) -> None:
        request = parse_chat_request(_json_body(exchange))
        answer = answer_chat(request, self.settings)
        fault = exchange.fault
        with_usage = not fault.omit_usage
        if request.stream:
            chunks = completion_chunks(answer, request.model, include_usage=request.include_usage and with_usage)
            await self._stream(exchange, chunks)
            return
        if fault.first_token_delay_s > 0 and not await self._wait(exchange.receive, fault.first_token_delay_s):
            return
        body = completion_body(answer, request.model, with_usage=with_usage)
        await send_bytes(exchange.send, 200, body, headers=exchange.headers)

    async def _stream(self, exchange: _Exchange, chunks: Iterator[bytes]) -> None:
        """Send ``chunks`` paced, then ``[DONE]``; stop at once when the client leaves or the fault drops us."""
        fault, send = exchange.fault, exchange.send
        delay = self.settings.chunk_delay_s if fault.chunk_delay_s is None else fault.chunk_delay_s
        watch = DisconnectWatch(exchange.receive, self.stats.record_disconnect)
        try:
            start = [(b"content-type", SSE), (b"cache-control", b"no-cache"), *exchange.headers]
            await send({"type": "http.response.start", "status": 200, "headers": start})
            for sent, chunk in enumerate(chunks):
                if sent == fault.drop_after_chunks:
                    return
                if not await watch.sleep(fault.first_token_delay_s if sent == 0 else delay):
                    return
                await send({"type": "http.response.body", "body": chunk, "more_body": True})
            if fault.drop_after_chunks is not None:
                return  # the connection closes without [DONE]
            watch.close()
            await send({"type": "http.response.body", "body": DONE, "more_body": False})
        finally:
            watch.close()

    async def _embeddings(self, exchange: _Exchange) -> None:
        body = embeddings_body(
            _json_body(exchange), self.settings.embedding_dim, with_usage=not exchange.fault.omit_usage
        )
        await send_bytes(exchange.send, 200, body, headers=exchange.headers)

    async def _list_models(self, exchange: _Exchange) -> None:
        await send_bytes(exchange.send, 200, self._models_body, headers=exchange.headers)

    async def _model(self, exchange: _Exchange) -> None:
        name = exchange.path.removeprefix("/v1/models/")
        model = next((m for m in self._models if m["id"] == name), None)
        if model is None:
            raise MockError(404, f"The model {name!r} does not exist.", param="model", code="model_not_found")
        await send_bytes(exchange.send, 200, orjson.dumps(model), headers=exchange.headers)

    async def _control(self, method: str, path: str, raw: bytes, send: Send) -> None:
        if (method, path) == ("POST", "/_mock/faults"):
            try:
                faults = _FAULT_LIST.validate_json(raw)
            except ValidationError as exc:
                await send_bytes(send, 400, error_body(400, str(exc), param="faults"))
                return
            self.faults.clear()
            self.faults.extend(faults)
            await send_bytes(send, 200, orjson.dumps({"queued": len(self.faults)}))
        elif (method, path) == ("GET", "/_mock/faults"):
            await send_bytes(send, 200, orjson.dumps([f.model_dump(exclude_defaults=True) for f in self.faults]))
        elif (method, path) == ("GET", "/_mock/stats"):
            await send_bytes(send, 200, orjson.dumps({**self.stats.to_dict(), "pending_faults": len(self.faults)}))
        elif (method, path) == ("POST", "/_mock/reset"):
            self.reset()
            await send_bytes(send, 200, b'{"ok":true}')
        else:
            await send_bytes(send, 404, error_body(404, f"Unknown control path {method} {path!r}."))


_ROUTES: dict[str, dict[str, _Handler]] = {
    "/v1/chat/completions": {"POST": MockProvider._chat},
    "/v1/embeddings": {"POST": MockProvider._embeddings},
    "/v1/models": {"GET": MockProvider._list_models},
}


def _parse(raw: bytes) -> Any:
    if not raw:
        return None
    try:
        return orjson.loads(raw)
    except orjson.JSONDecodeError:
        return _NOT_JSON


async def _lifespan(receive: Receive, send: Send) -> None:
    while True:
        message = await receive()
        if message["type"] == "lifespan.startup":
            await send({"type": "lifespan.startup.complete"})
        elif message["type"] == "lifespan.shutdown":
            await send({"type": "lifespan.shutdown.complete"})
            return


def create_app(settings: MockSettings | None = None) -> MockProvider:
    """The ASGI app of a new provider; it is the provider itself (``app.provider`` for symmetry)."""
    return MockProvider(settings)
