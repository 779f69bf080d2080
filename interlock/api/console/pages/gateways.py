"""Routes and backends as the gateways report them (admin): each gateway's loaded config version, readiness,
routes and backends with their circuit-breaker state, from its latest status report."""

from __future__ import annotations

import datetime as dt

from fastapi import APIRouter, Request
from fastapi.responses import Response

from interlock.api.console.auth import ConsoleAdminDep
from interlock.api.console.render import render
from interlock.api.crud.gatewaystatus import list_gateway_status
from interlock.api.deps import SessionDep
from interlock.contract.controlplane import GatewayStatusReport

__all__ = ["router"]

router = APIRouter()

MAX_GATEWAYS = 200
STALE_AFTER_S = 60


@router.get("/gateways")
async def gateways_page(request: Request, session: SessionDep, user: ConsoleAdminDep) -> Response:
    now = dt.datetime.now(dt.UTC)
    rows = await list_gateway_status(session=session, limit=MAX_GATEWAYS)
    gateways = [
        {
            "row": row,
            "report": GatewayStatusReport.model_validate(row.report),
            "age_s": max(0, int((now - row.reported_at).total_seconds())),
        }
        for row in rows
    ]
    return render(request, "gateways.html", user, gateways=gateways, stale_after_s=STALE_AFTER_S)
