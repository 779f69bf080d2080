"""Server-sent events on the wire, as bytes.

The gateway relays upstream streams without re-encoding them: ``EventSplitter`` cuts the byte stream at event
boundaries so that whole events can be forwarded, holding at most ``max_event_bytes`` of an unfinished event, and
``parse_strict`` checks each event's lines before it goes anywhere (a stream that is not SSE, such as a JSON body
or an HTML page, stops there). Encoding helpers build already-encoded SSE bytes.
"""

from __future__ import annotations

__all__ = [
    "DEFAULT_MAX_EVENT_BYTES",
    "DONE",
    "KEEPALIVE",
    "EventSplitter",
    "SSEError",
    "encode_data",
    "encode_event",
    "event_data",
    "event_name",
    "parse_event",
    "parse_strict",
    "split_events",
]

DONE = b"data: [DONE]\n\n"
KEEPALIVE = b": keepalive\n\n"
DEFAULT_MAX_EVENT_BYTES = 4 * 1024 * 1024
_SEP = b"\n\n"
_FIELDS = frozenset({b"data", b"event", b"id", b"retry"})


class SSEError(ValueError):
    """An upstream stream that is not a well-formed event stream of its API. ``limit`` names the gateway limit
    it ran into, if that is what happened."""

    def __init__(self, message: str, *, limit: str | None = None) -> None:
        super().__init__(message)
        self.limit = limit


class EventSplitter:
    """Cut a byte stream into runs of whole SSE events; the unfinished tail waits for more bytes, up to
    ``max_event_bytes`` (then ``SSEError``). Line ends are normalised to ``\\n``, a CRLF split across two reads
    included. An event spread over many reads is joined once, when it completes."""

    __slots__ = ("_cr", "_max", "_parts", "_size")

    def __init__(self, max_event_bytes: int = DEFAULT_MAX_EVENT_BYTES) -> None:
        self._parts: list[bytes] = []
        self._size = 0
        self._max = max_event_bytes
        self._cr = False

    def feed(self, chunk: bytes) -> bytes:
        """Return the complete events now available (possibly empty), each ending in a blank line."""
        if self._cr and chunk[:1] == b"\n":
            chunk = chunk[1:]
        if b"\r" in chunk:
            self._cr = chunk.endswith(b"\r")
            chunk = chunk.replace(b"\r\n", b"\n").replace(b"\r", b"\n")
        else:
            self._cr = False
        parts = self._parts
        cut = chunk.rfind(_SEP)
        if cut < 0 and not (parts and chunk[:1] == b"\n" and parts[-1].endswith(b"\n")):
            if chunk:
                self._size += len(chunk)
                if self._size > self._max:
                    raise SSEError(f"an event is larger than {self._max} bytes", limit="sse_event_bytes")
                parts.append(chunk)
            return b""
        data = chunk
        if parts:
            parts.append(chunk)
            data = b"".join(parts)
            parts.clear()
            cut = data.rfind(_SEP)
        cut += 2
        tail = data[cut:]
        self._size = len(tail)
        if tail:
            if self._size > self._max:
                raise SSEError(f"an event is larger than {self._max} bytes", limit="sse_event_bytes")
            parts.append(tail)
        return data[:cut]

    def flush(self) -> bytes:
        """The unterminated last event, if the stream ended without a blank line."""
        tail = b"".join(self._parts)
        self._parts.clear()
        self._size = 0
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


def parse_strict(event: bytes, max_event_bytes: int = DEFAULT_MAX_EVENT_BYTES) -> tuple[str | None, bytes | None]:
    """``parse_event`` for one event from an upstream, which must be SSE: every line a comment or a field
    (``data``, ``event``, ``id``, ``retry``), and no larger than ``max_event_bytes``; ``SSEError`` otherwise."""
    if len(event) > max_event_bytes:
        raise SSEError(f"an event is larger than {max_event_bytes} bytes", limit="sse_event_bytes")
    if event.startswith(b"data: ") and event.find(b"\n") == len(event) - 2:  # the usual "data: JSON\n\n"
        return None, event[6:-2]
    for line in event.split(b"\n"):
        if line and line[:1] != b":" and line.split(b":", 1)[0] not in _FIELDS:
            raise SSEError("the stream is not server-sent events (a line is neither a field nor a comment)")
    return parse_event(event)


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
