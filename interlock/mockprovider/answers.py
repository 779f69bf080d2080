"""Deterministic answer text: the same prompt gets the same words, streamed or not."""

from __future__ import annotations

import hashlib
from functools import lru_cache

__all__ = ["answer_pieces", "seed_of"]

_VOCABULARY = """
the a an of to and in that it for on with as this by from at be is are was can will model gateway request token
stream answer upstream latency tenant route backend mock provider offline quick brown fox jumps over lazy dog data
plane control cluster cache budget usage metric trace span signal reply sample value result simple clear steady
small large fast slow bright calm green blue river mountain forest ocean cloud light system network packet window
engine server client message chunk
"""
_WORDS = tuple(_VOCABULARY.split())
_COMMA_BELOW = 31  # of 256: about one piece in eight is a comma


def seed_of(text: str) -> int:
    return int.from_bytes(hashlib.blake2b(text.encode(), digest_size=8).digest(), "big")


@lru_cache(maxsize=1024)
def answer_pieces(seed: int, count: int) -> tuple[str, ...]:
    """``count`` pieces, each one token (a word with its leading space, a comma, the final period)."""
    rolls = hashlib.shake_256(seed.to_bytes(8, "big")).digest(count)
    pieces: list[str] = []
    for index, roll in enumerate(rolls):
        if index == count - 1 and count > 1:
            pieces.append(".")
        elif roll < _COMMA_BELOW and 0 < index < count - 2 and pieces[-1] != ",":
            pieces.append(",")
        else:
            word = _WORDS[roll % len(_WORDS)]
            pieces.append(" " + word if index else word.capitalize())
    return tuple(pieces)
