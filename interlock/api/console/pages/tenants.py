"""Tenants (admin): the list with a budget bar each, creating one, and editing a tenant's quota."""

from __future__ import annotations

import datetime as dt
from typing import Annotated

from fastapi import APIRouter, Path, Request
from fastapi.responses import RedirectResponse, Response

from interlock.api.console.auth import ConsoleAdminDep, checked_form
from interlock.api.console.forms import FormError, validate_form
from interlock.api.console.params import PRINTABLE_ID, FilterQuery
from interlock.api.console.render import render
from interlock.api.console.sessions import ConsoleUser
from interlock.api.crud import quotas as quotas_crud
from interlock.api.crud import tenants as tenants_crud
from interlock.api.crud.budgets import tenant_budgets
from interlock.api.crud.quotas import month_of
from interlock.api.deps import SessionDep
from interlock.api.errors import ApiError, NotFoundError
from interlock.api.schemas import QuotaUpdate, TenantCreate

__all__ = ["router"]

router = APIRouter()

MAX_LISTED = 500
TenantPath = Annotated[str, Path(min_length=1, max_length=64, pattern=PRINTABLE_ID)]


async def _list(
    request: Request, session: SessionDep, user: ConsoleUser, q: str | None, status_code: int = 200, **extra: object
) -> Response:
    now = dt.datetime.now(dt.UTC)
    rows = await tenant_budgets(session=session, month=month_of(now), now=now, name_contains=q, limit=MAX_LISTED + 1)
    return render(
        request,
        "tenants.html",
        user,
        status_code=status_code,
        tenants=rows[:MAX_LISTED],
        truncated=len(rows) > MAX_LISTED,
        q=q or "",
        month=month_of(now),
        **extra,
    )


@router.get("/tenants")
async def tenants_page(request: Request, session: SessionDep, user: ConsoleAdminDep, q: FilterQuery = None) -> Response:
    return await _list(request, session, user, q)


@router.post("/tenants")
async def create_tenant(request: Request, session: SessionDep, user: ConsoleAdminDep) -> Response:
    form = await checked_form(request, user)
    try:
        body = validate_form(TenantCreate, {"name": form.get("name", "").strip()})
        tenant = await tenants_crud.create_tenant(session=session, name=body.name)
    except FormError as exc:
        return await _list(request, session, user, None, status_code=422, error=exc.message, name=form.get("name"))
    except ApiError as exc:
        await session.rollback()
        return await _list(
            request, session, user, None, status_code=exc.status_code, error=exc.detail, name=form.get("name")
        )
    return RedirectResponse(f"/console/tenants/{tenant.id}?created=1", status_code=303)


async def _tenant(
    request: Request, session: SessionDep, user: ConsoleUser, tenant_id: str, status_code: int = 200, **extra: object
) -> Response:
    tenant = await tenants_crud.get_tenant(session=session, tenant_id=tenant_id)
    quota = await quotas_crud.get_quota(session=session, tenant_id=tenant_id)
    return render(request, "tenant.html", user, status_code=status_code, tenant=tenant, quota=quota, **extra)


@router.get("/tenants/{tenant_id}")
async def tenant_page(request: Request, session: SessionDep, user: ConsoleAdminDep, tenant_id: TenantPath) -> Response:
    created = request.query_params.get("created") == "1"
    saved = request.query_params.get("saved") == "1"
    try:
        return await _tenant(request, session, user, tenant_id, created=created, saved=saved)
    except NotFoundError as exc:
        return render(request, "error.html", user, status_code=404, heading="Tenant not found", message=exc.detail)


@router.post("/tenants/{tenant_id}/quota")
async def save_quota(request: Request, session: SessionDep, user: ConsoleAdminDep, tenant_id: TenantPath) -> Response:
    form = await checked_form(request, user)
    fields = ("requests_per_minute", "tokens_per_minute", "max_concurrency", "monthly_budget_usd", "priority")
    try:
        quota = validate_form(QuotaUpdate, {f: form.get(f, "").strip() for f in fields})
        await quotas_crud.put_quota(session=session, tenant_id=tenant_id, quota_in=quota)
    except FormError as exc:
        return await _tenant(request, session, user, tenant_id, status_code=422, error=exc.message)
    except NotFoundError as exc:
        return render(request, "error.html", user, status_code=404, heading="Tenant not found", message=exc.detail)
    return RedirectResponse(f"/console/tenants/{tenant_id}?saved=1", status_code=303)
