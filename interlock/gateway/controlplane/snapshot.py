"""The gateway's view of the control plane: the key snapshot, polled with ETags, and what ``/readyz`` says of it.

``SnapshotSource`` polls ``GET {control_plane_url}/v1/gateway/snapshot?gateway_id=G&since=V`` every
``snapshot_interval_s`` with ``If-None-Match``; a 304 keeps the config, a 200 is a delta it merges into the config it
holds (or a full snapshot that replaces it). Then it polls ``/v1/gateway/spend`` the same way (spend of budgeted
tenants and ``ingested_seq``, which change with every ingest); a control plane without that endpoint (404) is taken
to carry spend in the snapshot, as before. A new ``Policy`` is built only when either changed.
When the control plane is down or answers something that is not a snapshot, the last good policy keeps serving
and the error shows on ``/readyz``. With a store (the usage spool), the last good snapshot also survives a
restart, so a gateway that starts while the control plane is down still knows its keys.

``StaticPolicySource`` holds a fixed snapshot (tests, embedding).
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

import httpx

from interlock.contract.controlplane import GATEWAY_SNAPSHOT_PATH, GATEWAY_SPEND_PATH, Snapshot, SpendSnapshot
from interlock.gateway.controlplane.client import control_plane_client
from interlock.gateway.tasks import cancel_and_wait
from interlock.gateway.tenancy.policy import Policy

__all__ = ["PolicySource", "SnapshotSource", "SnapshotStatus", "SnapshotStore", "StaticPolicySource"]

log = logging.getLogger("interlock.gateway.controlplane.snapshot")

PolicyListener = Callable[[Policy], None]


@dataclass
class SnapshotStatus:
    """What ``/readyz`` reports about the snapshot."""

    version: str | None = None
    loaded_at: float | None = None
    """When the current policy was built (Unix time)."""
    checked_at: float | None = None
    """Last time the control plane answered (200 or 304)."""
    last_error: str | None = None
    last_error_at: float | None = None
    ingested_seq: int = 0
    source: str = "control-plane"

    def as_dict(self) -> dict[str, Any]:
        return {
            "version": self.version,
            "loaded_at": self.loaded_at,
            "checked_at": self.checked_at,
            "last_error": self.last_error,
            "last_error_at": self.last_error_at,
            "ingested_seq": self.ingested_seq,
            "source": self.source,
        }


class PolicySource(Protocol):
    """Where the policy comes from; ``policy`` is None until the first snapshot."""

    status: SnapshotStatus

    @property
    def policy(self) -> Policy | None: ...

    def subscribe(self, listener: PolicyListener) -> None: ...

    async def start(self) -> None: ...

    async def stop(self) -> None: ...


class SnapshotStore(Protocol):
    """Keeps the last good snapshot across restarts (the spool does)."""

    async def load_snapshot(self) -> tuple[str, bytes] | None: ...

    async def save_snapshot(self, etag: str, body: bytes) -> None: ...


class _Holder:
    def __init__(self, gateway_id: str) -> None:
        self.gateway_id = gateway_id
        self._policy: Policy | None = None
        self._listeners: list[PolicyListener] = []
        self.status = SnapshotStatus()

    @property
    def policy(self) -> Policy | None:
        return self._policy

    def subscribe(self, listener: PolicyListener) -> None:
        self._listeners.append(listener)
        if self._policy is not None:
            listener(self._policy)

    def _install(self, snapshot: Snapshot) -> None:
        policy = Policy.from_snapshot(snapshot)
        self._policy = policy
        self.status.version = policy.version
        self.status.ingested_seq = policy.ingested_seq
        self.status.loaded_at = time.time()
        for listener in self._listeners:
            listener(policy)


class StaticPolicySource(_Holder):
    """A snapshot held in memory; ``set`` replaces it."""

    def __init__(self, snapshot: Snapshot | None = None, *, gateway_id: str = "") -> None:
        super().__init__(gateway_id)
        self.status.source = "static"
        if snapshot is not None:
            self._install(snapshot)

    def set(self, snapshot: Snapshot) -> None:
        self._install(snapshot)

    async def start(self) -> None:
        return None

    async def stop(self) -> None:
        return None


class SnapshotSource(_Holder):
    """Polls the control plane for the snapshot; see the module docstring."""

    def __init__(
        self,
        *,
        url: str,
        gateway_id: str,
        token: str | None = None,
        interval_s: float = 2.0,
        store: SnapshotStore | None = None,
        seed_file: Path | None = None,
        timeout_s: float = 5.0,
        transport: httpx.AsyncBaseTransport | None = None,
    ) -> None:
        super().__init__(gateway_id)
        self.interval_s = interval_s
        self._store = store
        self._seed_file = seed_file
        self._client = control_plane_client(url, token, timeout_s=timeout_s, transport=transport)
        self._params = {"gateway_id": gateway_id}
        self._etag: str | None = None
        self._config: Snapshot | None = None
        self._spend: SpendSnapshot | None = None
        self._spend_etag: str | None = None
        self._spend_supported = True
        self._task: asyncio.Task[None] | None = None

    async def start(self) -> None:
        """Restore the stored snapshot (if any), poll once, then keep polling in the background."""
        if self._store is not None:
            stored = await self._store.load_snapshot()
            if stored is not None:
                try:
                    self._accept(stored[0], stored[1], persist=False)
                    self.status.source = "stored"
                except ValueError as exc:
                    log.warning("ignoring the stored snapshot: %s", exc)
        if self._policy is None and self._seed_file is not None:
            await self._seed(self._seed_file)
        await self.poll()
        self._task = asyncio.create_task(self._run(), name="interlock-snapshot")

    async def _seed(self, path: Path) -> None:
        """A new pod's first snapshot when its spool has none: the one the operator mirrored for its gateway."""
        try:
            body = await asyncio.to_thread(path.read_bytes)
            self._accept("", body, persist=False)
            self.status.source = "seed"
        except (OSError, ValueError) as exc:
            log.warning("no snapshot seed from %s: %s", path, exc)

    async def stop(self) -> None:
        await cancel_and_wait(self._task)
        self._task = None
        await self._client.aclose()

    async def _run(self) -> None:
        while True:
            await asyncio.sleep(self.interval_s)
            await self.poll()

    async def poll(self) -> bool:
        """One poll; True when a new policy was installed. Never raises: failures keep the last good policy."""
        try:
            changed = await self._poll_config()
            changed = await self._poll_spend() or changed
            if changed and self._config is not None:
                self._install(_compose(self._config, self._spend))
        except (httpx.HTTPError, ValueError) as exc:
            self._failed(exc)
            return False
        except Exception as exc:  # a poll must never end polling
            log.exception("snapshot poll failed")
            self._failed(exc)
            return False
        self._ok()
        self.status.source = "control-plane"
        return changed

    async def _poll_config(self) -> bool:
        headers = {"if-none-match": self._etag} if self._etag and self._config is not None else None
        params = dict(self._params)
        if self._config is not None and self._etag and self._config.version.isdigit():
            params["since"] = self._config.version
        response = await self._client.get(GATEWAY_SNAPSHOT_PATH, params=params, headers=headers)
        if response.status_code == 304 and self._config is not None:
            return False
        if response.status_code != 200:
            raise ValueError(f"HTTP {response.status_code}: {response.text[:200]}")
        return self._accept(response.headers.get("etag", ""), response.content, persist=True)

    async def _poll_spend(self) -> bool:
        if not self._spend_supported:
            return False
        headers = {"if-none-match": self._spend_etag} if self._spend_etag and self._spend is not None else None
        response = await self._client.get(GATEWAY_SPEND_PATH, params=self._params, headers=headers)
        if response.status_code == 304 and self._spend is not None:
            return False
        if response.status_code == 404:  # an older control plane: spend comes with the snapshot
            self._spend_supported = False
            return False
        if response.status_code != 200:
            raise ValueError(f"spend: HTTP {response.status_code}: {response.text[:200]}")
        spend = SpendSnapshot.model_validate_json(response.content)
        self._spend_etag = response.headers.get("etag") or None
        if self._spend is not None and spend.version == self._spend.version:
            return False
        self._spend = spend
        return True

    def _accept(self, etag: str, body: bytes, *, persist: bool) -> bool:
        """Take a snapshot body (full, or a delta on the config held); install it at once unless ``persist``
        (a poll, which installs after the spend poll)."""
        snapshot = Snapshot.model_validate_json(body)  # pydantic's ValidationError is a ValueError
        if snapshot.base_version is not None:
            if self._config is None or snapshot.base_version != self._config.version:
                raise ValueError(f"a delta on version {snapshot.base_version}, but this gateway holds another")
            snapshot = _merge(self._config, snapshot)
        self._etag = etag or None
        if self._config is not None and snapshot.version == self._config.version and self._policy is not None:
            return False
        self._config = snapshot
        if persist and self._store is not None:
            task = asyncio.create_task(self._store.save_snapshot(etag, snapshot.model_dump_json().encode()))
            task.add_done_callback(_log_failure)
        else:
            self._install(_compose(snapshot, self._spend))
        log.info("snapshot %s: %d tenants, %d keys", snapshot.version, len(snapshot.tenants), len(snapshot.keys))
        return True

    def _ok(self) -> None:
        self.status.checked_at = time.time()
        if self.status.last_error is not None:
            log.info("control plane reachable again; snapshot %s", self.status.version)
        self.status.last_error = None

    def _failed(self, exc: Exception) -> None:
        message = f"{type(exc).__name__}: {exc}"
        if message != self.status.last_error:
            kept = self.status.version or "none"
            log.warning("snapshot poll failed, keeping snapshot %s: %s", kept, message)
        self.status.last_error = message
        self.status.last_error_at = time.time()


def _log_failure(task: asyncio.Task[None]) -> None:
    if not task.cancelled() and task.exception() is not None:
        log.warning("could not store the snapshot: %s", task.exception())


def _merge(held: Snapshot, delta: Snapshot) -> Snapshot:
    """The config ``held`` with a delta applied: changed tenants and keys replaced, removed ones dropped."""
    gone_tenants = set(delta.removed_tenants)
    gone_keys = set(delta.removed_keys)
    tenants = {t.id: t for t in held.tenants if t.id not in gone_tenants}
    tenants.update((t.id, t) for t in delta.tenants)
    keys = {k.id: k for k in held.keys if k.id not in gone_keys and k.tenant_id not in gone_tenants}
    keys.update((k.id, k) for k in delta.keys)
    return Snapshot(
        version=delta.version,
        generated_at=delta.generated_at,
        tenants=sorted(tenants.values(), key=lambda t: t.id),
        keys=sorted(keys.values(), key=lambda k: k.id),
        prices=delta.prices,
        ingested_seq=delta.ingested_seq,
    )


def _compose(config: Snapshot, spend: SpendSnapshot | None) -> Snapshot:
    """The config with the spend document's figures (budgeted tenants' spend, ``ingested_seq``) in place."""
    if spend is None:
        return config
    tenants = [
        t.model_copy(update={"spent_usd": spend.spent_usd.get(t.id, 0.0)})
        if t.quota.monthly_budget_usd is not None or t.id in spend.spent_usd
        else t
        for t in config.tenants
    ]
    return config.model_copy(
        update={"version": f"{config.version}+{spend.version[:12]}", "tenants": tenants,
                "ingested_seq": spend.ingested_seq}
    )  # fmt: skip
