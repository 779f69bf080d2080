"""An offline BPE tokenizer: OpenAI's ``cl100k_base`` encoding, run by ``tiktoken``, with its data in this package.

Used to estimate usage when an upstream does not report it (``gateway.usage.estimate``) and by the mock provider
to count tokens the way real engines do. Nothing is downloaded at run time: ``tiktoken`` would fetch the encoding
from the internet on first use, so the encoding is built here from ``cl100k_base.tiktoken.gz`` beside this file.

Why ``cl100k_base``: it is the encoding of GPT-4 and GPT-3.5, and the first 100,000 tokens of Llama 3's
vocabulary (which llama.cpp and vLLM serve) are exactly its tokens, so it counts English and code close to what
those engines count; it is also the smaller file (1.7 MB, 0.8 MB compressed).

Provenance (see docs/tokenizer.md): the ranks come from the npm package ``js-tiktoken`` 1.0.21 (MIT licence,
github.com/dqbd/tiktoken), file ``dist/ranks/cl100k_base.js``, converted to tiktoken's file format by
``scripts/tokenizer-data``. The result is byte for byte OpenAI's ``cl100k_base.tiktoken`` (MIT licence, from the
tiktoken project): its SHA-256 is the one ``tiktoken`` itself expects, checked here at every load.
"""

from __future__ import annotations

import base64
import gzip
import hashlib
import threading
from importlib import resources

import tiktoken

__all__ = ["CL100K_SHA256", "count", "encoding", "loaded", "pieces"]

CL100K_SHA256 = "223921b76ee99bde995b7ff738513eef100fb51d18c93597a113bcffe865b2a7"
"""SHA-256 of OpenAI's cl100k_base.tiktoken, as tiktoken's own registry (tiktoken_ext/openai_public.py) has it."""

_PATTERN = (
    r"""'(?i:[sdmt]|ll|ve|re)|[^\r\n\p{L}\p{N}]?+\p{L}++|\p{N}{1,3}+| ?[^\s\p{L}\p{N}]++[\r\n]*+|\s++$|\s*[\r\n]|"""
    r"""\s+(?!\S)|\s"""
)
_SPECIAL = {"<|endoftext|>": 100257, "<|fim_prefix|>": 100258, "<|fim_middle|>": 100259, "<|fim_suffix|>": 100260,
            "<|endofprompt|>": 100276}  # fmt: skip
_lock = threading.Lock()
_encoding: tiktoken.Encoding | None = None


def _load() -> tiktoken.Encoding:
    data = gzip.decompress(resources.files(__name__).joinpath("cl100k_base.tiktoken.gz").read_bytes())
    digest = hashlib.sha256(data).hexdigest()
    if digest != CL100K_SHA256:
        raise RuntimeError(f"the bundled cl100k_base data is damaged (SHA-256 {digest}, expected {CL100K_SHA256})")
    ranks = {base64.b64decode(token): int(rank) for token, rank in (line.split() for line in data.splitlines())}
    return tiktoken.Encoding("cl100k_base", pat_str=_PATTERN, mergeable_ranks=ranks, special_tokens=_SPECIAL)


def encoding() -> tiktoken.Encoding:
    """The encoding, loaded on first use (about 0.2 s; call it from a thread at start to keep that off a loop)."""
    global _encoding
    if _encoding is None:
        with _lock:
            if _encoding is None:
                _encoding = _load()
    return _encoding


def loaded() -> bool:
    """Whether the encoding has been built (``encoding()`` returns at once)."""
    return _encoding is not None


def count(text: str) -> int:
    """Tokens of ``text`` (special-token text counts as ordinary text)."""
    return len(encoding().encode_ordinary(text)) if text else 0


def pieces(text: str) -> list[str]:
    """``text`` cut at its token boundaries (a token that is part of a multi-byte character stays with the next)."""
    enc = encoding()
    out: list[str] = []
    pending = b""
    for token in enc.encode_ordinary(text):
        pending += enc.decode_single_token_bytes(token)
        try:
            out.append(pending.decode("utf-8"))
        except UnicodeDecodeError:
            continue
        pending = b""
    if pending:
        out.append(pending.decode("utf-8", "replace"))
    return out
