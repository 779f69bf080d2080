"""``UsageSender``: posts the journal's events to the control plane in batches until each one is acknowledged.

Batches go to ``POST /v1/gateway/usage`` in ``seq`` order, as the JSON the journal stores (no re-encoding), read
from the journal's files on the spool's thread. An event leaves the journal only when the control plane has
answered 200 for its batch: every event in it is then counted, a duplicate, or rejected for good (the answer lists
those with the reason, and the control plane keeps them in its dead-letter table), so none is sent again. On any
other failure (connection, timeout, 5xx, a 401/403 from a wrong credential) the same events are sent again after
an exponential backoff with jitter, capped at ``retry_max_s``. The control plane recognises resent events by their
idempotency id and counts each once, so a lost acknowledgement costs a resend, never a double count.

A batch the control plane refuses as a whole as malformed (400, 413, 422) is split in halves until the bad event
is alone; a lone event refused that way is dropped with an error log line (an older control plane that does not
dead-letter events itself), so that one event can never block every later one.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
import time

import httpx

from interlock.contract.controlplane import GATEWAY_USAGE_PATH, RejectedEvent, UsageBatchResult
from interlock.gateway.controlplane.client import control_plane_client
from interlock.gateway.tasks import cancel_and_wait
from interlock.gateway.usage.spool import AsyncSpool

__all__ = ["UsageSender", "retry_delay"]

log = logging.getLogger("interlock.gateway.usage")

_IDLE_CHECK_S = 5.0
_MALFORMED = frozenset({400, 413, 422})


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
        linger_s: float = 0.05,
        retry_max_s: float = 30.0,
        timeout_s: float = 10.0,
        transport: httpx.AsyncBaseTransport | None = None,
    ) -> None:
        self.spool = spool
        self.batch_size = batch_size
        self.linger_s = linger_s
        """After a wake-up, wait this long so that the events of that while go in one batch."""
        self.retry_max_s = retry_max_s
        self._client = control_plane_client(
            url, token, timeout_s=timeout_s, transport=transport, headers={"content-type": "application/json"}
        )
        self._wake = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        self._limit = batch_size
        self.sent = 0
        self.duplicates = 0
        self.rejected = 0
        """Events the control plane refused for good."""
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
                await asyncio.sleep(self.linger_s)
            elif count < self._limit:
                await asyncio.sleep(self.linger_s)

    async def send_batch(self) -> int:
        """Send the oldest pending events (one batch); how many the control plane is done with. Raises when the
        batch could not be delivered."""
        spool = self.spool
        events, position = await spool.read(self._limit)
        if not events:
            return 0
        body = b'{"events":[' + b",".join(payload for _, payload in events) + b"]}"
        try:
            response = await self._client.post(GATEWAY_USAGE_PATH, content=body)
        except httpx.HTTPError as exc:
            raise SendFailed(f"{type(exc).__name__}: {exc}") from exc
        if response.status_code in _MALFORMED:
            if len(events) > 1:
                self._limit = max(1, len(events) // 2)
                log.warning("the control plane refused a batch of %d events as a whole (HTTP %d); sending halves",
                            len(events), response.status_code)  # fmt: skip
                return len(events)  # nothing is acknowledged; the caller goes on at once with a smaller batch
            log.error("the control plane refused usage event %d for good (HTTP %d: %s); dropping it",
                      events[0][0], response.status_code, response.text[:300])  # fmt: skip
            self.rejected += 1
            await spool.ack(events, position)
            self._limit = self.batch_size
            return 1
        if response.status_code != 200:
            raise SendFailed(f"HTTP {response.status_code}: {response.text[:300]}")
        try:
            result = UsageBatchResult.model_validate_json(response.content)
        except ValueError as exc:
            raise SendFailed(f"the control plane's answer is not a usage batch result: {exc}") from exc
        await spool.ack(events, position)
        self._limit = self.batch_size
        if result.rejected:
            self._rejected(result.rejected)
        done = result.accepted + result.duplicates + len(result.rejected)
        if done != len(events):
            log.warning("control plane answered for %d of %d usage events", done, len(events))
        self.sent += result.accepted
        self.duplicates += result.duplicates
        self.last_sent_at = time.time()
        if self.failures:
            log.info("usage events reach the control plane again")
        self.failures = 0
        self.last_error = None
        return len(events)

    def _rejected(self, rejected: list[RejectedEvent]) -> None:
        self.rejected += len(rejected)
        first = rejected[0]
        log.error(
            "the control plane rejected %d usage event(s) for good (dead-lettered there), e.g. seq %s: %s",
            len(rejected), first.seq, first.reason,
        )  # fmt: skip

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
