"""``ControlPlaneLink``: everything the gateway does with a control plane, started and stopped as one.

The snapshot poller (keys, limits, spend, prices), the spool, the usage recorder and the sender. Start order
matters: the spool opens first (it holds the last good snapshot), the snapshot comes next (its ``ingested_seq``
settles the spend ledger and sets the floor of ``seq``), then events may flow. Stop order is the reverse, with
the buffered events written to the spool and, for up to ``drain_s``, sent.
"""

from __future__ import annotations

import logging
import re
import tempfile
from pathlib import Path
from typing import Any

import httpx

from interlock.gateway.controlplane.snapshot import SnapshotSource
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
    return Path(tempfile.gettempdir()) / f"interlock-usage-{_UNSAFE.sub('_', gateway_id)}.sqlite"


class ControlPlaneLink:
    """See the module docstring. Built from settings with ``control_plane_url`` set."""

    def __init__(
        self, settings: GatewaySettings, *, transport: httpx.AsyncBaseTransport | None = None, drain_s: float = 5.0
    ) -> None:
        if settings.control_plane_url is None:
            raise ValueError("a control-plane link needs control_plane_url")
        token = settings.control_plane_token.get_secret_value() if settings.control_plane_token else None
        self.drain_s = drain_s
        self.spool = AsyncSpool(settings.spool_path or default_spool_path(settings.gateway_id))
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
        self.recorder = UsageRecorder(
            self.spool,
            gateway_id=settings.gateway_id,
            ledger=self.ledger,
            flush_interval_s=settings.usage_flush_interval_s,
            batch_size=settings.usage_batch_size,
            on_commit=self.sender.wake,
        )

    async def start(self) -> None:
        await self.spool.open()
        await self.source.start()
        policy = self.source.policy
        await self.recorder.start(policy.ingested_seq if policy is not None else 0)
        self.source.subscribe(self._settle)
        self.sender.start()

    def _settle(self, policy: Policy) -> None:
        self.recorder.settle(policy.ingested_seq)

    async def stop(self) -> None:
        await self.recorder.stop()
        await self.sender.stop()
        if not await self.sender.drain(self.drain_s):
            pending, _ = await self.spool.call(lambda: self.spool.spool.counts())
            log.warning("%d usage events stay in the spool %s for the next start", pending, self.spool.path)
        await self.sender.close()
        await self.source.stop()
        await self.spool.close()

    @property
    def ready(self) -> bool:
        return self.source.policy is not None

    async def status(self) -> dict[str, Any]:
        pending, kept = await self.spool.call(lambda: self.spool.spool.counts())
        sender = self.sender
        return {
            "snapshot": self.source.status.as_dict(),
            "usage": {
                "spool": str(self.spool.path),
                "pending": pending + self.recorder.buffered,
                "acknowledged_kept": kept,
                "last_seq": self.recorder.seq,
                "sent": sender.sent,
                "duplicates": sender.duplicates,
                "last_sent_at": sender.last_sent_at,
                "last_error": sender.last_error or self.recorder.last_error,
                "last_error_at": sender.last_error_at,
            },
        }
