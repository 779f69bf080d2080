"""A small, real control plane for gateway tests: it speaks ``interlock.contract.controlplane`` over HTTP and keeps its
state in memory, so a test can stop its server (an outage the gateway sees as refused connections), start it
again on the same port, and read exactly which usage events arrived and how often.

It follows the contract's rules: a strong ETag per snapshot content and 304 on ``If-None-Match``, active keys only
(not revoked, not expired), this month's spend per tenant, ``ingested_seq`` per gateway, idempotent usage
ingestion by ``idempotency_id``, events judged one by one (a ``gateway_id`` outside the credential's scope is
rejected alone), and a real gateway credential (``interlock.contract.gatewaycred``) on both endpoints.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import secrets
from dataclasses import dataclass, field
from typing import Any

import orjson
from pydantic import ValidationError
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from interlock.asgiserver import EmbeddedServer
from interlock.contract import (
    GATEWAY_SNAPSHOT_PATH,
    GATEWAY_USAGE_PATH,
    KEY_PREFIX,
    KeyRecord,
    PriceRecord,
    QuotaRecord,
    Snapshot,
    TenantRecord,
    UsageBatch,
    UsageEvent,
)
from interlock.contract.controlplane import GATEWAY_STATUS_PATH, GatewayStatusReport
from interlock.contract.gatewaycred import gateway_id_in_scope, mint_gateway_credential, verify_gateway_credential

__all__ = ["SCOPE", "SIGNING_KEY", "TOKEN", "ContractServer", "gateway_id"]

SIGNING_KEY = b"contract-server-signing-key-0123456789"
SCOPE = "tests/gw"
TOKEN = mint_gateway_credential(SIGNING_KEY, SCOPE)
"""The credential of the gateways under test: gateway ids ``tests/gw/<name>`` (``gateway_id(name)``)."""


def gateway_id(name: str) -> str:
    return f"{SCOPE}/{name}"


@dataclass
class _Key:
    record: KeyRecord
    revoked: bool = False


@dataclass
class ContractServer:
    """State plus an HTTP server on a fixed port (chosen at the first start) that can be stopped and restarted."""

    tenants: dict[str, TenantRecord] = field(default_factory=dict)
    keys: dict[str, _Key] = field(default_factory=dict)
    prices: list[PriceRecord] = field(default_factory=list)
    events: dict[str, UsageEvent] = field(default_factory=dict)
    """idempotency id -> the event, counted once."""
    posts: int = 0
    duplicates: int = 0
    rejected: int = 0
    snapshot_gets: int = 0
    fail_usage_posts: int = 0
    """Answer this many usage posts with 503 (after ingesting nothing)."""
    ack_lost: int = 0
    """Ingest this many usage posts but answer 500, as if the acknowledgement was lost on the way back."""
    status_reports: list[GatewayStatusReport] = field(default_factory=list)
    """Every status report received, oldest first."""
    port: int = 0
    _server: EmbeddedServer | None = None

    # --- admin side (what A's API does over HTTP) -------------------------------------------------------

    def add_tenant(self, name: str, **quota: Any) -> str:
        tenant_id = f"t_{len(self.tenants) + 1}"
        self.tenants[tenant_id] = TenantRecord(id=tenant_id, name=name, quota=QuotaRecord(**quota))
        return tenant_id

    def set_quota(self, tenant_id: str, **quota: Any) -> None:
        tenant = self.tenants[tenant_id]
        self.tenants[tenant_id] = tenant.model_copy(update={"quota": QuotaRecord(**quota)})

    def add_key(self, tenant_id: str, *, expires_at: dt.datetime | None = None) -> tuple[str, str]:
        """A new key for the tenant: (key id, plaintext key)."""
        plaintext = KEY_PREFIX + secrets.token_urlsafe(32)
        key_id = f"k_{len(self.keys) + 1}"
        record = KeyRecord(
            id=key_id,
            tenant_id=tenant_id,
            prefix=plaintext[len(KEY_PREFIX) : len(KEY_PREFIX) + 8],
            sha256=hashlib.sha256(plaintext.encode()).hexdigest(),
            expires_at=expires_at,
        )
        self.keys[key_id] = _Key(record)
        return key_id, plaintext

    def revoke(self, key_id: str) -> None:
        self.keys[key_id].revoked = True

    def spent(self, tenant_id: str) -> float:
        month = dt.datetime.now(dt.UTC).replace(day=1, hour=0, minute=0, second=0, microsecond=0)
        return sum(e.cost_usd for e in self.events.values() if e.tenant_id == tenant_id and e.started_at >= month)

    def ingested_seq(self, gateway_id: str) -> int:
        return max((e.seq for e in self.events.values() if e.gateway_id == gateway_id), default=0)

    def snapshot(self, gateway_id: str) -> Snapshot:
        now = dt.datetime.now(dt.UTC)
        tenants = [t.model_copy(update={"spent_usd": self.spent(t.id)}) for t in self.tenants.values()]
        keys = [
            k.record
            for k in self.keys.values()
            if not k.revoked and (k.record.expires_at is None or k.record.expires_at > now)
        ]
        content = orjson.dumps(
            [
                [t.model_dump(mode="json") for t in tenants],
                [k.model_dump(mode="json") for k in keys],
                [p.model_dump(mode="json") for p in self.prices],
                self.ingested_seq(gateway_id),
            ]
        )
        version = hashlib.sha256(content).hexdigest()[:16]
        return Snapshot(
            version=version,
            generated_at=now,
            tenants=tenants,
            keys=keys,
            prices=self.prices,
            ingested_seq=self.ingested_seq(gateway_id),
        )

    # --- the contract over HTTP --------------------------------------------------------------------------

    signing_key: bytes = SIGNING_KEY
    """What the gateways' credentials are verified with (a test may give its own)."""

    def _scope(self, request: Request) -> str | None:
        authorization = request.headers.get("authorization", "")
        if not authorization.startswith("Bearer "):
            return None
        return verify_gateway_credential(self.signing_key, authorization.removeprefix("Bearer "))

    async def _snapshot(self, request: Request) -> Response:
        scope = self._scope(request)
        if scope is None:
            return JSONResponse({"detail": "bad gateway credential"}, status_code=401)
        gateway_id = request.query_params.get("gateway_id")
        if not gateway_id:
            return JSONResponse({"detail": "gateway_id is required"}, status_code=422)
        if not gateway_id_in_scope(scope, gateway_id):
            return JSONResponse({"detail": "gateway_id outside the credential's scope"}, status_code=403)
        self.snapshot_gets += 1
        snapshot = self.snapshot(gateway_id)
        etag = f'"{snapshot.version}"'
        if request.headers.get("if-none-match") == etag:
            return Response(status_code=304, headers={"etag": etag})
        return Response(snapshot.model_dump_json(), media_type="application/json", headers={"etag": etag})

    async def _usage(self, request: Request) -> Response:
        scope = self._scope(request)
        if scope is None:
            return JSONResponse({"detail": "bad gateway credential"}, status_code=401)
        self.posts += 1
        if self.fail_usage_posts:
            self.fail_usage_posts -= 1
            return JSONResponse({"detail": "try again"}, status_code=503)
        try:
            batch = UsageBatch.model_validate_json(await request.body())
        except ValidationError as exc:
            return JSONResponse({"detail": exc.errors(include_url=False, include_context=False)}, status_code=422)
        accepted = duplicates = 0
        rejected: list[dict[str, Any]] = []
        for index, event in enumerate(batch.events):
            if not gateway_id_in_scope(scope, event.gateway_id):
                rejected.append({"index": index, "seq": event.seq, "reason": "outside the credential's scope"})
            elif event.idempotency_id in self.events:
                duplicates += 1
            else:
                self.events[event.idempotency_id] = event
                accepted += 1
        self.duplicates += duplicates
        if self.ack_lost:
            self.ack_lost -= 1
            return JSONResponse({"detail": "lost"}, status_code=500)
        self.rejected += len(rejected)
        return JSONResponse({"accepted": accepted, "duplicates": duplicates, "rejected": rejected})

    async def _status(self, request: Request) -> Response:
        scope = self._scope(request)
        if scope is None:
            return JSONResponse({"detail": "bad gateway credential"}, status_code=401)
        report = GatewayStatusReport.model_validate_json(await request.body())
        if not gateway_id_in_scope(scope, report.gateway_id):
            return JSONResponse({"detail": "gateway_id outside the credential's scope"}, status_code=403)
        self.status_reports.append(report)
        return Response(status_code=204)

    def app(self) -> Starlette:
        return Starlette(
            routes=[
                Route(GATEWAY_SNAPSHOT_PATH, self._snapshot, methods=["GET"]),
                Route(GATEWAY_USAGE_PATH, self._usage, methods=["POST"]),
                Route(GATEWAY_STATUS_PATH, self._status, methods=["POST"]),
            ]
        )

    async def start(self) -> str:
        server = EmbeddedServer(self.app(), port=self.port, lifespan="off")
        await server.start()
        self.port = server.port
        self._server = server
        return server.url

    async def stop(self) -> None:
        if self._server is not None:
            await self._server.stop()
            self._server = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"
