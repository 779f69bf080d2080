"""Per-gateway credentials for the control plane's ``/v1/gateway/*`` endpoints, stateless and scoped.

A credential names its scope, ``<namespace>/<gateway>`` (``local/default`` for ``interlock up``), and carries an
HMAC-SHA256 of it under the control plane's signing key::

    ilgw1.<base64url(scope)>.<base64url(hmac(signing_key, "ilgw1." + scope))>

Whoever holds the signing key (the control plane, and the operator that provisions each gateway's Secret) can mint
one without a round trip or a table; the control plane verifies it with one HMAC. A gateway presenting it may read
the snapshot and write usage events only for gateway ids under its scope: ``<scope>/<pod or process name>``.
Revoking every credential at once is rotating the signing key; the operator then mints new ones.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import re

__all__ = [
    "CREDENTIAL_PREFIX",
    "MIN_SIGNING_KEY_BYTES",
    "credential_scope",
    "gateway_id_in_scope",
    "mint_gateway_credential",
    "verify_gateway_credential",
]

CREDENTIAL_PREFIX = "ilgw1."
MIN_SIGNING_KEY_BYTES = 32
_SCOPE = re.compile(r"[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?/[a-z0-9]([-a-z0-9.]{0,251}[a-z0-9])?")
"""``<namespace>/<gateway>``: a Kubernetes namespace name and an object name."""


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def _unb64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def _mac(signing_key: bytes, scope: str) -> bytes:
    return hmac.new(signing_key, (CREDENTIAL_PREFIX + scope).encode(), hashlib.sha256).digest()


def mint_gateway_credential(signing_key: bytes, scope: str) -> str:
    """The credential for the gateways of ``scope`` (``<namespace>/<gateway>``)."""
    if not _SCOPE.fullmatch(scope):
        raise ValueError(f"a gateway credential's scope is <namespace>/<gateway>, not {scope!r}")
    if len(signing_key) < MIN_SIGNING_KEY_BYTES:
        raise ValueError(f"the signing key has {len(signing_key)} bytes; at least {MIN_SIGNING_KEY_BYTES} are needed")
    return f"{CREDENTIAL_PREFIX}{_b64(scope.encode())}.{_b64(_mac(signing_key, scope))}"


def verify_gateway_credential(signing_key: bytes, credential: str) -> str | None:
    """The scope ``credential`` was minted for under ``signing_key``, or None when it was not (constant time in
    the MAC)."""
    if not credential.startswith(CREDENTIAL_PREFIX) or len(credential) > 512:
        return None
    parts = credential[len(CREDENTIAL_PREFIX) :].split(".")
    if len(parts) != 2:
        return None
    try:
        scope = _unb64(parts[0]).decode("ascii")
        mac = _unb64(parts[1])
    except (binascii.Error, ValueError):
        return None
    if not _SCOPE.fullmatch(scope):
        return None
    return scope if hmac.compare_digest(mac, _mac(signing_key, scope)) else None


def credential_scope(credential: str) -> str | None:
    """The scope a credential claims, unverified (the scope is not secret): what a gateway reads from its own
    credential to name itself ``<scope>/<pod>``. None when it is not a well-formed credential."""
    if not credential.startswith(CREDENTIAL_PREFIX) or len(credential) > 512:
        return None
    parts = credential[len(CREDENTIAL_PREFIX) :].split(".")
    if len(parts) != 2:
        return None
    try:
        scope = _unb64(parts[0]).decode("ascii")
    except (binascii.Error, ValueError):
        return None
    return scope if _SCOPE.fullmatch(scope) else None


def gateway_id_in_scope(scope: str, gateway_id: str) -> bool:
    """Whether a gateway holding ``scope``'s credential may act as ``gateway_id`` (``<scope>/<name>``)."""
    return gateway_id.startswith(scope + "/") and len(gateway_id) > len(scope) + 1 and len(gateway_id) <= 253
