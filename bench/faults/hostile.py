"""A hostile upstream: an ASGI app that speaks OpenAI chat (``/v1/chat/completions``, ``/v1/embeddings``) and
Anthropic Messages (``/v1/messages``) well enough to be routed to, and misbehaves on request.

The behaviour is the request's ``model`` (the gateway rewrites it to the route target's model, so a route picks a
behaviour): see ``BEHAVIOURS``. Every behaviour named ``echo-*`` puts the credential the gateway sent (the bearer
token, or Anthropic's ``x-api-key``) into what it answers, as real providers' 401 messages do.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable, MutableMapping
from dataclasses import dataclass, field
from typing import Any

import orjson

__all__ = ["BEHAVIOURS", "HostileUpstream"]

Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]

BEHAVIOURS = {
    "ok": "a well-formed answer",
    "echo-body": "a successful answer whose text (embeddings: model name) is the credential",
    "echo-400": "400 whose message quotes the credential (relayed to the client as its own mistake)",
    "echo-401": "401 'Incorrect API key provided: <credential>'",
    "echo-500": "500 whose message quotes the credential",
    "echo-stream-error": "a stream: one text event, then an in-stream error quoting the credential",
    "echo-split": "a stream whose text carries the credential split across two writes",
    "redirect": "307 to a URL carrying the credential, with a body quoting it",
    "garbage": "200 text/event-stream of lines that are not SSE (an HTML page)",
    "not-json": "a stream whose events' data is not JSON",
    "json-body": "200 application/json (a whole answer) to a stream request",
    "huge-event": "a stream with one event of huge_event_bytes",
    "empty-stream": "200 text/event-stream that ends without an event",
    "hang": "accepts the request and never answers",
    "hang-stream": "sends the headers and one event, then nothing",
}


@dataclass
class HostileUpstream:
    huge_event_bytes: int = 8 * 1024 * 1024
    text: str = "Hello from upstream."
    """What a well-formed answer says."""
    requests: int = 0
    inflight: int = 0
    """Requests whose handler has not returned: a hung one returns when the gateway closes the connection."""
    seen_keys: set[str] = field(default_factory=set)

    async def __call__(self, scope: MutableMapping[str, Any], receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            return
        self.requests += 1
        self.inflight += 1
        try:
            await self._handle(scope, receive, send)
        finally:
            self.inflight -= 1

    async def _handle(self, scope: MutableMapping[str, Any], receive: Receive, send: Send) -> None:
        headers = dict(scope["headers"])
        key = (headers.get(b"x-api-key") or headers.get(b"authorization", b"").removeprefix(b"Bearer ")).decode()
        self.seen_keys.add(key)
        body = b""
        while True:
            message = await receive()
            if message["type"] == "http.disconnect":
                return
            body += message.get("body", b"")
            if not message.get("more_body"):
                break
        request = orjson.loads(body) if body else {}
        path = scope["path"]
        api = "anthropic" if path.endswith("/messages") else "embeddings" if path.endswith("/embeddings") else "openai"
        behaviour = str(request.get("model", "ok"))
        stream = request.get("stream") is True
        await _Exchange(self, send, receive, api, key, stream).run(behaviour)


class _Exchange:
    def __init__(self, upstream: HostileUpstream, send: Send, receive: Receive, api: str, key: str, stream: bool):
        self.upstream = upstream
        self.send = send
        self.receive = receive
        self.api = api
        self.key = key
        self.stream = stream

    async def run(self, behaviour: str) -> None:
        key = self.key
        if behaviour == "echo-401":
            await self.error(401, f"Incorrect API key provided: {key}. You can find your API key in your account.")
        elif behaviour == "echo-400":
            await self.error(400, f"Invalid request for key {key}: max_tokens is too large")
        elif behaviour == "echo-500":
            await self.error(500, f"Internal error while serving {key}")
        elif behaviour == "redirect":
            body = orjson.dumps({"error": {"message": f"moved; retry with {key}"}})
            await self.respond(307, body, extra=[(b"location", f"https://elsewhere.example/v1?key={key}".encode())])
        elif behaviour == "hang":
            await self.wait_disconnect()
        elif not self.stream:
            await self.unary(behaviour)
        else:
            await self.streamed(behaviour)

    # --- unary ------------------------------------------------------------------------------------------

    async def unary(self, behaviour: str) -> None:
        if behaviour in ("garbage", "not-json", "empty-stream", "huge-event", "hang-stream"):
            await self.respond(200, b"<html><body>not an API</body></html>", content_type=b"text/html")
            return
        text = f"Your key is {self.key}." if behaviour == "echo-body" else self.upstream.text
        await self.respond(200, orjson.dumps(self.answer(text, echo=behaviour == "echo-body")))

    def answer(self, text: str, *, echo: bool = False) -> dict[str, Any]:
        if self.api == "embeddings":
            model = self.key if echo else "emb"
            return {
                "object": "list",
                "data": [{"object": "embedding", "index": 0, "embedding": [0.1, 0.2, 0.3]}],
                "model": model,
                "usage": {"prompt_tokens": 3, "total_tokens": 3},
            }
        if self.api == "anthropic":
            return {
                "id": "msg_hostile",
                "type": "message",
                "role": "assistant",
                "model": "hostile",
                "content": [{"type": "text", "text": text}],
                "stop_reason": "end_turn",
                "stop_sequence": None,
                "usage": {"input_tokens": 5, "output_tokens": 7},
            }
        return {
            "id": "chatcmpl-hostile",
            "object": "chat.completion",
            "created": int(time.time()),
            "model": "hostile",
            "choices": [{"index": 0, "message": {"role": "assistant", "content": text}, "finish_reason": "stop"}],
            "usage": {"prompt_tokens": 5, "completion_tokens": 7, "total_tokens": 12},
        }

    # --- streams ------------------------------------------------------------------------------------------

    async def streamed(self, behaviour: str) -> None:
        if behaviour == "json-body":
            await self.respond(200, orjson.dumps(self.answer("A whole answer, not a stream.")))
            return
        await self.start(200, b"text/event-stream")
        if behaviour == "garbage":
            await self.body(b"<html>\n<body>Service temporarily unavailable</body>\n</html>\n\n", more=False)
        elif behaviour == "not-json":
            await self.body(b"data: this is not json\n\n", more=True)
            await self.body(b"data: {broken\n\n", more=False)
        elif behaviour == "empty-stream":
            await self.body(b"", more=False)
        elif behaviour == "huge-event":
            piece = b"x" * 65536
            await self.body(b'data: {"padding": "', more=True)
            for _ in range(self.upstream.huge_event_bytes // len(piece) + 1):
                await self.body(piece, more=True)
            await self.body(b'"}\n\n', more=False)
        elif behaviour == "hang-stream":
            await self.body(self.first_events(), more=True)
            await self.wait_disconnect()
        elif behaviour == "echo-stream-error":
            await self.body(self.first_events() + self.text_event("partial "), more=True)
            await self.body(self.stream_error(f"Upstream failure for key {self.key}"), more=False)
        elif behaviour == "echo-split":
            event = self.text_event(f"Your key is {self.key}.")
            cut = event.index(self.key.encode()) + len(self.key) // 2
            await self.body(self.first_events() + event[:cut], more=True)
            await asyncio.sleep(0.01)  # pacing, so the two halves leave as two writes
            await self.body(event[cut:] + self.last_events(), more=False)
        else:
            text = f"Your key is {self.key}." if behaviour == "echo-body" else self.upstream.text
            await self.body(self.first_events() + self.text_event(text) + self.last_events(), more=False)

    def first_events(self) -> bytes:
        if self.api == "anthropic":
            start = {
                "type": "message_start",
                "message": {
                    "id": "msg_hostile",
                    "type": "message",
                    "role": "assistant",
                    "model": "hostile",
                    "content": [],
                    "stop_reason": None,
                    "stop_sequence": None,
                    "usage": {"input_tokens": 5, "output_tokens": 1},
                },
            }
            block = {"type": "content_block_start", "index": 0, "content_block": {"type": "text", "text": ""}}
            return _event("message_start", start) + _event("content_block_start", block)
        return _data(self.chunk({"role": "assistant", "content": ""}))

    def text_event(self, text: str) -> bytes:
        if self.api == "anthropic":
            delta = {"type": "content_block_delta", "index": 0, "delta": {"type": "text_delta", "text": text}}
            return _event("content_block_delta", delta)
        return _data(self.chunk({"content": text}))

    def last_events(self) -> bytes:
        if self.api == "anthropic":
            delta = {"type": "message_delta", "delta": {"stop_reason": "end_turn", "stop_sequence": None}}
            delta["usage"] = {"output_tokens": 7}
            return (
                _event("content_block_stop", {"type": "content_block_stop", "index": 0})
                + _event("message_delta", delta)
                + _event("message_stop", {"type": "message_stop"})
            )
        final = self.chunk({}, finish_reason="stop")
        usage = {
            **self.chunk({}),
            "choices": [],
            "usage": {"prompt_tokens": 5, "completion_tokens": 7, "total_tokens": 12},
        }
        return _data(final) + _data(usage) + b"data: [DONE]\n\n"

    def stream_error(self, message: str) -> bytes:
        if self.api == "anthropic":
            return _event("error", {"type": "error", "error": {"type": "api_error", "message": message}})
        error = {"error": {"message": message, "type": "server_error", "param": None, "code": None}}
        return _data(error) + b"data: [DONE]\n\n"

    @staticmethod
    def chunk(delta: dict[str, Any], finish_reason: str | None = None) -> dict[str, Any]:
        return {
            "id": "chatcmpl-hostile",
            "object": "chat.completion.chunk",
            "created": int(time.time()),
            "model": "hostile",
            "choices": [{"index": 0, "delta": delta, "finish_reason": finish_reason}],
        }

    # --- wire -----------------------------------------------------------------------------------------------

    async def error(self, status: int, message: str) -> None:
        if self.api == "anthropic":
            kind = {400: "invalid_request_error", 401: "authentication_error"}.get(status, "api_error")
            body = {"type": "error", "error": {"type": kind, "message": message}}
        else:
            code = "invalid_api_key" if status == 401 else None
            body = {"error": {"message": message, "type": "invalid_request_error", "param": None, "code": code}}
        await self.respond(status, orjson.dumps(body))

    async def respond(
        self,
        status: int,
        body: bytes,
        *,
        content_type: bytes = b"application/json",
        extra: list[tuple[bytes, bytes]] | None = None,
    ) -> None:
        await self.start(status, content_type, [(b"content-length", str(len(body)).encode()), *(extra or [])])
        await self.body(body, more=False)

    async def start(self, status: int, content_type: bytes, headers: list[tuple[bytes, bytes]] | None = None) -> None:
        await self.send(
            {
                "type": "http.response.start",
                "status": status,
                "headers": [(b"content-type", content_type), *(headers or [])],
            }
        )

    async def body(self, data: bytes, *, more: bool) -> None:
        await self.send({"type": "http.response.body", "body": data, "more_body": more})

    async def wait_disconnect(self) -> None:
        while (await self.receive())["type"] != "http.disconnect":
            pass


def _data(payload: Any) -> bytes:
    return b"data: " + orjson.dumps(payload) + b"\n\n"


def _event(name: str, payload: Any) -> bytes:
    return b"event: " + name.encode() + b"\ndata: " + orjson.dumps(payload) + b"\n\n"
