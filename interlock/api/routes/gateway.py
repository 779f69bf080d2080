"""The control plane's side of the gateway contract (``interlock.contract``): snapshot, usage batches and status
reports."""

from __future__ import annotations

import datetime as dt
from collections import OrderedDict
from collections.abc import Sequence
from typing import Annotated, Any

from fastapi import APIRouter, Header, HTTPException, Query, Request, Response
from fastapi.exceptions import RequestValidationError
from pydantic import BaseModel, Field, ValidationError

from interlock.api.configwatch import ConfigWatch
from interlock.api.crud.gatewaystatus import record_gateway_status
from interlock.api.crud.ingest import ingest_batch
from interlock.api.crud.snapshot import build_delta, build_snapshot, build_spend, polled_config_version, spend_version
from interlock.api.deps import GatewayDep, SessionDep, SettingsDep
from interlock.api.schemas import UsageBatchIn, UsageEventWire
from interlock.api.unchanged import etag_matches
from interlock.contract.controlplane import (
    GATEWAY_SNAPSHOT_PATH,
    GATEWAY_SPEND_PATH,
    GATEWAY_STATUS_PATH,
    GATEWAY_USAGE_PATH,
    GatewayStatusReport,
    Snapshot,
    SpendSnapshot,
    UsageBatchResult,
)
from interlock.contract.gatewaycred import gateway_id_in_scope

__all__ = ["SnapshotCache", "etag_matches", "router"]

router = APIRouter(tags=["gateway"])


class SnapshotCache:
    """The last full snapshot body per gateway: an unchanged version is answered with the very same bytes, so the
    strong ETag names one representation (``generated_at`` included), until the first key in it expires (keys
    expire without a config change; gateways also check ``expires_at`` themselves)."""

    def __init__(self, size: int) -> None:
        self._size = size
        self._bodies: OrderedDict[str, tuple[str, bytes, float]] = OrderedDict()

    def body(self, gateway_id: str, snap: Snapshot, now: dt.datetime) -> bytes:
        cached = self._bodies.get(gateway_id)
        if cached is not None and cached[0] == snap.version and now.timestamp() < cached[2]:
            self._bodies.move_to_end(gateway_id)
            return cached[1]
        expiries = [k.expires_at.timestamp() for k in snap.keys if k.expires_at is not None]
        render = snap.model_dump_json().encode()
        self._bodies[gateway_id] = (snap.version, render, min(expiries, default=float("inf")))
        self._bodies.move_to_end(gateway_id)
        while len(self._bodies) > self._size:
            self._bodies.popitem(last=False)
        return render


GatewayIdQuery = Annotated[str, Query(min_length=1, max_length=128, pattern=r"^[^\x00-\x1f\x7f]+$")]
IfNoneMatch = Annotated[str | None, Header(max_length=4096)]


def _check_scope(scope: str, gateway_id: str) -> None:
    if not gateway_id_in_scope(scope, gateway_id):
        raise HTTPException(
            status_code=403, detail=f"gateway_id {gateway_id!r} is outside this credential's scope {scope!r}."
        )


@router.get(
    GATEWAY_SNAPSHOT_PATH,
    response_class=Response,
    responses={
        200: {"model": Snapshot, "description": "The snapshot (or a delta), with its config version as a strong ETag."},
        304: {"description": "Unchanged since the If-None-Match ETag."},
    },
)
async def snapshot(
    request: Request,
    session: SessionDep,
    gateway: GatewayDep,
    gateway_id: GatewayIdQuery,
    if_none_match: IfNoneMatch = None,
    since: Annotated[int | None, Query(ge=0, le=2**62, description="The config version the gateway holds.")] = None,
) -> Response:
    """Tenants with quotas, active keys and price overrides at the current config version (``gateway_id`` must be
    under the credential's scope). The version is read first: an unchanged one is a 304 with nothing built. With
    ``since``, only what changed after that version (a delta), or the full snapshot when that is too far back."""
    _check_scope(gateway.scope, gateway_id)
    watch: ConfigWatch = request.app.state.config_watch
    version = watch.config_version()  # in memory while the watch listens: then a 304 touches no database
    if version is None:
        version = await polled_config_version(session)
        await session.commit()
    etag = f'"{version}"'
    headers = {"ETag": etag, "Cache-Control": "no-cache"}
    if etag_matches(if_none_match, etag):
        return Response(status_code=304, headers=headers)
    now = dt.datetime.now(dt.UTC)
    if since is not None:
        delta = await build_delta(session=session, gateway_id=gateway_id, since=since, now=now)
        if delta is not None:
            headers["ETag"] = f'"{delta.version}"'
            return Response(content=delta.model_dump_json().encode(), media_type="application/json", headers=headers)
    snap = await build_snapshot(session=session, gateway_id=gateway_id, now=now)
    headers["ETag"] = f'"{snap.version}"'
    cache: SnapshotCache = request.app.state.snapshot_cache
    body = cache.body(gateway_id, snap, now)
    return Response(content=body, media_type="application/json", headers=headers)


@router.get(
    GATEWAY_SPEND_PATH,
    response_class=Response,
    responses={
        200: {"model": SpendSnapshot, "description": "This month's spend of budgeted tenants and ingested_seq."},
        304: {"description": "Unchanged since the If-None-Match ETag."},
    },
)
async def spend(
    request: Request,
    session: SessionDep,
    gateway: GatewayDep,
    gateway_id: GatewayIdQuery,
    if_none_match: IfNoneMatch = None,
) -> Response:
    """This month's spend (UTC) of the tenants with a monthly budget, from every gateway, and ``ingested_seq``: the
    highest ``seq`` of this gateway's events counted in it."""
    _check_scope(gateway.scope, gateway_id)
    now = dt.datetime.now(dt.UTC)
    watch: ConfigWatch = request.app.state.config_watch
    version = await spend_version(session, gateway_id, now, watch.cursors())
    etag = f'"{version}"'
    headers = {"ETag": etag, "Cache-Control": "no-cache"}
    if etag_matches(if_none_match, etag):
        return Response(status_code=304, headers=headers)
    document = await build_spend(session=session, gateway_id=gateway_id, now=now, version=version)
    return Response(content=document.model_dump_json().encode(), media_type="application/json", headers=headers)


class _ValidBatch(BaseModel):
    events: list[UsageEventWire] = Field(max_length=5000)


_BATCH_SCHEMA = UsageBatchIn.model_json_schema(ref_template="#/components/schemas/{model}")


@router.post(
    GATEWAY_USAGE_PATH,
    openapi_extra={"requestBody": {"required": True, "content": {"application/json": {"schema": _BATCH_SCHEMA}}}},
)
async def ingest_usage(
    request: Request, session: SessionDep, gateway: GatewayDep, settings: SettingsDep
) -> UsageBatchResult:
    """Count each event once by ``idempotency_id``; resending a batch (even concurrently) is always safe. Each
    event is judged on its own: one that is malformed, outside the credential's scope or whose ``seq`` is beyond
    the window is rejected (listed in the answer, kept in the dead-letter table) and the others still count.

    The body (a ``UsageBatchIn``) is validated as a whole straight from its bytes first, which is the fast path;
    only a batch with a bad event is taken apart and judged event by event."""
    body = await request.body()
    items: Sequence[Any]
    try:
        items = _ValidBatch.model_validate_json(body).events
    except ValidationError:
        try:
            items = UsageBatchIn.model_validate_json(body).events
        except ValidationError as exc:
            raise RequestValidationError(exc.errors(include_url=False, include_context=False), body=None) from exc
    return await ingest_batch(session=session, scope=gateway.scope, items=items, seq_window=settings.usage_seq_window)


@router.post(GATEWAY_STATUS_PATH, status_code=204, response_class=Response)
async def report_status(report: GatewayStatusReport, session: SessionDep, gateway: GatewayDep) -> Response:
    """The gateway's loaded config version, readiness, routes and backends (``gateway_id`` must be under the
    credential's scope); the latest report per gateway is kept for the console."""
    _check_scope(gateway.scope, report.gateway_id)
    await record_gateway_status(session=session, report=report, now=dt.datetime.now(dt.UTC))
    return Response(status_code=204)
