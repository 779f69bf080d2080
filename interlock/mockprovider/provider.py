"""The mock provider: a pure ASGI app over the OpenAI and Anthropic APIs, with fault injection and stats for tests.

Requests under ``/v1`` are recorded, then take the next queued ``Fault`` (if any): its delay, then its error
status, or its changes to a normal answer. Under ``/v1/messages`` (Anthropic) errors take Anthropic's envelope,
responses carry a ``request-id`` header, and ``x-api-key`` is accepted as well as a bearer token.

``/_mock/faults``, ``/_mock/stats`` and ``/_mock/reset`` do over HTTP what ``push_faults``, ``stats`` and
``reset`` do in process; they, ``GET /health`` and (with ``engine_metrics``) vLLM's ``GET /metrics`` need no key,
are not counted, and consume no fault.
"""

from __future__ import annotations

import functools
import hmac
import uuid
from collections import deque
from collections.abc import Awaitable, Callable, Iterable
from typing import Any

import orjson
from pydantic import TypeAdapter, ValidationError

from interlock.mockprovider.asgi import Receive, Scope, Send, read_body, send_bytes
from interlock.mockprovider.chat_answer import answer_chat
from interlock.mockprovider.chat_request import message_text, parse_chat_request
from interlock.mockprovider.chat_wire import DONE, completion_body, completion_chunks
from interlock.mockprovider.embeddings import embeddings_body
from interlock.mockprovider.engine_metrics import EngineMetrics, EngineModel, engine_request
from interlock.mockprovider.errors import MockError, anthropic_error_body, error_body, openai_stream_error
from interlock.mockprovider.exchange import NOT_JSON, Exchange, json_body, run_unary, send_stream, wait
from interlock.mockprovider.messages_endpoint import count_message_tokens, create_message
from interlock.mockprovider.off_schema import ignore_schemas
from interlock.mockprovider.settings import Fault, MockSettings
from interlock.mockprovider.stats import MockStats, RecordedRequest
from interlock.mockprovider.tokens import prompt_ids

__all__ = ["MockProvider", "create_app"]

_FAULT_LIST = TypeAdapter(list[Fault])
_PROMETHEUS_TEXT = b"text/plain; version=0.0.4; charset=utf-8"
_NO_FAULT = Fault()

_Handler = Callable[["MockProvider", Exchange], Awaitable[None]]


def _is_anthropic(path: str) -> bool:
    return path == "/v1/messages" or path.startswith("/v1/messages/")


class MockProvider:
    """Holds the settings, the fault queue and the stats; the instance itself is the ASGI app."""

    def __init__(self, settings: MockSettings | None = None) -> None:
        self.settings = settings or MockSettings()
        self.stats = MockStats(keep=self.settings.keep_requests)
        self.faults: deque[Fault] = deque()
        self.engine = (
            EngineMetrics(models=self.settings.models, model=engine_model(self.settings))
            if self.settings.engine_metrics
            else None
        )
        self._models = [
            {"id": m, "object": "model", "created": 0, "owned_by": "interlock-mock"} for m in self.settings.models
        ]
        self._models_body = orjson.dumps({"object": "list", "data": self._models})
        key = self.settings.api_key
        self._bearer = f"Bearer {key}".encode() if key else None
        self._x_api_key = key.encode() if key else None

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
        if path == "/metrics" and method == "GET" and self.engine is not None:  # vLLM's own metrics
            await send_bytes(send, 200, self.engine.exposition(), content_type=_PROMETHEUS_TEXT)
            return
        body = _parse(raw)
        headers = {k.decode("latin-1"): v.decode("latin-1") for k, v in scope["headers"]}
        self.stats.record(RecordedRequest(method, path, headers, None if body is NOT_JSON else body))
        fault = self.faults.popleft() if self.faults else _NO_FAULT
        extra: list[tuple[bytes, bytes]] = []
        if fault.retry_after is not None:
            extra.append((b"retry-after", f"{fault.retry_after:g}".encode()))
        request_id = None
        if anthropic := _is_anthropic(path):
            request_id = "req_01" + uuid.uuid4().hex[:22]
            extra.append((b"request-id", request_id.encode()))
        self.stats.enter()
        try:
            exchange = Exchange(receive, send, path, body, fault, extra, self.stats.record_disconnect)
            if fault.delay_s > 0 and not await wait(exchange, fault.delay_s):
                return
            if fault.status is not None:
                if anthropic:
                    error = anthropic_error_body(
                        fault.status, fault.message, kind=fault.error_type, request_id=request_id
                    )
                else:
                    error = error_body(fault.status, fault.message, code=fault.code, kind=fault.error_type)
                await send_bytes(send, fault.status, error, headers=extra)
                return
            try:
                self._authorize(scope, anthropic)
                handler = self._route(method, path)
                await handler(self, exchange)
            except MockError as exc:
                error = exc.anthropic_body(request_id) if anthropic else exc.body()
                await send_bytes(send, exc.status, error, headers=extra)
        finally:
            self.stats.leave()

    def _authorize(self, scope: Scope, anthropic: bool) -> None:
        if self._bearer is None:
            return
        given = dict(scope["headers"])
        if hmac.compare_digest(given.get(b"authorization", b""), self._bearer):
            return
        if anthropic and self._x_api_key is not None:
            if hmac.compare_digest(given.get(b"x-api-key", b""), self._x_api_key):
                return
            raise MockError(401, "invalid x-api-key")
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

    async def _chat(self, exchange: Exchange) -> None:
        body = json_body(exchange)
        request = parse_chat_request(ignore_schemas(body) if exchange.fault.off_schema else body)
        answer = answer_chat(request, self.settings)
        fault = exchange.fault
        with_usage = not fault.omit_usage
        usage = answer.usage
        reason = "length" if answer.finish_reason == "length" else "stop"
        turns = ((str(m["role"]), message_text(m)) for m in request.messages)
        async with engine_request(
            self.engine,
            request.model,
            usage["prompt_tokens"],
            usage["completion_tokens"],
            reason,
            functools.partial(prompt_ids, turns),
        ) as engine:
            if request.stream:
                chunks = completion_chunks(answer, request.model, include_usage=request.include_usage and with_usage)
                error = openai_stream_error(fault.message, code=fault.code, kind=fault.error_type)
                await send_stream(
                    exchange, chunks, chunk_delay_s=self.settings.chunk_delay_s, end=DONE, error=error, engine=engine
                )
                return
            if fault.first_token_delay_s > 0 and not await wait(exchange, fault.first_token_delay_s):
                return
            if engine is not None and not await run_unary(exchange, engine):
                return
            body = completion_body(answer, request.model, with_usage=with_usage)
            await send_bytes(exchange.send, 200, body, headers=exchange.headers)
            if engine is not None:
                engine.step()
                engine.complete()

    async def _messages(self, exchange: Exchange) -> None:
        await create_message(self.settings, exchange, self.engine)

    async def _count_tokens(self, exchange: Exchange) -> None:
        await count_message_tokens(self.settings, exchange)

    async def _embeddings(self, exchange: Exchange) -> None:
        body = embeddings_body(
            json_body(exchange), self.settings.embedding_dim, with_usage=not exchange.fault.omit_usage
        )
        await send_bytes(exchange.send, 200, body, headers=exchange.headers)

    async def _list_models(self, exchange: Exchange) -> None:
        await send_bytes(exchange.send, 200, self._models_body, headers=exchange.headers)

    async def _model(self, exchange: Exchange) -> None:
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
    "/v1/messages": {"POST": MockProvider._messages},
    "/v1/messages/count_tokens": {"POST": MockProvider._count_tokens},
}


def _parse(raw: bytes) -> Any:
    if not raw:
        return None
    try:
        return orjson.loads(raw)
    except orjson.JSONDecodeError:
        return NOT_JSON


async def _lifespan(receive: Receive, send: Send) -> None:
    while True:
        message = await receive()
        if message["type"] == "lifespan.startup":
            await send({"type": "lifespan.startup.complete"})
        elif message["type"] == "lifespan.shutdown":
            await send({"type": "lifespan.shutdown.complete"})
            return


def engine_model(settings: MockSettings) -> EngineModel:
    """The engine model the settings describe."""
    return EngineModel(
        max_num_seqs=settings.max_num_seqs,
        kv_cache_tokens=settings.kv_cache_tokens,
        block_size=settings.block_size,
        prefix_caching=settings.prefix_caching,
        prefill_s_per_token=settings.prefill_s_per_token,
        decode_s_per_token=settings.decode_s_per_token,
    )


def create_app(settings: MockSettings | None = None) -> MockProvider:
    """The ASGI app of a new provider; it is the provider itself (``app.provider`` for symmetry)."""
    return MockProvider(settings)
