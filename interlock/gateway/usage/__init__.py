"""Usage events: recorded per request, kept in a durable local spool, sent to the control plane in batches."""

from interlock.gateway.usage.ledger import SpendLedger
from interlock.gateway.usage.recorder import UsageRecorder
from interlock.gateway.usage.sender import UsageSender
from interlock.gateway.usage.spool import AsyncSpool, Spool

__all__ = ["AsyncSpool", "SpendLedger", "Spool", "UsageRecorder", "UsageSender"]
