"""``python -m bench.hostile.redact_cost [--chunks 200000] [--before REF]``

What the checks on upstream bytes cost on the hot path, per chunk of a chat stream (one SSE event of ~300 bytes,
as OpenAI and vLLM send them) and per 16 KiB read (many events at once), in nanoseconds, best of 5 runs:

- ``redact``: ``StreamRedactor.feed`` with a 51-character key that is not in the stream (the usual case);
- ``relay``: ``OpenAIStreamRelay.feed`` as it is now (SSE framing, every event checked to be SSE and JSON, usage,
  the ``"usage":null`` that the gateway's ``include_usage`` added removed);
- ``framing only``: ``EventSplitter.feed`` alone;
- with ``--before REF`` (a git commit, e.g. ``0b0fe3e``, before events were checked): that commit's
  ``OpenAIStreamRelay.feed``, loaded from git, for the same chunks.
"""

from __future__ import annotations

import argparse
import importlib.util
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import orjson

from interlock.gateway.upstream.redact import Redactor
from interlock.gateway.upstream.relay import OpenAIStreamRelay
from interlock.gateway.upstream.sse import EventSplitter

__all__ = ["main"]

KEY = "sk-proj-" + "Abc123xyz" * 4 + "QrStu6789"


def _event(n: int) -> bytes:
    chunk = {
        "id": "chatcmpl-9x8y7z",
        "object": "chat.completion.chunk",
        "created": 1767225600,
        "model": "gpt-4o-mini-2024-07-18",
        "system_fingerprint": "fp_0123456789",
        "choices": [{"index": 0, "delta": {"content": f" token{n}"}, "logprobs": None, "finish_reason": None}],
        "usage": None,
    }
    return b"data: " + orjson.dumps(chunk) + b"\n\n"


def _ns_per(feed: Callable[[bytes], bytes], chunks: list[bytes]) -> float:
    best = float("inf")
    for _ in range(5):
        started = time.perf_counter_ns()
        for chunk in chunks:
            feed(chunk)
        best = min(best, (time.perf_counter_ns() - started) / len(chunks))
    return best


def _relay_at(ref: str) -> Any:
    """``OpenAIStreamRelay`` as it was at git ``ref`` (its ``sse.py`` beside it)."""
    work = Path(tempfile.mkdtemp(prefix="interlock-relay-"))
    for name in ("relay", "sse"):
        source = subprocess.run(
            ["git", "show", f"{ref}:interlock/gateway/upstream/{name}.py"], check=True, capture_output=True, text=True
        ).stdout
        source = source.replace("from interlock.gateway.upstream.sse import", "from before_sse import")
        (work / f"before_{name}.py").write_text(source)
    sys.path.insert(0, str(work))
    spec = importlib.util.spec_from_file_location("before_relay", work / "before_relay.py")
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module.OpenAIStreamRelay


def main() -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.hostile.redact_cost", description=__doc__)
    parser.add_argument("--chunks", type=int, default=200_000)
    parser.add_argument("--before", metavar="REF", help="also time the relay of this git commit")
    args = parser.parse_args()
    events = [_event(n) for n in range(args.chunks)]
    reads: list[bytes] = []
    block = b""
    for event in events[: args.chunks // 10]:
        block += event
        if len(block) >= 16384:
            reads.append(block)
            block = b""
    size = f"event (~{len(events[0])} B)"
    print(f"{'per chunk':<28} {size:>16} {'16 KiB read':>14}")
    rows = {
        "redact": lambda: Redactor([KEY]).stream().feed,
        "relay (checks every event)": lambda: OpenAIStreamRelay(client_wants_usage=False).feed,
        "framing only": lambda: EventSplitter().feed,
    }
    if args.before:
        before = _relay_at(args.before)
        rows[f"relay at {args.before}"] = lambda: before(client_wants_usage=False).feed
    for name, make in rows.items():
        per_event = _ns_per(make(), events)
        per_read = _ns_per(make(), reads)
        print(f"{name:<28} {per_event:>13.0f} ns {per_read:>11.0f} ns")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
