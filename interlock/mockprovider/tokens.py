"""A stand-in tokenizer: a token is a word or a single punctuation mark.

Prompt and completion counts use the same rule, so usage is consistent however a request is streamed: every
streamed content piece is exactly one token, and the pieces of a text concatenate back to the text.
"""

from __future__ import annotations

import re

__all__ = ["count_tokens", "split_pieces"]

_TOKEN = re.compile(r"\w+|[^\w\s]")
_PIECE = re.compile(r"\s*(?:\w+|[^\w\s])")


def count_tokens(text: str) -> int:
    return len(_TOKEN.findall(text))


def split_pieces(text: str) -> list[str]:
    """One piece per token, each with the whitespace before it; trailing whitespace joins the last piece."""
    pieces: list[str] = _PIECE.findall(text)
    consumed = sum(map(len, pieces))
    if consumed < len(text):
        tail = text[consumed:]
        if pieces:
            pieces[-1] += tail
        else:
            pieces.append(tail)
    return pieces
