"""Traces of requests: the admin sees every tenant's, a tenant key only its own."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Path

from interlock.api.crud import traces as crud
from interlock.api.deps import CallerDep, SessionDep, SettingsDep
from interlock.api.routes.filters import UsageFilterDep
from interlock.api.routes.params import CursorQuery, LimitQuery, page_size
from interlock.api.schemas import TracePublic, TracesPublic

__all__ = ["router"]

router = APIRouter(prefix="/v1/traces", tags=["traces"])


@router.get("")
async def list_traces(
    session: SessionDep,
    settings: SettingsDep,
    filters: UsageFilterDep,
    limit: LimitQuery = None,
    cursor: CursorQuery = None,
) -> TracesPublic:
    """Traced requests, newest first (open one with ``GET /v1/traces/{trace_id}`` for its spans)."""
    data, next_cursor = await crud.list_traces(
        session=session, filters=filters, limit=page_size(limit, settings), cursor=cursor
    )
    return TracesPublic(data=list(data), next_cursor=next_cursor)


@router.get("/{trace_id}")
async def get_trace(
    trace_id: Annotated[str, Path(min_length=1, max_length=1024, pattern=r"^[^\x00-\x1f\x7f]+$")],
    session: SessionDep,
    caller: CallerDep,
) -> TracePublic:
    return await crud.get_trace(session=session, trace_id=trace_id, scope_tenant_id=caller.scope_tenant_id)
