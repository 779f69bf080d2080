"""``Policy``: one control-plane snapshot, indexed for the hot path.

A snapshot is turned into a Policy once, when it arrives; requests then only look things up. Keys are found by
their lookup prefix and confirmed by a constant-time comparison of SHA-256 digests, so the plaintext key is never
stored. Every key's ``Principal`` is built here, so authenticating allocates nothing. A Policy never changes:
a new snapshot makes a new one, and requests in flight keep the one they started with.
"""

from __future__ import annotations

import datetime as dt
import hmac
import math
from dataclasses import dataclass, field
from typing import Literal

from interlock.contract.controlplane import PriceRecord, QuotaRecord, Snapshot, TenantRecord
from interlock.gatewayconfig.model import ModelPrice

Priority = Literal["critical", "standard", "sheddable"]

__all__ = ["UNLIMITED", "KeyEntry", "Policy", "Principal", "TenantPolicy", "seconds_to_month_end"]


@dataclass(frozen=True, slots=True)
class TenantPolicy:
    """A tenant's limits and spend as of one snapshot; 0 means unlimited, a budget of None too."""

    id: str
    name: str
    requests_per_minute: int = 0
    tokens_per_minute: int = 0
    max_concurrency: int = 0
    monthly_budget_usd: float | None = None
    spent_usd: float = 0.0
    priority: Priority = "standard"
    """The tenant's class in a saturated pool's queue where the Route sets none."""

    @classmethod
    def from_record(cls, record: TenantRecord) -> TenantPolicy:
        quota: QuotaRecord = record.quota
        return cls(
            id=record.id,
            name=record.name,
            requests_per_minute=max(0, quota.requests_per_minute),
            tokens_per_minute=max(0, quota.tokens_per_minute),
            max_concurrency=max(0, quota.max_concurrency),
            monthly_budget_usd=quota.monthly_budget_usd,
            spent_usd=record.spent_usd,
            priority=quota.priority,
        )


UNLIMITED = TenantPolicy(id="default", name="default")
"""The tenant of keys that do not come from the control plane (``api_keys``)."""


@dataclass(frozen=True, slots=True)
class Principal:
    """Who is calling: the key, its tenant (``tenant`` is the name, used for route allow-lists and metric labels)
    and the tenant's limits as of the policy that authenticated the request."""

    tenant: str
    key_id: str
    tenant_id: str = ""
    limits: TenantPolicy = field(default=UNLIMITED, compare=False)


@dataclass(frozen=True, slots=True)
class KeyEntry:
    digest: bytes
    """SHA-256 of the whole key."""
    principal: Principal
    expires_at: float | None
    """Unix time; None never expires."""


_NO_KEYS: tuple[KeyEntry, ...] = ()


def _price(record: PriceRecord) -> ModelPrice:
    cached = record.cached_input_per_million
    return ModelPrice(
        input_per_million=record.input_per_million,
        output_per_million=record.output_per_million,
        cached_input_per_million=record.input_per_million if cached is None else cached,
    )


@dataclass(frozen=True, slots=True)
class Policy:
    version: str
    ingested_seq: int
    """The highest ``seq`` of this gateway's own usage events already counted in the tenants' ``spent_usd``."""
    keys: dict[str, tuple[KeyEntry, ...]]
    """Lookup prefix (the 8 characters after ``sk-il-``) -> the keys that share it."""
    tenants: dict[str, TenantPolicy]
    prices: dict[tuple[str, str], ModelPrice]
    """(backend, upstream model) -> price override."""

    @classmethod
    def from_snapshot(cls, snapshot: Snapshot) -> Policy:
        tenants = {t.id: TenantPolicy.from_record(t) for t in snapshot.tenants}
        keys: dict[str, list[KeyEntry]] = {}
        for key in snapshot.keys:
            tenant = tenants.get(key.tenant_id)
            if tenant is None:  # a key of a tenant the snapshot does not carry cannot be limited: not valid
                continue
            try:
                digest = bytes.fromhex(key.sha256)
            except ValueError:
                continue
            expires = key.expires_at.timestamp() if key.expires_at is not None else None
            principal = Principal(tenant=tenant.name, key_id=key.id, tenant_id=tenant.id, limits=tenant)
            keys.setdefault(key.prefix, []).append(KeyEntry(digest, principal, expires))
        prices = {(p.backend, p.model): _price(p) for p in snapshot.prices}
        return cls(
            version=snapshot.version,
            ingested_seq=snapshot.ingested_seq,
            keys={prefix: tuple(entries) for prefix, entries in keys.items()},
            tenants=tenants,
            prices=prices,
        )

    def find(self, prefix: str, digest: bytes, now: float) -> Principal | None:
        """The principal of a key, given its lookup prefix and SHA-256; None when unknown or expired."""
        for entry in self.keys.get(prefix, _NO_KEYS):
            if hmac.compare_digest(entry.digest, digest):
                expires = entry.expires_at
                return entry.principal if expires is None or now < expires else None
        return None

    def price(self, backend: str, model: str, compiled: ModelPrice | None) -> ModelPrice | None:
        """The price override for (backend, model) when the snapshot has one, else the compiled price."""
        if not self.prices:
            return compiled
        return self.prices.get((backend, model), compiled)


def seconds_to_month_end(now: float) -> int:
    """Whole seconds until the next calendar month (UTC) begins, when monthly budgets reset; at least 1."""
    today = dt.datetime.fromtimestamp(now, dt.UTC)
    year, month = (today.year + 1, 1) if today.month == 12 else (today.year, today.month + 1)
    start = dt.datetime(year, month, 1, tzinfo=dt.UTC)
    return max(1, math.ceil(start.timestamp() - now))
