"""Where the load goes: straight to the upstream, or through one of the proxies; same payload for all."""

from __future__ import annotations

from dataclasses import dataclass, field

import orjson

from gatewaybench.configs import MODEL

__all__ = ["Target"]

_MESSAGES = [{"role": "user", "content": "hello"}]
_BODY = orjson.dumps({"model": MODEL, "messages": _MESSAGES})
# Streaming clients ask for usage, as a metering proxy does upstream: the upstream then sends the same events
# whichever way the request came (the mock paces its usage chunk like a content chunk).
_STREAM_BODY = orjson.dumps(
    {"model": MODEL, "messages": _MESSAGES, "stream": True, "stream_options": {"include_usage": True}}
)


@dataclass(frozen=True)
class Target:
    """``base_url`` ends in ``/v1``; ``pid`` is the proxy process whose CPU and memory are read (None: direct)."""

    name: str
    base_url: str
    authorization: str
    pid: int | None = None
    headers: dict[str, str] = field(init=False)

    def __post_init__(self) -> None:
        headers = {"Authorization": self.authorization, "Content-Type": "application/json"}
        object.__setattr__(self, "headers", headers)

    @property
    def chat_url(self) -> str:
        return f"{self.base_url}/chat/completions"

    @staticmethod
    def body(*, stream: bool = False) -> bytes:
        return _STREAM_BODY if stream else _BODY
