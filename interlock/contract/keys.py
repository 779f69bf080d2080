"""Client API keys: ``sk-il-`` + ``secrets.token_urlsafe(32)`` (256 random bits).

Only the SHA-256 hex digest and the lookup prefix (the 8 characters after ``sk-il-``) are stored; the plaintext is
returned once, at creation. A fast hash is enough because the keys are random, not passwords.
"""

from __future__ import annotations

import hashlib
import secrets

KEY_PREFIX = "sk-il-"
"""Every client key starts with this; the 8 characters after it are the key's lookup prefix."""

__all__ = ["KEY_PREFIX", "PREFIX_CHARS", "generate_key", "hash_key", "is_well_formed_key", "lookup_prefix"]

PREFIX_CHARS = 8


def generate_key() -> str:
    return KEY_PREFIX + secrets.token_urlsafe(32)


def hash_key(key: str) -> str:
    return hashlib.sha256(key.encode("utf-8")).hexdigest()


def lookup_prefix(key: str) -> str:
    return key[len(KEY_PREFIX) : len(KEY_PREFIX) + PREFIX_CHARS]


def is_well_formed_key(key: str) -> bool:
    """What the gateway can look up: ``sk-il-``, more than 8 characters after it, printable ASCII without spaces."""
    return (
        key.startswith(KEY_PREFIX)
        and len(key) > len(KEY_PREFIX) + PREFIX_CHARS
        and len(key) <= 256
        and key.isascii()
        and key.isprintable()
        and " " not in key
    )
