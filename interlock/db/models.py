"""ORM models of the control plane (SQLAlchemy 2, ``Mapped[...]``). API schemas live in ``interlock.api.schemas``.

The usage ledger (``usage``, ``spans``, ``gateway_cursors``, and the rollups) has no foreign keys to tenants or
keys on purpose: it records what the gateways metered, including break-glass keys and tenants deleted later, and
must never refuse (or lose) an event because the admin tables changed.

On Postgres ``usage`` and ``spans`` are partitioned by month of ``started_at`` (declarative range partitioning,
``interlock.api.crud.partitions``), so retention drops whole partitions; their primary keys there are
``(id, started_at)`` (a partitioned table's unique keys must hold the partition key), which is why a span points
at its usage row by ``usage_id`` without a foreign key and carries the row's ``started_at``. On SQLite they are
plain tables. Since migration ``c5e8a1f3b7d2`` a row's spans are a JSON column of the row (``Usage.spans``): one
row and its index entries per event instead of one per span; ``spans`` holds those of older rows. The rollups
(``interlock.db.rollups``) are registered on the same metadata.
"""

from __future__ import annotations

import datetime as dt
import uuid
from decimal import Decimal
from typing import Any

from sqlalchemy import (
    JSON,
    BigInteger,
    Boolean,
    Float,
    ForeignKey,
    Index,
    Integer,
    String,
    Text,
    UniqueConstraint,
    false,
    func,
)
from sqlalchemy.orm import Mapped, mapped_column, relationship

from interlock.db import rollups as _rollups  # noqa: F401  (registers the rollup tables on the metadata)
from interlock.db.base import Base

__all__ = [
    "ApiKey",
    "ConfigChange",
    "ConsoleSession",
    "GatewayCursor",
    "GatewayStatus",
    "Price",
    "Quota",
    "Span",
    "Tenant",
    "Usage",
    "UsageDeadLetter",
    "new_id",
]

_BigId = BigInteger().with_variant(Integer(), "sqlite")  # SQLite autoincrements only INTEGER PRIMARY KEY


def new_id() -> str:
    return str(uuid.uuid4())


def _utcnow() -> dt.datetime:
    return dt.datetime.now(dt.UTC)


class Tenant(Base):
    __tablename__ = "tenants"

    id: Mapped[str] = mapped_column(String(36), primary_key=True, default=new_id)
    name: Mapped[str] = mapped_column(String(128), unique=True)
    created_at: Mapped[dt.datetime] = mapped_column(default=_utcnow)
    updated_at: Mapped[dt.datetime] = mapped_column(default=_utcnow, onupdate=_utcnow)

    keys: Mapped[list[ApiKey]] = relationship(
        back_populates="tenant", cascade="all, delete-orphan", passive_deletes=True
    )
    quota: Mapped[Quota | None] = relationship(cascade="all, delete-orphan", passive_deletes=True, lazy="selectin")


class ApiKey(Base):
    __tablename__ = "api_keys"
    __table_args__ = (Index("ix_api_keys_newest", "created_at", "id"),)
    """The console lists the newest keys first (ties by id, descending): read backwards off this index, 500 of them
    cost 500 entries."""

    id: Mapped[str] = mapped_column(String(36), primary_key=True, default=new_id)
    tenant_id: Mapped[str] = mapped_column(ForeignKey("tenants.id", ondelete="CASCADE"), index=True)
    name: Mapped[str] = mapped_column(String(128))
    prefix: Mapped[str] = mapped_column(String(8), index=True)
    """The (up to) 8 characters after ``sk-il-``: where the lookup starts."""
    sha256: Mapped[str] = mapped_column(String(64), unique=True)
    created_at: Mapped[dt.datetime] = mapped_column(default=_utcnow)
    expires_at: Mapped[dt.datetime | None]
    revoked_at: Mapped[dt.datetime | None]

    tenant: Mapped[Tenant] = relationship(back_populates="keys")


class Quota(Base):
    """Per-tenant limits; 0 means unlimited, and so does a NULL budget."""

    __tablename__ = "quotas"

    tenant_id: Mapped[str] = mapped_column(ForeignKey("tenants.id", ondelete="CASCADE"), primary_key=True)
    requests_per_minute: Mapped[int] = mapped_column(default=0)
    tokens_per_minute: Mapped[int] = mapped_column(default=0)
    max_concurrency: Mapped[int] = mapped_column(default=0)
    monthly_budget_usd: Mapped[Decimal | None]
    priority: Mapped[str] = mapped_column(String(16), default="standard", server_default="standard")
    """critical, standard or sheddable: the tenant's class in a saturated pool's queue (``Route.spec.priority``
    wins when set)."""
    updated_at: Mapped[dt.datetime] = mapped_column(default=_utcnow, onupdate=_utcnow)


class Price(Base):
    """A price override for (backend, model) in USD per million tokens; wins over the manifests' prices."""

    __tablename__ = "prices"
    __table_args__ = (UniqueConstraint("backend", "model"),)

    id: Mapped[str] = mapped_column(String(36), primary_key=True, default=new_id)
    backend: Mapped[str] = mapped_column(String(128))
    model: Mapped[str] = mapped_column(String(256))
    input_per_million: Mapped[Decimal]
    output_per_million: Mapped[Decimal]
    cached_input_per_million: Mapped[Decimal | None]
    created_at: Mapped[dt.datetime] = mapped_column(default=_utcnow)
    updated_at: Mapped[dt.datetime] = mapped_column(default=_utcnow, onupdate=_utcnow)


class Usage(Base):
    """One metered request. ``(idempotency_id, started_at)`` is UNIQUE (the partition key must be part of it): a
    resent event, which a gateway's journal sends again byte for byte, is never counted twice."""

    __tablename__ = "usage"
    __table_args__ = (
        UniqueConstraint("idempotency_id", "started_at"),
        Index("ix_usage_tenant_id_started_at", "tenant_id", "started_at"),
        Index("ix_usage_started_at", "started_at"),
        # Hash on Postgres: a trace is only ever looked up by equality, and a traced request's id is random, so
        # every row went to a random leaf of a B-tree of 32-character keys; the hash index keeps 4 bytes a row
        # (54 against 86 MB at scale 0.1) and ingest spends less on it (migration e9b2c4d6f1a3).
        Index("ix_usage_trace_id", "trace_id", postgresql_using="hash"),
    )

    id: Mapped[int] = mapped_column(_BigId, primary_key=True, autoincrement=True)
    idempotency_id: Mapped[str] = mapped_column(String(64))
    gateway_id: Mapped[str] = mapped_column(String(128))
    seq: Mapped[int] = mapped_column(BigInteger)
    started_at: Mapped[dt.datetime]
    tenant_id: Mapped[str] = mapped_column(String)
    key_id: Mapped[str] = mapped_column(String, index=True)
    route: Mapped[str] = mapped_column(String)
    backend: Mapped[str] = mapped_column(String)
    model: Mapped[str] = mapped_column(String)
    status: Mapped[int]
    input_tokens: Mapped[int] = mapped_column(BigInteger)
    output_tokens: Mapped[int] = mapped_column(BigInteger)
    cached_tokens: Mapped[int] = mapped_column(BigInteger)
    cache_creation_tokens: Mapped[int] = mapped_column(BigInteger)
    usage_estimated: Mapped[bool] = mapped_column(Boolean)
    spilled_over: Mapped[bool] = mapped_column(Boolean, server_default=false())
    latency_rolled: Mapped[bool] = mapped_column(Boolean, server_default=false())
    """Ingest added this row to ``tenant_latency_daily`` itself (it started before the fold's claim; or the rollup
    is kept at ingest): the fold must not add it again (``interlock.api.crud.fold``)."""
    cost_usd: Mapped[Decimal]
    latency_ms: Mapped[float] = mapped_column(Float)
    ttft_ms: Mapped[float | None] = mapped_column(Float)
    trace_id: Mapped[str] = mapped_column(String)
    ingested_at: Mapped[dt.datetime] = mapped_column(server_default=func.current_timestamp())
    spans: Mapped[list[dict[str, Any]] | None] = mapped_column(JSON(none_as_null=True), deferred=True)
    """The request's trace (``UsageEvent.spans``: each span's ``name``, ``start_ms``, ``duration_ms`` and, when the
    gateway sent any, ``attributes``), in order, as one JSON array; NULL when it had none. Rows counted before
    migration ``c5e8a1f3b7d2`` keep theirs in ``spans`` (the table). Deferred: only a trace reads it."""


class Span(Base):
    """One step of a request's trace (auth, route, each upstream attempt, respond), from ``UsageEvent.spans``, of a
    usage row counted before migration ``c5e8a1f3b7d2``: ingest now keeps a row's spans in ``Usage.spans``, and
    traces read this table only for rows without them (``interlock.api.crud.traces``). Nothing writes it any more;
    retention drops its months with the rows'."""

    __tablename__ = "spans"

    id: Mapped[int] = mapped_column(_BigId, primary_key=True, autoincrement=True)
    usage_id: Mapped[int] = mapped_column(_BigId, index=True)
    started_at: Mapped[dt.datetime]
    """The usage row's: the partition key, so retention drops a month's spans with its rows."""
    trace_id: Mapped[str] = mapped_column(String)
    """Not indexed: a trace is found by ``usage.trace_id``, its spans by ``usage_id``."""
    position: Mapped[int]
    name: Mapped[str] = mapped_column(String)
    start_ms: Mapped[float] = mapped_column(Float)
    duration_ms: Mapped[float] = mapped_column(Float)
    attributes: Mapped[dict[str, Any]] = mapped_column(JSON)


class GatewayCursor(Base):
    """The highest ``seq`` ingested from each gateway: the ``ingested_seq`` of its snapshot."""

    __tablename__ = "gateway_cursors"

    gateway_id: Mapped[str] = mapped_column(String(128), primary_key=True)
    seq: Mapped[int] = mapped_column(BigInteger)
    updated_at: Mapped[dt.datetime]


class UsageDeadLetter(Base):
    """A usage event the control plane refused for good, with why: kept for an operator to inspect, never counted.

    The gateway is told (``UsageBatchResult.rejected``) and does not send it again, so it never blocks the events
    after it. Identity fields are NULL when the event was too malformed to have them.
    """

    __tablename__ = "usage_dead_letters"

    id: Mapped[int] = mapped_column(_BigId, primary_key=True, autoincrement=True)
    received_at: Mapped[dt.datetime] = mapped_column(server_default=func.current_timestamp(), index=True)
    scope: Mapped[str] = mapped_column(String(320))
    """The scope of the credential that sent it."""
    gateway_id: Mapped[str | None] = mapped_column(String(256))
    idempotency_id: Mapped[str | None] = mapped_column(String(128))
    seq: Mapped[int | None] = mapped_column(BigInteger)
    reason: Mapped[str] = mapped_column(String(2000))
    event: Mapped[str] = mapped_column(Text)
    """The event as received, as JSON text (cut at 16 KiB)."""


class GatewayStatus(Base):
    """What each gateway last reported about itself (``POST /v1/gateway/status``): loaded config version,
    readiness, and its routes and backends with circuit-breaker state, for the console."""

    __tablename__ = "gateway_status"

    gateway_id: Mapped[str] = mapped_column(String(128), primary_key=True)
    reported_at: Mapped[dt.datetime]
    config_version: Mapped[str | None] = mapped_column(String(128))
    ready: Mapped[bool] = mapped_column(Boolean)
    report: Mapped[dict[str, Any]] = mapped_column(JSON)
    """The report as the gateway sent it (``interlock.contract.controlplane.GatewayStatusReport``), bounded there."""


class ConsoleSession(Base):
    """A console login. The cookie holds a random token; only its SHA-256 is stored, so a database read does not
    give anyone a session. A tenant session names the key it logged in with and ends when that key does."""

    __tablename__ = "console_sessions"

    token_sha256: Mapped[str] = mapped_column(String(64), primary_key=True)
    role: Mapped[str] = mapped_column(String(16))
    tenant_id: Mapped[str | None] = mapped_column(String(36))
    key_id: Mapped[str | None] = mapped_column(String(36))
    csrf_token: Mapped[str] = mapped_column(String(64))
    created_at: Mapped[dt.datetime] = mapped_column(default=_utcnow)
    expires_at: Mapped[dt.datetime] = mapped_column(index=True)


class ConfigChange(Base):
    """One change to what the gateway snapshot carries (a tenant or its quota, a key, a price), written by database
    triggers (so no write path can forget it): ``version`` is the snapshot's version counter, and the rows since a
    version say which objects a delta must carry. Old rows are pruned; a gateway behind them gets a full snapshot."""

    __tablename__ = "config_changes"

    version: Mapped[int] = mapped_column(_BigId, primary_key=True, autoincrement=True)
    kind: Mapped[str] = mapped_column(String(8))
    """``tenant``, ``key`` or ``price``."""
    object_id: Mapped[str] = mapped_column(String(64))
    changed_at: Mapped[dt.datetime] = mapped_column(server_default=func.current_timestamp(), index=True)
