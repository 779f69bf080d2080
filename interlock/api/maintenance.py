"""The API's background upkeep: next months' usage partitions ready, retention applied, and the snapshot's
config change log pruned to ``CONFIG_CHANGES_KEPT`` (a gateway further behind gets a full snapshot); and, more
often, the raw usage rows of the last minutes folded into the rollups kept that way (``interlock.api.crud.fold``).

Every API process runs it (each step is idempotent, so replicas may overlap); a failure is logged and retried at
the next interval, never fatal: ingest creates a missing partition itself.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import logging
from collections.abc import Awaitable, Callable

from sqlalchemy.ext.asyncio import AsyncEngine

from interlock.api.crud.fold import fold_tenant_latency
from interlock.api.crud.partitions import apply_retention, prepare_months_ahead
from interlock.api.crud.snapshot import prune_config_changes
from interlock.api.settings import ApiSettings
from interlock.db.session import create_sessionmaker

__all__ = ["fold_rollups", "maintain_once", "maintain_usage_storage"]

log = logging.getLogger("interlock.api")

CONFIG_CHANGES_KEPT = dt.timedelta(days=1)


async def maintain_once(engine: AsyncEngine, settings: ApiSettings) -> None:
    now = dt.datetime.now(dt.UTC)
    await prepare_months_ahead(engine, now=now)
    dropped = await apply_retention(engine, now=now, keep_months=settings.usage_retention_months)
    async with create_sessionmaker(engine)() as session:
        await prune_config_changes(session=session, older_than=now - CONFIG_CHANGES_KEPT)
    if dropped:
        log.info("usage retention dropped months %s", ", ".join(f"{y:04d}-{m:02d}" for y, m in dropped))


async def _every(interval_s: float, what: str, step: Callable[[], Awaitable[object]]) -> None:
    """Run ``step`` now and every ``interval_s`` after, for ever; a failure is logged and retried next time."""
    while True:
        try:
            await step()
        except Exception:
            log.warning("%s failed; retrying in %.0f s", what, interval_s, exc_info=True)
        await asyncio.sleep(interval_s)


async def maintain_usage_storage(engine: AsyncEngine, settings: ApiSettings) -> None:
    await _every(settings.maintenance_interval_s, "usage storage maintenance", lambda: maintain_once(engine, settings))


async def fold_rollups(engine: AsyncEngine, settings: ApiSettings) -> None:
    await _every(
        settings.rollup_fold_interval_s,
        "folding usage into the rollups",
        lambda: fold_tenant_latency(engine, now=dt.datetime.now(dt.UTC)),
    )
