"""FastAPI dependencies as ``Annotated`` aliases: the session, the settings, and who is calling.

Permissions are attached to each route by the alias it takes: ``AdminDep`` (admin token), ``GatewayDep`` (the
gateway token; the admin token when none is set), ``CallerDep`` (admin or a tenant key: the read endpoints, which
scope a tenant to its own data). Without credentials: 401; with the wrong kind: 403.
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
from interlock.contract.keys import KEY_PREFIX

__all__ = [
    "AdminDep",
    "Caller",
    "CallerDep",
    "GatewayDep",
    "SessionDep",
    "SettingsDep",
    "get_caller",
    "get_session",
    "get_settings",
]

_bearer = HTTPBearer(auto_error=False, description="The admin token, the gateway token, or a tenant's sk-il- key.")


@dataclass(frozen=True)
class Caller:
    role: Literal["admin", "gateway", "tenant"]
    tenant_id: str | None = None
    key_id: str | None = None

    @property
    def scope_tenant_id(self) -> str | None:
        """The tenant whose data this caller is confined to (None: all)."""
        return self.tenant_id if self.role == "tenant" else None


def get_settings(request: Request) -> ApiSettings:
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
    if settings.gateway_token is not None and _same(token, settings.gateway_secret()):
        return Caller(role="gateway")
    if token.startswith(KEY_PREFIX):
        key = await find_active_key(session=session, key=token, now=dt.datetime.now(dt.UTC))
        caller = Caller(role="tenant", tenant_id=key.tenant_id, key_id=key.id) if key is not None else None
        await session.rollback()  # end the read; the route starts its own transaction
        if caller is not None:
            return caller
    raise _unauthorized("Invalid, revoked or expired token.")


AnyCallerDep = Annotated[Caller, Depends(get_caller)]


def require_admin(caller: AnyCallerDep) -> Caller:
    if caller.role != "admin":
        raise HTTPException(status_code=403, detail="This endpoint needs the admin token.")
    return caller


def require_reader(caller: AnyCallerDep) -> Caller:
    if caller.role not in ("admin", "tenant"):
        raise HTTPException(status_code=403, detail="This endpoint needs the admin token or a tenant key.")
    return caller


def require_gateway(caller: AnyCallerDep, settings: SettingsDep) -> Caller:
    allowed = "gateway" if settings.gateway_token is not None else "admin"
    if caller.role != allowed:
        raise HTTPException(status_code=403, detail="This endpoint needs the gateway token.")
    return caller


AdminDep = Annotated[Caller, Depends(require_admin)]
CallerDep = Annotated[Caller, Depends(require_reader)]
GatewayDep = Annotated[Caller, Depends(require_gateway)]
