"""The control plane's side of the gateway contract (``interlock.contract``): snapshot, usage batches and status
reports."""

from __future__ import annotations

import datetime as dt
from collections import OrderedDict
from typing import Annotated

from fastapi import APIRouter, Header, HTTPException, Query, Request, Response

from interlock.api.crud.gatewaystatus import record_gateway_status
from interlock.api.crud.ingest import ingest_batch
from interlock.api.crud.snapshot import build_snapshot
from interlock.api.deps import GatewayDep, SessionDep, SettingsDep
from interlock.api.schemas import UsageBatchIn
from interlock.contract.controlplane import (
    GATEWAY_SNAPSHOT_PATH,
    GATEWAY_STATUS_PATH,
    GATEWAY_USAGE_PATH,
    GatewayStatusReport,
    Snapshot,
    UsageBatchResult,
)
from interlock.contract.gatewaycred import gateway_id_in_scope

__all__ = ["SnapshotCache", "etag_matches", "router"]

router = APIRouter(tags=["gateway"])


class SnapshotCache:
    """The last snapshot body per gateway: an unchanged version is answered with the very same bytes, so the
    strong ETag always names one representation (``generated_at`` included)."""

    def __init__(self, size: int) -> None:
        self._size = size
        self._bodies: OrderedDict[str, tuple[str, bytes]] = OrderedDict()

    def body(self, gateway_id: str, version: str, render: bytes) -> bytes:
        cached = self._bodies.get(gateway_id)
        if cached is not None and cached[0] == version:
            self._bodies.move_to_end(gateway_id)
            return cached[1]
        self._bodies[gateway_id] = (version, render)
        self._bodies.move_to_end(gateway_id)
        while len(self._bodies) > self._size:
            self._bodies.popitem(last=False)
        return render


def etag_matches(if_none_match: str | None, etag: str) -> bool:
    """RFC 9110 If-None-Match: ``*`` or any listed tag equal under weak comparison."""
    if not if_none_match:
        return False
    if if_none_match.strip() == "*":
        return True
    wanted = etag.removeprefix("W/")
    return any(tag.strip().removeprefix("W/") == wanted for tag in if_none_match.split(","))


@router.get(
    GATEWAY_SNAPSHOT_PATH,
    response_class=Response,
    responses={
        200: {"model": Snapshot, "description": "The snapshot, with its version as a strong ETag."},
        304: {"description": "Unchanged since the If-None-Match ETag."},
    },
)
async def snapshot(
    request: Request,
    session: SessionDep,
    gateway: GatewayDep,
    gateway_id: Annotated[str, Query(min_length=1, max_length=128, pattern=r"^[^\x00-\x1f\x7f]+$")],
    if_none_match: Annotated[str | None, Header(max_length=4096)] = None,
) -> Response:
    """Keys, tenants with quota and this month's spend, price overrides, and this gateway's ``ingested_seq``
    (``gateway_id`` must be under the credential's scope)."""
    if not gateway_id_in_scope(gateway.scope, gateway_id):
        raise HTTPException(
            status_code=403, detail=f"gateway_id {gateway_id!r} is outside this credential's scope {gateway.scope!r}."
        )
    snap = await build_snapshot(session=session, gateway_id=gateway_id, now=dt.datetime.now(dt.UTC))
    etag = f'"{snap.version}"'
    headers = {"ETag": etag, "Cache-Control": "no-cache"}
    if etag_matches(if_none_match, etag):
        return Response(status_code=304, headers=headers)
    cache: SnapshotCache = request.app.state.snapshot_cache
    body = cache.body(gateway_id, snap.version, snap.model_dump_json().encode())
    return Response(content=body, media_type="application/json", headers=headers)


@router.post(GATEWAY_USAGE_PATH)
async def ingest_usage(
    batch: UsageBatchIn, session: SessionDep, gateway: GatewayDep, settings: SettingsDep
) -> UsageBatchResult:
    """Count each event once by ``idempotency_id``; resending a batch (even concurrently) is always safe. Each
    event is judged on its own: one that is malformed, outside the credential's scope or whose ``seq`` is beyond
    the window is rejected (listed in the answer, kept in the dead-letter table) and the others still count."""
    return await ingest_batch(
        session=session, scope=gateway.scope, items=batch.events, seq_window=settings.usage_seq_window
    )


@router.post(GATEWAY_STATUS_PATH, status_code=204, response_class=Response)
async def report_status(report: GatewayStatusReport, session: SessionDep, gateway: GatewayDep) -> Response:
    """The gateway's loaded config version, readiness, routes and backends (``gateway_id`` must be under the
    credential's scope); the latest report per gateway is kept for the console."""
    if not gateway_id_in_scope(gateway.scope, report.gateway_id):
        raise HTTPException(
            status_code=403,
            detail=f"gateway_id {report.gateway_id!r} is outside this credential's scope {gateway.scope!r}.",
        )
    await record_gateway_status(session=session, report=report, now=dt.datetime.now(dt.UTC))
    return Response(status_code=204)
