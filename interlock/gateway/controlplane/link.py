"""``ControlPlaneLink``: everything the gateway does with a control plane, started and stopped as one.

The snapshot poller (keys, limits, spend, prices), the spool, the usage recorder and the sender, and the status
reporter (started by the gateway once its config loader runs, since it reports the loaded config). Start order
matters: the spool opens first (its journal tells the highest ``seq`` used, and it holds the last good snapshot),
the snapshot comes next (its ``ingested_seq`` settles the spend ledger and sets the floor of ``seq``), then events
may flow. Stop order is the reverse: the journal is synced and, for up to ``drain_s``, what it holds is sent.
"""

from __future__ import annotations

import logging
import re
import tempfile
import time
from pathlib import Path
from typing import Any

import httpx

from interlock.gateway.controlplane.snapshot import SnapshotSource
from interlock.gateway.controlplane.statusreport import StatusReporter
from interlock.gateway.settings import GatewaySettings
from interlock.gateway.tenancy.policy import Policy
from interlock.gateway.usage.ledger import SpendLedger
from interlock.gateway.usage.recorder import UsageRecorder
from interlock.gateway.usage.sender import UsageSender
from interlock.gateway.usage.spool import AsyncSpool

__all__ = ["ControlPlaneLink", "default_spool_path"]

log = logging.getLogger("interlock.gateway")

_UNSAFE = re.compile(r"[^A-Za-z0-9._-]")


def default_spool_path(gateway_id: str) -> Path:
    return Path(tempfile.gettempdir()) / f"interlock-usage-{_UNSAFE.sub('_', gateway_id)}"


class ControlPlaneLink:
    """See the module docstring. Built from settings with ``control_plane_url`` set."""

    def __init__(
        self, settings: GatewaySettings, *, transport: httpx.AsyncBaseTransport | None = None, drain_s: float = 5.0
    ) -> None:
        if settings.control_plane_url is None:
            raise ValueError("a control-plane link needs control_plane_url")
        token = settings.control_plane_token.get_secret_value() if settings.control_plane_token else None
        self.drain_s = drain_s
        self.spool = AsyncSpool(
            settings.spool_path or default_spool_path(settings.gateway_id),
            sync_interval_s=settings.usage_sync_interval_s,
            max_bytes=settings.usage_spool_max_bytes,
        )
        self.ledger = SpendLedger()
        self.source = SnapshotSource(
            url=settings.control_plane_url,
            gateway_id=settings.gateway_id,
            token=token,
            interval_s=settings.snapshot_interval_s,
            store=self.spool,
            seed_file=settings.snapshot_seed_file,
            transport=transport,
        )
        self.sender = UsageSender(
            self.spool,
            url=settings.control_plane_url,
            token=token,
            batch_size=settings.usage_batch_size,
            retry_max_s=settings.usage_retry_max_s,
            transport=transport,
        )
        self.reporter = StatusReporter(
            url=settings.control_plane_url, token=token, interval_s=settings.status_interval_s, transport=transport
        )
        self.recorder = UsageRecorder(
            self.spool, gateway_id=settings.gateway_id, ledger=self.ledger, on_write=self.sender.wake
        )

    async def start(self) -> None:
        replay = await self.spool.open()
        if replay.pending_events:
            log.info("usage journal %s: %d events from an earlier run wait to be sent", self.spool.path,
                     replay.pending_events)  # fmt: skip
        await self.source.start()
        policy = self.source.policy
        await self.recorder.start(policy.ingested_seq if policy is not None else 0, replay.last_seq)
        self.source.subscribe(self._settle)
        self.sender.start()

    def _settle(self, policy: Policy) -> None:
        self.recorder.settle(policy.ingested_seq)

    async def stop(self) -> None:
        await self.reporter.stop()
        await self.recorder.stop()
        await self.sender.stop()
        if not await self.sender.drain(self.drain_s):
            log.warning("%d usage events stay in the spool %s for the next start", self.spool.pending_events,
                        self.spool.path)  # fmt: skip
        await self.sender.close()
        await self.source.stop()
        await self.spool.close()

    def pipeline_state(self) -> tuple[int, int, float | None]:
        """For the gauges: usage events waiting (in the journal or in memory), their bytes, the snapshot's age."""
        checked = self.source.status.checked_at
        age = max(0.0, time.time() - checked) if checked is not None else None
        return self.spool.pending_events + self.recorder.buffered, self.spool.pending_bytes, age

    @property
    def ready(self) -> bool:
        return self.source.policy is not None

    async def status(self) -> dict[str, Any]:
        spool = self.spool
        sender = self.sender
        return {
            "snapshot": self.source.status.as_dict(),
            "usage": {
                "pending": spool.pending_events + self.recorder.buffered,
                "pending_bytes": spool.pending_bytes,
                "max_bytes": spool.max_bytes,
                "refusing": self.recorder.refusing,
                "segments": spool.journal.segments,
                "last_seq": self.recorder.seq,
                "acknowledged_seq": spool.journal.acked,
                "sent": sender.sent,
                "duplicates": sender.duplicates,
                "rejected": sender.rejected,
                "last_sent_at": sender.last_sent_at,
                "last_error": sender.last_error or self.recorder.last_error or spool.last_error,
                "last_error_at": sender.last_error_at,
            },
        }
