"""The gateway <-> control-plane contract: the snapshot gateways poll, the usage batches they push, and the client
key format both sides share.

Plain pydantic and the standard library, no web framework and no database, so the gateway can import it without
the control plane's dependencies (and the control plane without the gateway's).
"""

from interlock.contract.controlplane import (
    GATEWAY_SNAPSHOT_PATH,
    GATEWAY_USAGE_PATH,
    KeyRecord,
    PriceRecord,
    QuotaRecord,
    RejectedEvent,
    Snapshot,
    SpanRecord,
    TenantRecord,
    UsageBatch,
    UsageBatchResult,
    UsageEvent,
)
from interlock.contract.keys import KEY_PREFIX, PREFIX_CHARS, generate_key, hash_key, is_well_formed_key, lookup_prefix

__all__ = [
    "GATEWAY_SNAPSHOT_PATH",
    "GATEWAY_USAGE_PATH",
    "KEY_PREFIX",
    "PREFIX_CHARS",
    "KeyRecord",
    "PriceRecord",
    "QuotaRecord",
    "RejectedEvent",
    "Snapshot",
    "SpanRecord",
    "TenantRecord",
    "UsageBatch",
    "UsageBatchResult",
    "UsageEvent",
    "generate_key",
    "hash_key",
    "is_well_formed_key",
    "lookup_prefix",
]
