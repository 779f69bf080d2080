"""Who is calling: the client key from ``Authorization: Bearer`` or ``x-api-key``, checked against a key table.

Keys are compared by SHA-256 hash, so the table holds no plaintext. This static table is the stand-in until the
control plane serves tenants and keys.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable, Mapping
from dataclasses import dataclass

from interlock.gateway.errors import AuthenticationError

__all__ = ["Principal", "StaticKeyAuthenticator", "extract_key", "hash_key"]


@dataclass(frozen=True, slots=True)
class Principal:
    tenant: str
    key_id: str


def hash_key(key: str) -> str:
    return hashlib.sha256(key.encode()).hexdigest()


def extract_key(authorization: bytes | None, x_api_key: bytes | None) -> str:
    if authorization:
        scheme, _, token = authorization.decode("latin-1").partition(" ")
        if scheme.lower() != "bearer" or not token.strip():
            raise AuthenticationError("Authorization header must be 'Bearer <key>'.")
        return token.strip()
    if x_api_key:
        return x_api_key.decode("latin-1").strip()
    raise AuthenticationError(
        "You didn't provide an API key. Send it as 'Authorization: Bearer <key>' or 'x-api-key: <key>'."
    )


class StaticKeyAuthenticator:
    """A fixed table of keys: a mapping of key to tenant, or plain keys that all belong to ``tenant``."""

    def __init__(self, keys: Mapping[str, str] | Iterable[str], *, tenant: str = "default") -> None:
        owners = keys if isinstance(keys, Mapping) else dict.fromkeys(keys, tenant)
        self._principals = {
            hash_key(key): Principal(tenant=owner, key_id=hash_key(key)[:12]) for key, owner in owners.items()
        }

    def authenticate(self, authorization: bytes | None, x_api_key: bytes | None) -> Principal:
        key = extract_key(authorization, x_api_key)
        principal = self._principals.get(hash_key(key))
        if principal is None:
            raise AuthenticationError("Incorrect API key provided.")
        return principal
