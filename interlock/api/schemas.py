"""API schemas (``XCreate`` / ``XUpdate`` / ``XPublic`` / ``XsPublic``), separate from the ORM models.

Every input is bounded (lengths, ranges, decimal places, no control characters), so bad input is a 422 with
a message and never reaches the database as something it would refuse with a 500. Money is ``Decimal`` and
goes out as a JSON string (``"0.000123000"``): exact, unlike a float.
"""

from __future__ import annotations

import datetime as dt
from decimal import Decimal
from typing import Annotated, Any, Literal, NotRequired

from pydantic import AfterValidator, BaseModel, ConfigDict, Field, StringConstraints, field_validator
from typing_extensions import TypedDict  # pydantic needs it for TypedDicts before Python 3.12 (its own dependency)

from interlock.contract.controlplane import SpanRecord, UsageEvent

__all__ = [
    "PRINTABLE",
    "Cost",
    "CostsPublic",
    "DailyUsage",
    "DailyUsagesPublic",
    "KeyCreate",
    "KeyCreated",
    "KeyPublic",
    "KeysPublic",
    "Label",
    "Moment",
    "Name",
    "PriceCreate",
    "PricePublic",
    "PriceUpdate",
    "PricesPublic",
    "QuotaPublic",
    "QuotaUpdate",
    "SpanPublic",
    "SpanWire",
    "TenantCreate",
    "TenantPublic",
    "TenantUpdate",
    "TenantsPublic",
    "TracePublic",
    "TraceSummary",
    "TracesPublic",
    "UsageBatchIn",
    "UsageEventIn",
    "UsageEventWire",
    "UsagePublic",
    "UsageTotals",
    "UsagesPublic",
    "usage_window",
]

PRINTABLE = r"^[^\x00-\x1f\x7f]*$"
"""No control characters (a NUL, for one, is refused by Postgres in any text: a 500, not a 422)."""
Name = Annotated[
    str,
    StringConstraints(strip_whitespace=True, min_length=1, max_length=128, pattern=r"^[A-Za-z0-9][A-Za-z0-9._-]*$"),
]
"""Tenant names: letters, digits, ``.``, ``_``, ``-``; starting with a letter or digit."""
Label = Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=128, pattern=PRINTABLE)]
"""Free text (key names, backend and model names in filters): no control characters."""
ModelName = Annotated[str, StringConstraints(min_length=1, max_length=256, pattern=PRINTABLE)]
Limit = Annotated[int, Field(ge=0, le=2**31 - 1, description="0: unlimited.")]
PerMillion = Annotated[Decimal, Field(ge=0, le=1_000_000, max_digits=16, decimal_places=9, allow_inf_nan=False)]
Usd = Annotated[Decimal, Field(ge=0, le=10**10, max_digits=20, decimal_places=9, allow_inf_nan=False)]


class _In(BaseModel):
    model_config = ConfigDict(extra="forbid")


class _Out(BaseModel):
    model_config = ConfigDict(from_attributes=True)


def _utc_moment(value: dt.datetime) -> dt.datetime:
    """In UTC (naive means UTC), within years 1970-9000 so that no arithmetic on it can overflow."""
    try:
        value = value.replace(tzinfo=dt.UTC) if value.tzinfo is None else value.astimezone(dt.UTC)
    except OverflowError as exc:
        raise ValueError("date out of range") from exc
    if not 1970 <= value.year <= 9000:
        raise ValueError("date out of range (years 1970 to 9000)")
    return value


Moment = Annotated[dt.datetime, AfterValidator(_utc_moment)]
"""A point in time, normalised to UTC; a naive one is taken as UTC."""

USAGE_PAST = dt.timedelta(days=5 * 366)
USAGE_FUTURE = dt.timedelta(days=31)


def _usage_moment(value: dt.datetime) -> dt.datetime:
    """Within five years before and a month after now: each month of usage is a database partition, so a
    gateway's clock (or a forged event) must not be able to make an unbounded number of them."""
    value = _utc_moment(value)
    lo, hi = usage_window(dt.datetime.now(dt.UTC))
    if not lo <= value <= hi:
        raise ValueError("outside the accepted window (five years ago to a month ahead)")
    return value


UsageMoment = Annotated[dt.datetime, AfterValidator(_usage_moment)]


# --- quotas -------------------------------------------------------------------------------------------------

QuotaPriority = Literal["critical", "standard", "sheddable"]


class QuotaUpdate(_In):
    """The whole quota (PUT): fields left out are unlimited."""

    requests_per_minute: Limit = 0
    tokens_per_minute: Limit = 0
    max_concurrency: Limit = 0
    monthly_budget_usd: Usd | None = Field(default=None, description="USD per calendar month (UTC); null: none.")
    priority: QuotaPriority = Field(
        default="standard",
        description="The tenant's class when a self-hosted pool is saturated: critical is let in before standard; "
        "sheddable is refused at once (503 with Retry-After). A Route's own spec.priority wins over it.",
    )


class QuotaPublic(_Out):
    tenant_id: str
    requests_per_minute: int = 0
    tokens_per_minute: int = 0
    max_concurrency: int = 0
    monthly_budget_usd: Decimal | None = None
    priority: QuotaPriority = "standard"
    spent_this_month_usd: Decimal = Decimal(0)


# --- tenants ------------------------------------------------------------------------------------------------


class TenantCreate(_In):
    name: Name


class TenantUpdate(_In):
    name: Name | None = None


class TenantPublic(_Out):
    id: str
    name: str
    created_at: dt.datetime
    updated_at: dt.datetime


class TenantsPublic(BaseModel):
    data: list[TenantPublic]
    next_cursor: str | None = None


# --- keys ---------------------------------------------------------------------------------------------------


class KeyCreate(_In):
    name: Label
    expires_at: Moment | None = Field(default=None, description="When the key stops working (UTC if naive).")

    @field_validator("expires_at")
    @classmethod
    def _future(cls, value: dt.datetime | None) -> dt.datetime | None:
        if value is not None and value <= dt.datetime.now(dt.UTC):
            raise ValueError("expires_at must be in the future")
        return value


class KeyPublic(_Out):
    id: str
    tenant_id: str
    name: str
    prefix: str = Field(description="The 8 characters after sk-il-, to recognise the key; never the key itself.")
    created_at: dt.datetime
    expires_at: dt.datetime | None
    revoked_at: dt.datetime | None


class KeyCreated(KeyPublic):
    key: str = Field(description="The key itself. Shown this once: store it now.")


class KeysPublic(BaseModel):
    data: list[KeyPublic]


# --- prices -------------------------------------------------------------------------------------------------


class PriceCreate(_In):
    backend: Label
    model: ModelName
    input_per_million: PerMillion
    output_per_million: PerMillion
    cached_input_per_million: PerMillion | None = None


class PriceUpdate(_In):
    input_per_million: PerMillion | None = None
    output_per_million: PerMillion | None = None
    cached_input_per_million: PerMillion | None = None


class PricePublic(_Out):
    id: str
    backend: str
    model: str
    input_per_million: Decimal
    output_per_million: Decimal
    cached_input_per_million: Decimal | None
    created_at: dt.datetime
    updated_at: dt.datetime


class PricesPublic(BaseModel):
    data: list[PricePublic]


# --- usage, costs, traces -----------------------------------------------------------------------------------


class UsagePublic(_Out):
    id: int
    idempotency_id: str
    gateway_id: str
    seq: int
    started_at: dt.datetime
    tenant_id: str
    key_id: str
    route: str
    backend: str
    model: str
    status: int
    input_tokens: int
    output_tokens: int
    cached_tokens: int
    cache_creation_tokens: int
    usage_estimated: bool
    spilled_over: bool = False
    cost_usd: Decimal
    latency_ms: float
    ttft_ms: float | None
    trace_id: str


class UsageTotals(BaseModel):
    requests: int = 0
    input_tokens: int = 0
    output_tokens: int = 0
    cached_tokens: int = 0
    cache_creation_tokens: int = 0
    cost_usd: Decimal = Decimal(0)


class UsagesPublic(BaseModel):
    data: list[UsagePublic]
    totals: UsageTotals
    next_cursor: str | None = Field(default=None, description="Pass as `cursor` for the next page; null: last page.")


class _Grouped(UsageTotals):
    """Totals of one group; the dimensions not grouped by are null."""

    tenant_id: str | None = None
    key_id: str | None = None
    route: str | None = None
    model: str | None = None
    backend: str | None = None


class DailyUsage(_Grouped):
    day: dt.date


class DailyUsagesPublic(BaseModel):
    data: list[DailyUsage]
    totals: UsageTotals


class Cost(_Grouped):
    pass


class CostsPublic(BaseModel):
    since: dt.datetime
    until: dt.datetime
    group_by: list[str]
    data: list[Cost] = Field(description="One page of groups, most expensive first (ties: by the group values).")
    totals: UsageTotals = Field(description="Over every group of the window, not only this page.")
    next_cursor: str | None = Field(default=None, description="Pass as `cursor` for the next page; null: last page.")


class SpanPublic(_Out):
    name: str
    start_ms: float
    duration_ms: float
    attributes: dict[str, Any]


class TraceSummary(_Out):
    trace_id: str
    usage_id: int
    tenant_id: str
    key_id: str
    route: str
    backend: str
    model: str
    status: int
    started_at: dt.datetime
    latency_ms: float
    ttft_ms: float | None
    cost_usd: Decimal


class TracesPublic(BaseModel):
    data: list[TraceSummary]
    next_cursor: str | None = None


class TracePublic(TraceSummary):
    spans: list[SpanPublic]


# --- usage batches from gateways: the contract's models, bounded so no value can fail in the database -----------

_Count = Annotated[int, Field(ge=0, le=2**53)]
_Text = Annotated[str, StringConstraints(max_length=1024)]
_Ms = Annotated[float, Field(ge=0, le=1e12, allow_inf_nan=False)]
_AttributeValue = Annotated[str, StringConstraints(max_length=4096)] | int | float | bool | None


class SpanIn(SpanRecord):
    name: Annotated[str, StringConstraints(max_length=256)]
    start_ms: Annotated[float, Field(ge=-1e12, le=1e12, allow_inf_nan=False)]
    duration_ms: _Ms
    attributes: dict[Annotated[str, StringConstraints(max_length=256)], _AttributeValue] = Field(
        default_factory=dict, max_length=256
    )


class UsageEventIn(UsageEvent):
    seq: int = Field(ge=1, le=2**62, description="Per-gateway, strictly increasing.")
    started_at: UsageMoment
    tenant_id: _Text
    key_id: _Text
    route: _Text
    backend: _Text
    model: _Text
    trace_id: _Text
    status: int = Field(ge=0, le=999)
    input_tokens: _Count
    output_tokens: _Count
    cached_tokens: _Count = 0
    cache_creation_tokens: _Count = 0
    cost_usd: float = Field(ge=0, le=1e9, allow_inf_nan=False)
    latency_ms: _Ms
    ttft_ms: _Ms | None = None
    spans: list[SpanIn] = Field(default_factory=list, max_length=256)  # type: ignore[assignment]


class SpanWire(TypedDict):
    """``SpanIn`` as a plain dict: the same fields and bounds (a missing ``attributes`` is empty), made without a
    model instance per span, which was half the cost of validating a batch."""

    name: Annotated[str, StringConstraints(max_length=256)]
    start_ms: Annotated[float, Field(ge=-1e12, le=1e12, allow_inf_nan=False)]
    duration_ms: _Ms
    attributes: NotRequired[
        Annotated[dict[Annotated[str, StringConstraints(max_length=256)], _AttributeValue], Field(max_length=256)]
    ]


class UsageEventWire(UsageEventIn):
    """``UsageEventIn`` validated in Rust alone, straight from a batch's bytes, as ingest takes it: ``started_at``
    is any datetime here, and ingest checks the accepted window (``usage_window``) for the whole batch at once, with
    one clock read; spans are ``SpanWire`` dicts."""

    started_at: dt.datetime
    spans: list[SpanWire] = Field(default_factory=list, max_length=256)  # type: ignore[assignment]


def usage_window(now: dt.datetime) -> tuple[dt.datetime, dt.datetime]:
    """The ``started_at`` a usage event may have (aware UTC bounds, inclusive)."""
    return now - USAGE_PAST, now + USAGE_FUTURE


class UsageBatchIn(BaseModel):
    """A batch of usage events. Each item should be a ``UsageEventIn``; items are judged one by one, so an invalid
    one is rejected alone (see ``UsageBatchResult.rejected``) instead of failing the batch."""

    events: list[Any] = Field(
        max_length=5000, description="UsageEvent objects (interlock.contract.controlplane), in seq order."
    )
