"""``SpendLedger``: what this gateway spent that the current snapshot does not count yet.

A tenant's spend for budgets is the snapshot's ``spent_usd`` (every gateway's events the control plane had
ingested when it built the snapshot) plus this gateway's own events with a ``seq`` above the snapshot's
``ingested_seq``. The ledger keeps those events in ``seq`` order and a running sum per tenant; a new snapshot
trims the ones it now counts. Only tenants with a budget are tracked, so the ledger stays small even while the
control plane is unreachable for a long time and nothing is trimmed.
"""

from __future__ import annotations

from collections import deque

__all__ = ["SpendLedger"]


class SpendLedger:
    __slots__ = ("_entries", "_sums", "settled_seq")

    def __init__(self) -> None:
        self._entries: deque[tuple[int, str, float]] = deque()
        self._sums: dict[str, float] = {}
        self.settled_seq = 0
        """The ``ingested_seq`` of the latest snapshot: events up to it are in the snapshot's spend."""

    def add(self, seq: int, tenant_id: str, cost: float) -> None:
        if seq <= self.settled_seq or cost <= 0:
            return
        self._entries.append((seq, tenant_id, cost))
        self._sums[tenant_id] = self._sums.get(tenant_id, 0.0) + cost

    def settle(self, ingested_seq: int) -> None:
        """A snapshot counting this gateway's events up to ``ingested_seq`` has arrived."""
        if ingested_seq <= self.settled_seq:
            return
        self.settled_seq = ingested_seq
        entries = self._entries
        sums = self._sums
        while entries and entries[0][0] <= ingested_seq:
            _, tenant_id, cost = entries.popleft()
            left = sums.get(tenant_id, 0.0) - cost
            if left <= 1e-12:
                sums.pop(tenant_id, None)
            else:
                sums[tenant_id] = left
        if not entries:
            sums.clear()  # no float residue survives an empty ledger

    def spent(self, tenant_id: str) -> float:
        """This gateway's spend for the tenant that the current snapshot does not count yet."""
        return self._sums.get(tenant_id, 0.0)

    def __len__(self) -> int:
        return len(self._entries)
