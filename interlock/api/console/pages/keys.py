"""Keys (admin): the list (newest first, of one tenant or all), creating one (its plaintext shown this once, with a
copy button), an optional expiry, and revoking."""

from __future__ import annotations

import datetime as dt
from typing import Annotated

from fastapi import APIRouter, Path, Request
from fastapi.responses import RedirectResponse, Response
from sqlalchemy.ext.asyncio import AsyncSession

from interlock.api.console.auth import ConsoleAdminDep, checked_form
from interlock.api.console.forms import FormError, validate_form
from interlock.api.console.params import PRINTABLE_ID, FilterQuery
from interlock.api.console.render import render
from interlock.api.console.sessions import ConsoleUser
from interlock.api.crud import keys as keys_crud
from interlock.api.crud import tenants as tenants_crud
from interlock.api.crud.tenants import TenantName
from interlock.api.deps import SessionDep
from interlock.api.errors import ApiError, NotFoundError
from interlock.api.schemas import KeyCreate

__all__ = ["router"]

router = APIRouter()

MAX_LISTED = 500
MAX_TENANT_CHOICES = 1000
KeyPath = Annotated[str, Path(min_length=1, max_length=64, pattern=PRINTABLE_ID)]


async def _page(
    request: Request,
    session: SessionDep,
    user: ConsoleUser,
    tenant: str | None,
    status_code: int = 200,
    **extra: object,
) -> Response:
    keys = await keys_crud.list_recent_keys(session=session, tenant_id=tenant or None, limit=MAX_LISTED)
    tenants, more_tenants = await _tenant_choices(session, tenant or None)
    return render(
        request,
        "keys.html",
        user,
        status_code=status_code,
        keys=keys,
        tenants=tenants,
        more_tenants=more_tenants,
        tenant_choices=MAX_TENANT_CHOICES,
        tenant_filter=tenant or "",
        now=dt.datetime.now(dt.UTC),
        **extra,
    )


async def _tenant_choices(session: AsyncSession, chosen: str | None) -> tuple[list[TenantName], bool]:
    """The first ``MAX_TENANT_CHOICES`` tenants by name, and whether there are more; the chosen one always among
    them (first, when it is not): a form whose tenant is not among its choices would preselect another tenant, and
    create the key there."""
    tenants = await tenants_crud.tenant_names_by_name(session=session, limit=MAX_TENANT_CHOICES + 1)
    more = len(tenants) > MAX_TENANT_CHOICES
    tenants = tenants[:MAX_TENANT_CHOICES]
    if chosen is not None and all(t.id != chosen for t in tenants):
        found = await tenants_crud.tenant_name(session=session, tenant_id=chosen)
        tenants[:0] = [found] if found is not None else []  # an unknown tenant: nothing to choose, no keys listed
    return tenants, more


@router.get("/keys")
async def keys_page(
    request: Request, session: SessionDep, user: ConsoleAdminDep, tenant: FilterQuery = None
) -> Response:
    revoked = request.query_params.get("revoked") == "1"
    return await _page(request, session, user, tenant, revoked=revoked)


@router.post("/keys")
async def create_key(request: Request, session: SessionDep, user: ConsoleAdminDep) -> Response:
    """Answers with the page itself (no redirect): the new key is in this one answer and nowhere else."""
    form = await checked_form(request, user)
    tenant_id = form.get("tenant_id", "")
    expires = form.get("expires_on", "").strip()
    try:
        expires_at = dt.datetime.fromisoformat(expires).replace(tzinfo=dt.UTC) if expires else None
    except ValueError:
        return await _page(
            request, session, user, tenant_id, status_code=422, error=f"expiry: {expires!r} is not a date"
        )
    try:
        body = validate_form(KeyCreate, {"name": form.get("name", "").strip(), "expires_at": expires_at})
        created = await keys_crud.create_key(
            session=session, tenant_id=tenant_id, name=body.name, expires_at=body.expires_at
        )
    except FormError as exc:
        return await _page(request, session, user, tenant_id, status_code=422, error=exc.message)
    except ApiError as exc:
        await session.rollback()
        return await _page(request, session, user, tenant_id, status_code=exc.status_code, error=exc.detail)
    return await _page(
        request, session, user, tenant_id, status_code=201, created=created.key, created_name=created.record.name
    )


@router.post("/keys/{key_id}/revoke")
async def revoke_key(request: Request, session: SessionDep, user: ConsoleAdminDep, key_id: KeyPath) -> Response:
    form = await checked_form(request, user)
    try:
        await keys_crud.revoke_key(session=session, key_id=key_id)
    except NotFoundError as exc:
        return render(request, "error.html", user, status_code=404, heading="Key not found", message=exc.detail)
    tenant = form.get("tenant", "")
    suffix = f"&tenant={tenant}" if tenant else ""
    return RedirectResponse(f"/console/keys?revoked=1{suffix}", status_code=303)
