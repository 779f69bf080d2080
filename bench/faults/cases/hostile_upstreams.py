"""Hostile upstreams: an upstream that echoes the gateway's credential everywhere, breaks its streams, sends one
huge event, hangs, or redirects (``bench/faults/hostile.py``), behind the real gateway and control plane.

Counts: **lost**, requests the client saw answered (any status) without a usage row; **counted twice**, usage rows
beyond one per request; **leaked**, a credential in a response, log line, span or usage row, an upstream connection
or backend slot never given back, a redirect relayed, or a broken stream that reached the client as anything but
one in-stream error event and a proper end (the upstream's breakage leaking through).
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from typing import Any

import httpx
import orjson

from bench.faults import Case, Outcome
from bench.faults.hostile import HostileUpstream
from bench.faults.inprocess import Stack, backend, gateway_stack, route
from interlock.gateway.upstream.redact import MASK
from interlock.gateway.upstream.sse import parse_event, split_events

__all__ = ["CASES"]

HELLO = [{"role": "user", "content": "Hello"}]
ECHOES = ("echo-body", "echo-400", "echo-401", "echo-500", "echo-stream-error", "echo-split")
BROKEN = ("garbage", "not-json", "json-body", "huge-event")
REQUESTS: dict[str, tuple[str, dict[str, Any]]] = {
    "chat": ("/v1/chat/completions", {"messages": HELLO}),
    "messages": ("/v1/messages", {"messages": HELLO, "max_tokens": 20}),
    "responses": ("/v1/responses", {"input": "Hello"}),
}


def _hostile_stack(behaviours: tuple[str, ...], upstream: HostileUpstream, **settings: Any) -> Any:
    backends = [
        backend("oa", "http://placeholder/v1", models=(*behaviours, "ok")),
        backend("an", "http://placeholder/v1", provider="anthropic", models=(*behaviours, "ok")),
    ]
    timeouts = settings.pop("timeouts", None)
    extra = {"timeouts": timeouts} if timeouts else {}
    routes = [
        route(f"{b}-{p}", p, b, retry={"attempts": 1}, **extra) for b in (*behaviours, "ok") for p in ("oa", "an")
    ]
    return gateway_stack(backends, routes, {"oa": upstream, "an": upstream}, **settings)


async def _send(stack: Stack, path: str, body: dict[str, Any]) -> httpx.Response:
    async with stack.client.stream("POST", path, json=body) as response:
        await response.aread()
    head = f"HTTP {response.status_code} {dict(response.headers)}".encode()
    stack.seen.append(head + b"\n" + response.content)
    return response


async def _settle(stack: Stack, upstream: HostileUpstream, sent: int) -> tuple[int, int, int, list[str]]:
    """Wait (bounded) for one usage row per request and for every upstream connection to be given back; return
    (lost, counted twice, leaked resources, where credentials leaked)."""
    deadline = time.monotonic() + 15
    rows: list[dict[str, Any]] = []
    while time.monotonic() < deadline:
        rows = await stack.usage_rows()
        idle = upstream.inflight == 0 and all(b.inflight == 0 for b in _backends(stack))
        if len(rows) >= sent and idle:
            break
        await asyncio.sleep(0.1)
    distinct = len({r["idempotency_id"] for r in rows})
    resources = upstream.inflight + sum(b.inflight for b in _backends(stack))
    leaks = stack.leaks() + await stack.leaks_in_usage()
    return max(0, sent - distinct), len(rows) - distinct, resources, leaks


def _backends(stack: Stack) -> list[Any]:
    runtime = stack.gateway.services.runtime
    return list(runtime.backends.values()) if runtime is not None else []


def _verdict(lost: int, twice: int, leaked: int, detail: str, **facts: float) -> Outcome:
    return Outcome(lost=lost, double_counted=twice, leaked=leaked, detail=detail, facts=facts)


async def key_echo() -> Outcome:
    """Every endpoint, streamed and not, passthrough and translated, against an upstream quoting the key."""
    upstream = HostileUpstream()
    async with _hostile_stack((*ECHOES, "redirect"), upstream) as stack:
        sent = redacted = relayed_redirects = 0
        for path, base in REQUESTS.values():
            for provider in ("oa", "an"):
                for behaviour in (*ECHOES, "redirect"):
                    for stream in (False, True):
                        body = {**base, "model": f"{behaviour}-{provider}", "stream": stream}
                        response = await _send(stack, path, body)
                        sent += 1
                        redacted += MASK in response.content
                        relayed_redirects += 300 <= response.status_code < 400 or "location" in response.headers
        for behaviour in ("echo-body", "echo-400", "echo-401", "echo-500", "redirect"):
            response = await _send(stack, "/v1/embeddings", {"model": f"{behaviour}-oa", "input": "Hello"})
            sent += 1
            redacted += MASK in response.content
        lost, twice, resources, leaks = await _settle(stack, upstream, sent)
        detail = "; ".join(leaks) or f"{redacted} of {sent} answers carried the echoed key, redacted"
        return _verdict(
            lost, twice, len(leaks) + resources + relayed_redirects, detail, requests=sent, redacted=redacted
        )


def _stream_ending(endpoint: str, raw: bytes) -> bool:
    """Whether a client stream ended as one error event and its proper end, without upstream garbage."""
    if b"<html>" in raw or b"not json" in raw or b"padding" in raw:
        return False
    seen = []
    for event in split_events(raw.replace(b"\r\n", b"\n")):
        name, data = parse_event(event)
        if data is not None:
            seen.append((name, None if data == b"[DONE]" else orjson.loads(data)))
    if endpoint == "chat":
        errors = [d for _, d in seen if isinstance(d, dict) and "error" in d]
        return len(errors) == 1 and seen[-1] == (None, None)
    names = [name for name, _ in seen]
    if endpoint == "messages":
        return names.count("error") == 1 and names[-1] == "error" and "message_stop" not in names
    return names.count("error") == 1 and names[-1] == "response.failed" and "response.completed" not in names


def _rss_mb() -> float:
    with open("/proc/self/status") as status:
        for line in status:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    return 0.0


async def broken_streams() -> Outcome:
    """HTML instead of SSE, events that are not JSON, a JSON body to a stream request, and a 16 MiB event (limit
    1 MiB), on every endpoint, passthrough and translated."""
    upstream = HostileUpstream(huge_event_bytes=16 * 1024 * 1024)
    async with _hostile_stack(BROKEN, upstream, max_sse_event_bytes=1024 * 1024) as stack:
        sent = bad = 0
        before = peak = _rss_mb()
        for endpoint, (path, base) in REQUESTS.items():
            for provider in ("oa", "an"):
                for behaviour in BROKEN:
                    body = {**base, "model": f"{behaviour}-{provider}", "stream": True}
                    response = await _send(stack, path, body)
                    sent += 1
                    peak = max(peak, _rss_mb())
                    ok = response.status_code == 200 and _stream_ending(endpoint, response.content)
                    bad += not ok
        lost, twice, resources, leaks = await _settle(stack, upstream, sent)
        detail = f"{sent - bad} of {sent} broken streams ended as one error event" + "".join(f"; {x}" for x in leaks)
        return _verdict(
            lost, twice, bad + resources + len(leaks), detail, streams=sent, rss_growth_mb=round(peak - before, 1)
        )


async def hangs() -> Outcome:
    """Upstreams that never answer, and streams that stop after their first event: the route's deadlines end
    them (504, or an in-stream timeout error), and every upstream connection is closed."""
    upstream = HostileUpstream()
    timeouts = {"request": "2s", "firstToken": "1s"}
    async with _hostile_stack(("hang", "hang-stream"), upstream, timeouts=timeouts) as stack:
        jobs: list[Awaitable[httpx.Response]] = []
        expected: list[Callable[[httpx.Response], bool]] = []
        for provider in ("oa", "an"):
            for stream in (False, True):
                path, base = REQUESTS["chat"]
                jobs.append(_send(stack, path, {**base, "model": f"hang-{provider}", "stream": stream}))
                expected.append(lambda r: r.status_code == 504)
                jobs.append(_send(stack, path, {**base, "model": f"hang-stream-{provider}", "stream": stream}))
                if stream:
                    expected.append(lambda r: r.status_code == 200 and b"timeout" in r.content)
                else:
                    expected.append(lambda r: r.status_code in (502, 504))
        started = time.monotonic()
        responses = await asyncio.gather(*jobs)
        took = time.monotonic() - started
        wrong = sum(not check(r) for check, r in zip(expected, responses, strict=True))
        lost, twice, resources, leaks = await _settle(stack, upstream, len(jobs))
        detail = f"{len(jobs) - wrong} of {len(jobs)} hung requests ended by their deadline in {took:.1f}s"
        detail += "".join(f"; {x}" for x in leaks)
        return _verdict(lost, twice, wrong + resources + len(leaks), detail, requests=len(jobs), seconds=round(took, 1))


async def redirects() -> Outcome:
    """A backend that redirects (to a URL carrying the key): a 502, or the fallback's answer; never relayed."""
    upstream = HostileUpstream()
    backends = [backend("moved", "http://placeholder/v1", models=("redirect",)), backend("good", "http://p/v1")]
    routes = [
        route("moved-only", "moved", "redirect", retry={"attempts": 1}),
        route(
            "with-fallback", "moved", "redirect", retry={"attempts": 1}, fallbacks=[{"backend": "good", "model": "ok"}]
        ),
    ]
    async with gateway_stack(backends, routes, {"moved": upstream, "good": upstream}) as stack:
        wrong = 0
        path, base = REQUESTS["chat"]
        for _ in range(10):
            # a redirect is a failure: after five, the breaker keeps requests away from the backend (503)
            for model, statuses in (("moved-only", (502, 503)), ("with-fallback", (200,))):
                response = await _send(stack, path, {**base, "model": model})
                wrong += response.status_code not in statuses or "location" in response.headers
        lost, twice, resources, leaks = await _settle(stack, upstream, 20)
        detail = f"{20 - wrong} of 20 redirected requests answered 502 (503 once the breaker opened) or by the fallback"
        detail += "".join(f"; {x}" for x in leaks)
        return _verdict(lost, twice, wrong + resources + len(leaks), detail, requests=20)


CASES = [
    Case("hostile upstream: key echo", key_echo),
    Case("hostile upstream: broken streams", broken_streams),
    Case("hostile upstream: hangs", hangs),
    Case("hostile upstream: redirects", redirects),
]
