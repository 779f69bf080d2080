"""Where the load goes: straight to the upstream, or through one of the proxies; the same payload for all,
but for the model name, which picks the route (Interlock serves a passthrough and a translated one)."""

from __future__ import annotations

from dataclasses import dataclass, field

import orjson

from gatewaybench.configs import MODEL

__all__ = ["Target"]

_MESSAGES = [{"role": "user", "content": "hello"}]


def _bodies(model: str) -> tuple[bytes, bytes]:
    """(non-streaming, streaming) request bodies for ``model``.

    Streaming clients ask for usage, as a metering proxy does upstream: the upstream then sends the same events
    whichever way the request came (the mock paces its usage chunk like a content chunk).
    """
    return (
        orjson.dumps({"model": model, "messages": _MESSAGES}),
        orjson.dumps(
            {"model": model, "messages": _MESSAGES, "stream": True, "stream_options": {"include_usage": True}}
        ),
    )


@dataclass(frozen=True)
class Target:
    """``base_url`` ends in ``/v1``; ``pid`` is the proxy process whose CPU and memory are read (None: direct)."""

    name: str
    base_url: str
    authorization: str
    pid: int | None = None
    model: str = MODEL
    headers: dict[str, str] = field(init=False)
    _bodies: tuple[bytes, bytes] = field(init=False, repr=False)

    def __post_init__(self) -> None:
        headers = {"Authorization": self.authorization, "Content-Type": "application/json"}
        object.__setattr__(self, "headers", headers)
        object.__setattr__(self, "_bodies", _bodies(self.model))

    @property
    def chat_url(self) -> str:
        return f"{self.base_url}/chat/completions"

    def body(self, *, stream: bool = False) -> bytes:
        return self._bodies[1] if stream else self._bodies[0]
