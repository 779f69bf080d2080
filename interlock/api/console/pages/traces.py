"""Traces: recent requests, filterable, and one request's attempts and spans as a waterfall. A tenant login's
filter is always its own tenant (``UsageFilter.scope_tenant_id``), so another tenant's trace is not found."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Path, Request
from fastapi.responses import Response

from interlock.api.console.auth import ConsoleUserDep
from interlock.api.console.names import tenant_names
from interlock.api.console.params import PRINTABLE_ID, FilterQuery
from interlock.api.console.render import render
from interlock.api.console.waterfall import waterfall
from interlock.api.crud.traces import get_trace, list_traces
from interlock.api.crud.usage import UsageFilter
from interlock.api.deps import SessionDep
from interlock.api.errors import NotFoundError

__all__ = ["router"]

router = APIRouter()

PAGE = 50
TracePath = Annotated[str, Path(min_length=1, max_length=128, pattern=PRINTABLE_ID)]


@router.get("/traces")
async def traces_page(
    request: Request,
    session: SessionDep,
    user: ConsoleUserDep,
    tenant: FilterQuery = None,
    route: FilterQuery = None,
    model: FilterQuery = None,
    backend: FilterQuery = None,
    trace_id: FilterQuery = None,
    cursor: FilterQuery = None,
) -> Response:
    filters = UsageFilter(
        tenant_id=(tenant or None) if user.is_admin else None,
        scope_tenant_id=user.scope(),
        route=route or None,
        model=model or None,
        backend=backend or None,
        trace_id=trace_id or None,
    )
    rows, next_cursor = await list_traces(session=session, filters=filters, limit=PAGE, cursor=cursor or None)
    names = await tenant_names(session, [r.tenant_id for r in rows] + [user.tenant_id])
    return render(
        request,
        "traces.html",
        user,
        tenant_name=names.get(user.tenant_id or "", user.tenant_id),
        rows=rows,
        names=names,
        next_cursor=next_cursor,
        f={
            "tenant": tenant or "",
            "route": route or "",
            "model": model or "",
            "backend": backend or "",
            "trace_id": trace_id or "",
        },
    )


@router.get("/traces/{trace_id}")
async def trace_page(request: Request, session: SessionDep, user: ConsoleUserDep, trace_id: TracePath) -> Response:
    try:
        trace = await get_trace(session=session, trace_id=trace_id, scope_tenant_id=user.scope())
    except NotFoundError:
        return render(
            request,
            "error.html",
            user,
            status_code=404,
            heading="Trace not found",
            message=f"No trace {trace_id!r} that this login may see.",
        )
    names = await tenant_names(session, [trace.tenant_id, user.tenant_id])
    return render(
        request,
        "trace.html",
        user,
        tenant_name=names.get(user.tenant_id or "", user.tenant_id),
        trace=trace,
        names=names,
        chart=waterfall(trace.spans, trace.latency_ms),
    )
