"""Deterministic answer text, shared by both APIs: the same prompt gets the same words, streamed or not.

The words derive from the text of the last user message, so the OpenAI and the Anthropic request for the same
conversation get the same answer.
"""

from __future__ import annotations

import base64
import hashlib
from functools import lru_cache

from interlock.mockprovider.settings import MockSettings
from interlock.mockprovider.tokens import split_pieces

__all__ = ["answer_pieces", "seed_of", "signature_of", "text_answer", "thinking_answer", "tool_result_answer"]

_VOCABULARY = """
the a an of to and in that it for on with as this by from at be is are was can will model gateway request token
stream answer output speed tenant route backend mock provider offline quick brown fox jump over lazy dog data
plane control cluster cache budget usage metric trace span signal reply sample value result simple clear still
small large fast slow bright quiet green blue river mountain forest ocean cloud light system network packet window
engine server client message chunk
"""
_WORDS = tuple(_VOCABULARY.split())
"""Each is one cl100k token, with a leading space and capitalised (a test checks), so a piece is one token."""
_COMMA_BELOW = 31  # of 256: about one piece in eight is a comma
_QUOTE_CHARS = 40


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


def text_answer(user_text: str, settings: MockSettings) -> tuple[str, ...]:
    """The plain answer to ``user_text``: ``stream_chunks`` pieces, or between the settings' bounds."""
    seed = seed_of(user_text)
    span = settings.max_answer_tokens - settings.min_answer_tokens + 1
    return answer_pieces(seed, settings.stream_chunks or settings.min_answer_tokens + seed % span)


def tool_result_answer(result_text: str, user_text: str, settings: MockSettings) -> tuple[str, ...]:
    """The answer after a tool result: it quotes the result's first 40 characters."""
    rest = "".join(answer_pieces(seed_of(user_text), settings.min_answer_tokens))
    return tuple(split_pieces(f'The tool returned "{result_text[:_QUOTE_CHARS]}". {rest}'))


def thinking_answer(user_text: str, limit: int, settings: MockSettings) -> tuple[str, ...]:
    """Reasoning shown before the answer: ``min_answer_tokens`` pieces at most, and ``limit`` at most."""
    return answer_pieces(seed_of("thinking\n" + user_text), max(1, min(limit, settings.min_answer_tokens)))


def signature_of(thinking: str) -> str:
    """An opaque signature of a thinking block, as Claude attaches one (here a hash of its text)."""
    return base64.b64encode(hashlib.blake2b(thinking.encode(), digest_size=48).digest()).decode()
