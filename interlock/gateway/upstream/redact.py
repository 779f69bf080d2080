"""Credential redaction of everything an upstream sends, at the one place its bytes enter the gateway.

Real providers echo the key they reject ("Incorrect API key provided: sk-..."), and a misconfigured or hostile
upstream may echo anything. ``BackendClient`` hands every body it reads through a ``Redactor`` of its backend's
credential, so error messages, relayed bodies, in-stream error events, translated errors, log lines, spans and
usage rows (all derived from those bytes) never carry it.

What is redacted: each credential as sent, and the forms it takes when an upstream quotes it in JSON (``\\/``
escapes, non-ASCII escapes) or in a URL (percent-encoding). A credential shorter than ``MIN_SECRET_CHARS`` is not
redacted (it would mask ordinary text). A provider that masks a key itself ("sk-abc1****wxyz") keeps its mask.

Streams: a credential can be split across two reads. ``StreamRedactor.feed`` holds back only a tail that is the
start of a credential (never the usual case: SSE reads end in a newline, which no credential contains), so a
stream is not delayed. The cost on the hot path is one substring search per credential form per chunk and one
set lookup of the last byte (``bench/hostile/redact_cost.py``).
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from urllib.parse import quote

import orjson

__all__ = ["MASK", "MIN_SECRET_CHARS", "Redactor", "StreamRedactor"]

MASK = b"[REDACTED]"
MIN_SECRET_CHARS = 6


def _forms(secret: str) -> set[bytes]:
    raw = secret.encode()
    json_escaped = orjson.dumps(secret)[1:-1]
    ascii_escaped = json.dumps(secret)[1:-1].encode()  # non-ASCII as \\u escapes
    return {
        raw,
        json_escaped,
        json_escaped.replace(b"/", b"\\/"),
        ascii_escaped,
        ascii_escaped.replace(b"/", b"\\/"),
        quote(secret, safe="").encode(),
        quote(secret, safe="/").encode(),
    }


class Redactor:
    """Replaces a backend's credentials in bytes and text from its upstream."""

    __slots__ = ("_last_bytes", "_secrets", "_texts")

    def __init__(self, secrets: Iterable[str]) -> None:
        forms: set[bytes] = set()
        for secret in secrets:
            if len(secret) >= MIN_SECRET_CHARS:
                forms |= _forms(secret)
        # The longest first, so that a form containing another is masked whole.
        self._secrets = tuple(sorted(forms, key=len, reverse=True))
        self._texts = tuple(s.decode("latin-1") for s in self._secrets)
        self._last_bytes = frozenset(b for s in self._secrets for b in s)

    def __bool__(self) -> bool:
        return bool(self._secrets)

    def redact(self, data: bytes) -> bytes:
        for secret in self._secrets:
            if secret in data:
                data = data.replace(secret, MASK)
        return data

    def redact_text(self, text: str) -> str:
        for secret in self._texts:
            if secret in text:
                text = text.replace(secret, MASK.decode())
        return text

    def partial_tail(self, data: bytes) -> int:
        """Length of the longest tail of ``data`` that is a proper prefix of a credential form (0: none)."""
        if not data or data[-1] not in self._last_bytes:
            return 0
        best = 0
        for secret in self._secrets:
            window = len(secret) - 1
            start = max(0, len(data) - window)
            at = data.find(secret[:1], start)
            while at >= 0:
                if secret.startswith(data[at:]):
                    best = max(best, len(data) - at)
                    break  # the earliest match in the window is the longest for this form
                at = data.find(secret[:1], at + 1)
        return best

    def stream(self) -> StreamRedactor:
        return StreamRedactor(self)


class StreamRedactor:
    """Redacts one response body read in pieces; a credential split across pieces is still caught."""

    __slots__ = ("_held", "_redactor")

    def __init__(self, redactor: Redactor) -> None:
        self._redactor = redactor
        self._held = b""

    def feed(self, chunk: bytes) -> bytes:
        """The redacted bytes of ``chunk`` that can go on now (possibly empty, when all of it might start a
        credential)."""
        redactor = self._redactor
        if self._held:
            chunk = self._held + chunk
            self._held = b""
        chunk = redactor.redact(chunk)
        keep = redactor.partial_tail(chunk)
        if keep:
            self._held = chunk[-keep:]
            return chunk[:-keep]
        return chunk

    def flush(self) -> bytes:
        """What was held back, once the body has ended (it was not a credential after all)."""
        held, self._held = self._held, b""
        return held
