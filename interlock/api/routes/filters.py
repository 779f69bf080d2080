"""The filter that usage, daily usage, costs and traces share: one set of query parameters, one scope rule."""

from __future__ import annotations

import dataclasses
import datetime as dt
from typing import Annotated

from fastapi import Depends

from interlock.api.crud.usage import UsageFilter
from interlock.api.deps import CallerDep
from interlock.api.errors import InvalidError
from interlock.api.routes.params import FilterQuery, MomentQuery

__all__ = ["UsageFilterDep", "checked_window", "with_window"]


def checked_window(filters: UsageFilter) -> UsageFilter:
    if filters.since is not None and filters.until is not None and filters.since >= filters.until:
        raise InvalidError("since must be before until")
    return filters


def usage_filter(
    caller: CallerDep,
    tenant_id: FilterQuery = None,
    key_id: FilterQuery = None,
    route: FilterQuery = None,
    model: FilterQuery = None,
    backend: FilterQuery = None,
    since: MomentQuery = None,
    until: MomentQuery = None,
) -> UsageFilter:
    """The query's filter, always within the caller's scope (a tenant key sees its own tenant only)."""
    return checked_window(
        UsageFilter(
            tenant_id=tenant_id,
            scope_tenant_id=caller.scope_tenant_id,
            key_id=key_id,
            route=route,
            model=model,
            backend=backend,
            since=since,
            until=until,
        )
    )


UsageFilterDep = Annotated[UsageFilter, Depends(usage_filter)]


def with_window(filters: UsageFilter, since: dt.datetime, until: dt.datetime) -> UsageFilter:
    """The filter over another time window (costs default to this month), checked again."""
    return checked_window(dataclasses.replace(filters, since=since, until=until))
