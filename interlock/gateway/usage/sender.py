"""``UsageSender``: posts the spool's events to the control plane in batches until each one is acknowledged.

Batches go to ``POST /v1/gateway/usage`` in ``seq`` order, as the JSON the spool stores (no re-encoding). An event
leaves the pending set only when the control plane has answered 200 for its batch; on any failure (connection,
timeout, 5xx, a 4xx from a misconfigured token) the same events are sent again after an exponential backoff with
jitter, capped at ``retry_max_s``. The control plane recognises resent events by their idempotency id and counts
each once, so a lost acknowledgement costs a resend, never a double count.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
import time

import httpx

from interlock.contract.controlplane import GATEWAY_USAGE_PATH, UsageBatchResult
from interlock.gateway.controlplane.client import control_plane_client
from interlock.gateway.tasks import cancel_and_wait
from interlock.gateway.usage.spool import AsyncSpool

__all__ = ["UsageSender", "retry_delay"]

log = logging.getLogger("interlock.gateway.usage")

_IDLE_CHECK_S = 5.0


def retry_delay(failures: int, cap_s: float, base_s: float = 0.25) -> float:
    """Backoff before the next try after ``failures`` failures in a row: exponential, equal jitter, capped."""
    ceiling = min(cap_s, base_s * 2.0 ** min(failures - 1, 30))
    return ceiling / 2 + random.random() * ceiling / 2


class SendFailed(Exception):
    pass


class UsageSender:
    """See the module docstring. ``wake()`` when events were committed; ``run`` as a background task."""

    def __init__(
        self,
        spool: AsyncSpool,
        *,
        url: str,
        token: str | None = None,
        batch_size: int = 500,
        retry_max_s: float = 30.0,
        timeout_s: float = 10.0,
        transport: httpx.AsyncBaseTransport | None = None,
    ) -> None:
        self.spool = spool
        self.batch_size = batch_size
        self.retry_max_s = retry_max_s
        self._client = control_plane_client(
            url, token, timeout_s=timeout_s, transport=transport, headers={"content-type": "application/json"}
        )
        self._wake = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        self.sent = 0
        self.duplicates = 0
        self.failures = 0
        """Failed sends in a row."""
        self.last_error: str | None = None
        self.last_error_at: float | None = None
        self.last_sent_at: float | None = None

    def wake(self) -> None:
        self._wake.set()

    def start(self) -> None:
        self._task = asyncio.create_task(self._run(), name="interlock-usage-sender")

    async def _run(self) -> None:
        while True:
            self._wake.clear()
            try:
                count = await self.send_batch()
            except Exception as exc:
                self._failed(exc)
                await asyncio.sleep(retry_delay(self.failures, self.retry_max_s))
                continue
            if count == 0:
                with contextlib.suppress(TimeoutError):
                    async with asyncio.timeout(_IDLE_CHECK_S):
                        await self._wake.wait()

    async def send_batch(self) -> int:
        """Send the oldest pending events (one batch); how many the control plane acknowledged. Raises when the
        batch could not be delivered."""
        spool = self.spool
        rows = await spool.call(lambda: spool.spool.pending(self.batch_size))
        if not rows:
            return 0
        body = b'{"events":[' + b",".join(body for _, body in rows) + b"]}"
        try:
            response = await self._client.post(GATEWAY_USAGE_PATH, content=body)
        except httpx.HTTPError as exc:
            raise SendFailed(f"{type(exc).__name__}: {exc}") from exc
        if response.status_code != 200:
            raise SendFailed(f"HTTP {response.status_code}: {response.text[:300]}")
        try:
            result = UsageBatchResult.model_validate_json(response.content)
        except ValueError as exc:
            raise SendFailed(f"the control plane's answer is not a usage batch result: {exc}") from exc
        seqs = [seq for seq, _ in rows]
        await spool.call(lambda: spool.spool.ack(seqs))
        if result.accepted + result.duplicates != len(rows):
            log.warning(
                "control plane acknowledged %d+%d of %d usage events", result.accepted, result.duplicates, len(rows)
            )
        self.sent += result.accepted
        self.duplicates += result.duplicates
        self.last_sent_at = time.time()
        if self.failures:
            log.info("usage events reach the control plane again")
        self.failures = 0
        self.last_error = None
        return len(rows)

    def _failed(self, exc: Exception) -> None:
        self.failures += 1
        message = str(exc) if isinstance(exc, SendFailed) else f"{type(exc).__name__}: {exc}"
        if message != self.last_error:
            log.warning("usage events wait in the spool: %s", message)
        self.last_error = message
        self.last_error_at = time.time()

    async def drain(self, timeout_s: float) -> bool:
        """Send until nothing is pending, a send fails or ``timeout_s`` passes; True when nothing is left."""
        try:
            async with asyncio.timeout(timeout_s):
                while await self.send_batch():
                    pass
        except TimeoutError:
            return False
        except Exception as exc:
            self._failed(exc)
            return False
        return True

    async def stop(self) -> None:
        await cancel_and_wait(self._task)
        self._task = None

    async def close(self) -> None:
        await self.stop()
        await self._client.aclose()
