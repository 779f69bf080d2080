"""Who is calling: the client key from ``Authorization: Bearer`` or ``x-api-key``, checked against a key table.

``SnapshotAuthenticator`` checks keys against the control plane's snapshot (``policy.Policy``): lookup prefix,
constant-time comparison of SHA-256 digests, expiry. A revoked key is gone from the next snapshot, so it stops
working within one poll interval. ``StaticKeyAuthenticator`` is a fixed table (``api_keys``): the only keys when
no control plane is configured, break-glass keys beside the snapshot's when one is. Neither stores a plaintext
key nor caches anything per key beyond the policy.
"""

from __future__ import annotations

import hashlib
import time
from collections.abc import Iterable, Mapping
from typing import Protocol

from interlock.contract.keys import KEY_PREFIX, PREFIX_CHARS, hash_key
from interlock.gateway.errors import AuthenticationError, ServiceUnavailableError
from interlock.gateway.tenancy.policy import Policy, Principal

__all__ = [
    "Authenticator",
    "PolicyProvider",
    "Principal",
    "SnapshotAuthenticator",
    "StaticKeyAuthenticator",
    "extract_key",
]

_PREFIX_LEN = len(KEY_PREFIX)
_LOOKUP_END = _PREFIX_LEN + PREFIX_CHARS


class Authenticator(Protocol):
    def authenticate(self, authorization: bytes | None, x_api_key: bytes | None) -> Principal: ...


class PolicyProvider(Protocol):
    """Holds the current policy (None until the first snapshot has arrived)."""

    @property
    def policy(self) -> Policy | None: ...


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
            hash_key(key): Principal(tenant=owner, key_id=hash_key(key)[:12], tenant_id=owner)
            for key, owner in owners.items()
        }

    def authenticate(self, authorization: bytes | None, x_api_key: bytes | None) -> Principal:
        key = extract_key(authorization, x_api_key)
        principal = self._principals.get(hash_key(key))
        if principal is None:
            raise AuthenticationError("Incorrect API key provided.")
        return principal


class SnapshotAuthenticator:
    """Keys of the control plane's snapshot; ``fallback`` (if any) is asked about keys the snapshot lacks."""

    def __init__(self, source: PolicyProvider, fallback: Authenticator | None = None) -> None:
        self._source = source
        self._fallback = fallback

    def authenticate(self, authorization: bytes | None, x_api_key: bytes | None) -> Principal:
        key = extract_key(authorization, x_api_key)
        policy = self._source.policy
        if policy is not None and key.startswith(KEY_PREFIX) and len(key) > _LOOKUP_END:
            raw = key.encode("latin-1")  # the header's own bytes
            principal = policy.find(key[_PREFIX_LEN:_LOOKUP_END], hashlib.sha256(raw).digest(), time.time())
            if principal is not None:
                return principal
        if self._fallback is not None:
            try:
                return self._fallback.authenticate(authorization, x_api_key)
            except AuthenticationError:
                pass
        if policy is None:
            raise ServiceUnavailableError(
                "The gateway has not received its key snapshot from the control plane yet.",
                code="not_ready",
                headers={"retry-after": "1"},
            )
        raise AuthenticationError("Incorrect API key provided.")
