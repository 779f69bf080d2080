"""Server-sent events on the wire, as bytes.

The gateway relays upstream streams without decoding every event: ``EventSplitter`` only cuts the byte stream
at event boundaries so that whole events can be forwarded, and ``event_data`` reads the ``data:`` payload of the
few events that need a look (the usage chunk). Encoding helpers build already-encoded SSE bytes.
"""

from __future__ import annotations

__all__ = [
    "DONE",
    "KEEPALIVE",
    "EventSplitter",
    "encode_data",
    "encode_event",
    "event_data",
    "event_name",
    "parse_event",
    "split_events",
]

DONE = b"data: [DONE]\n\n"
KEEPALIVE = b": keepalive\n\n"
_SEP = b"\n\n"


class EventSplitter:
    """Cut a byte stream into runs of whole SSE events; the unfinished tail waits for more bytes."""

    __slots__ = ("_tail",)

    def __init__(self) -> None:
        self._tail = b""

    def feed(self, chunk: bytes) -> bytes:
        """Return the complete events now available (possibly empty), each ending in a blank line."""
        if b"\r" in chunk:
            chunk = chunk.replace(b"\r\n", b"\n").replace(b"\r", b"\n")
        data = self._tail + chunk if self._tail else chunk
        cut = data.rfind(_SEP)
        if cut < 0:
            self._tail = data
            return b""
        cut += 2
        self._tail = data[cut:]
        return data[:cut]

    def flush(self) -> bytes:
        """The unterminated last event, if the stream ended without a blank line."""
        tail, self._tail = self._tail, b""
        return tail + _SEP if tail.strip() else b""


def split_events(block: bytes) -> list[bytes]:
    """Split a run of whole events into single events, each keeping its trailing blank line."""
    return [part + _SEP for part in block.split(_SEP) if part]


def event_data(event: bytes) -> bytes | None:
    """The joined ``data:`` lines of one event, or None for comments and events without data."""
    lines = [line for line in event.split(b"\n") if line.startswith(b"data:")]
    if not lines:
        return None
    return b"\n".join(line[6:] if line[5:6] == b" " else line[5:] for line in lines)


def parse_event(event: bytes) -> tuple[str | None, bytes | None]:
    """``(event_name(event), event_data(event))`` in one pass over the lines: what a translating relay needs of
    every event."""
    if event.startswith(b"event: "):  # the usual shape, "event: NAME\ndata: JSON\n\n", without splitting lines
        end = event.find(b"\n")
        if event.startswith(b"data: ", end + 1) and event.find(b"\n", end + 1) == len(event) - 2:
            return event[7:end].decode("utf-8", "replace").strip(), event[end + 7 : -2]
    name: str | None = None
    data: bytes | None = None
    for line in event.split(b"\n"):
        if line.startswith(b"data:"):
            payload = line[6:] if line[5:6] == b" " else line[5:]
            data = payload if data is None else data + b"\n" + payload
        elif line.startswith(b"event:"):
            name = line[6:].strip().decode("utf-8", "replace")
    return name, data


def encode_data(payload: bytes) -> bytes:
    return b"data: " + payload + _SEP


def encode_event(name: str, payload: bytes) -> bytes:
    return b"event: " + name.encode() + b"\ndata: " + payload + _SEP


def event_name(event: bytes) -> str | None:
    """The ``event:`` field of one event, if it has one."""
    for line in event.split(b"\n"):
        if line.startswith(b"event:"):
            return line[6:].strip().decode("utf-8", "replace")
    return None
