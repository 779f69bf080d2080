"""Tenants, their keys and their quota (admin only)."""

from __future__ import annotations

from fastapi import APIRouter, Response

from interlock.api.crud import keys as keys_crud
from interlock.api.crud import quotas as quotas_crud
from interlock.api.crud import tenants as crud
from interlock.api.deps import AdminDep, SessionDep, SettingsDep
from interlock.api.pagination import decode_name_cursor, encode_name_cursor
from interlock.api.routes.params import CursorQuery, IdPath, LimitQuery, page_size
from interlock.api.schemas import (
    KeyCreate,
    KeyCreated,
    KeyPublic,
    KeysPublic,
    QuotaPublic,
    QuotaUpdate,
    TenantCreate,
    TenantPublic,
    TenantsPublic,
    TenantUpdate,
)

__all__ = ["router"]

router = APIRouter(prefix="/v1/tenants", tags=["tenants"])


@router.post("", status_code=201)
async def create_tenant(body: TenantCreate, session: SessionDep, _: AdminDep) -> TenantPublic:
    tenant = await crud.create_tenant(session=session, name=body.name)
    return TenantPublic.model_validate(tenant)


@router.get("")
async def list_tenants(
    session: SessionDep, settings: SettingsDep, _: AdminDep, limit: LimitQuery = None, cursor: CursorQuery = None
) -> TenantsPublic:
    size = page_size(limit, settings)
    after = decode_name_cursor(cursor) if cursor else None
    rows = await crud.list_tenants(session=session, limit=size + 1, after_name=after)
    more = len(rows) > size
    data = [TenantPublic.model_validate(t) for t in rows[:size]]
    return TenantsPublic(data=data, next_cursor=encode_name_cursor(data[-1].name) if more else None)


@router.get("/{tenant_id}")
async def get_tenant(tenant_id: IdPath, session: SessionDep, _: AdminDep) -> TenantPublic:
    return TenantPublic.model_validate(await crud.get_tenant(session=session, tenant_id=tenant_id))


@router.patch("/{tenant_id}")
async def update_tenant(tenant_id: IdPath, body: TenantUpdate, session: SessionDep, _: AdminDep) -> TenantPublic:
    tenant = await crud.update_tenant(session=session, tenant_id=tenant_id, name=body.name)
    return TenantPublic.model_validate(tenant)


@router.delete("/{tenant_id}", status_code=204)
async def delete_tenant(tenant_id: IdPath, session: SessionDep, _: AdminDep) -> Response:
    await crud.delete_tenant(session=session, tenant_id=tenant_id)
    return Response(status_code=204)


@router.post("/{tenant_id}/keys", status_code=201)
async def create_key(tenant_id: IdPath, body: KeyCreate, session: SessionDep, _: AdminDep) -> KeyCreated:
    created = await keys_crud.create_key(
        session=session, tenant_id=tenant_id, name=body.name, expires_at=body.expires_at
    )
    return KeyCreated(**KeyPublic.model_validate(created.record).model_dump(), key=created.key)


@router.get("/{tenant_id}/keys")
async def list_keys(tenant_id: IdPath, session: SessionDep, _: AdminDep) -> KeysPublic:
    rows = await keys_crud.list_keys(session=session, tenant_id=tenant_id)
    return KeysPublic(data=[KeyPublic.model_validate(k) for k in rows])


@router.put("/{tenant_id}/quota")
async def put_quota(tenant_id: IdPath, body: QuotaUpdate, session: SessionDep, _: AdminDep) -> QuotaPublic:
    return await quotas_crud.put_quota(session=session, tenant_id=tenant_id, quota_in=body)


@router.get("/{tenant_id}/quota")
async def get_quota(tenant_id: IdPath, session: SessionDep, _: AdminDep) -> QuotaPublic:
    return await quotas_crud.get_quota(session=session, tenant_id=tenant_id)
