"""FastAPI dependencies as ``Annotated`` aliases: the session, the settings, and who is calling.

Permissions are attached to each route by the alias it takes: ``AdminDep`` (admin token), ``GatewayDep`` (a
gateway credential signed with ``gateway_signing_key``: the caller is a ``GatewayCaller`` with the credential's
scope, and each route checks the gateway ids it touches against it), ``CallerDep`` (admin or a tenant key: the read
endpoints, which scope a tenant to its own data). Without credentials: 401; with the wrong kind: 403.
"""

from __future__ import annotations

import datetime as dt
import hmac
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Annotated, Literal

from fastapi import Depends, HTTPException, Request
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from interlock.api.crud.keys import find_active_key
from interlock.api.settings import ApiSettings
from interlock.contract.gatewaycred import CREDENTIAL_PREFIX, verify_gateway_credential
from interlock.contract.keys import KEY_PREFIX

__all__ = [
    "AdminDep",
    "Caller",
    "CallerDep",
    "GatewayCaller",
    "GatewayCredentials",
    "GatewayDep",
    "SessionDep",
    "SettingsDep",
    "get_caller",
    "get_session",
    "get_settings",
]

_bearer = HTTPBearer(
    auto_error=False, description="The admin token, a gateway credential (ilgw1.…), or a tenant's sk-il- key."
)


@dataclass(frozen=True)
class Caller:
    role: Literal["admin", "tenant"]
    tenant_id: str | None = None
    key_id: str | None = None

    @property
    def scope_tenant_id(self) -> str | None:
        """The tenant whose data this caller is confined to (None: all)."""
        return self.tenant_id if self.role == "tenant" else None


async def get_settings(request: Request) -> ApiSettings:
    # Dependencies are ``async def`` although none awaits: FastAPI runs a plain ``def`` one in a worker thread, a
    # hop that cost more than the rest of a snapshot poll.
    settings: ApiSettings = request.app.state.settings
    return settings


async def get_session(request: Request) -> AsyncIterator[AsyncSession]:
    sessions: async_sessionmaker[AsyncSession] = request.app.state.sessions
    async with sessions() as session:
        yield session


SettingsDep = Annotated[ApiSettings, Depends(get_settings)]
SessionDep = Annotated[AsyncSession, Depends(get_session)]


def _unauthorized(message: str) -> HTTPException:
    return HTTPException(status_code=401, detail=message, headers={"WWW-Authenticate": "Bearer"})


def _same(a: str, b: str) -> bool:
    return hmac.compare_digest(a.encode("utf-8", "surrogateescape"), b.encode("utf-8", "surrogateescape"))


async def get_caller(
    settings: SettingsDep,
    session: SessionDep,
    credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(_bearer)],
) -> Caller:
    if credentials is None or not credentials.credentials:
        raise _unauthorized("Authentication required: send 'Authorization: Bearer <token>'.")
    token = credentials.credentials
    if _same(token, settings.admin_secret()):
        return Caller(role="admin")
    signing_key = settings.signing_key()
    gateway = signing_key is not None and token.startswith(CREDENTIAL_PREFIX)
    if gateway and verify_gateway_credential(signing_key or b"", token) is not None:
        raise HTTPException(status_code=403, detail="A gateway credential may use the /v1/gateway endpoints only.")
    if token.startswith(KEY_PREFIX):
        key = await find_active_key(session=session, key=token, now=dt.datetime.now(dt.UTC))
        caller = Caller(role="tenant", tenant_id=key.tenant_id, key_id=key.id) if key is not None else None
        await session.rollback()  # end the read; the route starts its own transaction
        if caller is not None:
            return caller
    raise _unauthorized("Invalid, revoked or expired token.")


AnyCallerDep = Annotated[Caller, Depends(get_caller)]


async def require_admin(caller: AnyCallerDep) -> Caller:
    if caller.role != "admin":
        raise HTTPException(status_code=403, detail="This endpoint needs the admin token.")
    return caller


async def require_reader(caller: AnyCallerDep) -> Caller:
    return caller


class GatewayCredentials:
    """Verified gateway credentials, remembered: credential → scope, for the signing key they were verified under.

    A credential is stateless (``interlock.contract.gatewaycred``): it stays valid exactly as long as the signing
    key that signed it, and revoking credentials is rotating that key. So an entry can only go stale with the key,
    and every lookup passes the current key: a different key empties the cache first, so a rotated key refuses
    the old credentials from its first request, as if nothing were remembered. Only credentials that verified are
    kept (at most ``size``; then the cache starts over), so invalid tokens cost an HMAC every time and fill nothing.
    A lookup can only hit with a whole valid credential (the dict compares randomised hashes first), so its timing
    tells a guesser nothing the constant-time HMAC compare would not.
    """

    def __init__(self, size: int = 4096) -> None:
        self._size = size
        self._key: bytes | None = None
        self._scopes: dict[str, str] = {}

    def scope(self, signing_key: bytes, credential: str) -> str | None:
        """The scope ``credential`` was minted for under ``signing_key``; None when it was not."""
        if signing_key != self._key:
            self._scopes = {}
            self._key = signing_key
        scope = self._scopes.get(credential)
        if scope is not None:
            return scope
        scope = verify_gateway_credential(signing_key, credential)
        if scope is not None:
            if len(self._scopes) >= self._size:
                self._scopes = {}
            self._scopes[credential] = scope
        return scope


@dataclass(frozen=True)
class GatewayCaller:
    """A gateway holding a valid credential: it may act as the gateway ids under ``scope`` only."""

    scope: str


async def require_gateway(
    request: Request,
    settings: SettingsDep,
    credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(_bearer)],
) -> GatewayCaller:
    """A valid gateway credential (no database read). The admin token is not one: an admin who must act as a
    gateway mints a credential with the signing key."""
    key = settings.signing_key()
    if key is None:
        raise HTTPException(
            status_code=503,
            detail="This control plane has no gateway signing key (INTERLOCK_API_GATEWAY_SIGNING_KEY), so it "
            "cannot authenticate gateways.",
        )
    if credentials is None or not credentials.credentials:
        raise _unauthorized("Authentication required: send 'Authorization: Bearer <gateway credential>'.")
    verified: GatewayCredentials = request.app.state.gateway_credentials
    scope = verified.scope(key, credentials.credentials)
    if scope is not None:
        return GatewayCaller(scope)
    if _same(credentials.credentials, settings.admin_secret()) or credentials.credentials.startswith(KEY_PREFIX):
        raise HTTPException(status_code=403, detail="This endpoint needs a gateway credential.")
    raise _unauthorized("Invalid gateway credential (not signed with this control plane's key).")


AdminDep = Annotated[Caller, Depends(require_admin)]
CallerDep = Annotated[Caller, Depends(require_reader)]
GatewayDep = Annotated[GatewayCaller, Depends(require_gateway)]
