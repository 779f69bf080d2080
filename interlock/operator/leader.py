"""Several operator replicas, one active: leader election on a ``coordination.k8s.io/v1`` Lease.

The replica that holds the Lease runs kopf; the others wait, renewing nothing, and take over when the Lease is not
renewed for ``lease_duration_s`` (a crash), or at once when the leader stops cleanly and releases it. This is
client-go's leader election (``kubernetes_asyncio.leaderelection``, the same algorithm and defaults: 15 s lease,
10 s renew deadline, 2 s retry) rather than kopf's peering, which pauses operators for a higher-priority peer but
does not elect one among equals. A leader that cannot renew in time stops at once (``LeadershipLost``): the process
exits and its pod restarts as a follower, so two replicas never reconcile at the same time for longer than the
renew deadline allows.

While following, the process serves its own liveness endpoint (kopf's exists only while kopf runs).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import socket
import threading
import uuid
from collections.abc import Awaitable, Callable
from pathlib import Path
from urllib.parse import urlparse

from aiohttp import web
from kubernetes_asyncio.client import ApiClient, CoordinationV1Api
from kubernetes_asyncio.client.exceptions import ApiException
from kubernetes_asyncio.leaderelection.electionconfig import Config
from kubernetes_asyncio.leaderelection.leaderelection import LeaderElection
from kubernetes_asyncio.leaderelection.resourcelock.leaselock import LeaseLock

from interlock.operator.login import kube_login
from interlock.operator.naming import USER_AGENT
from interlock.operator.settings import OperatorSettings

__all__ = ["LeadershipLost", "lease_namespace", "run_as_leader"]

log = logging.getLogger("interlock.operator.leader")

_SA_NAMESPACE = Path("/var/run/secrets/kubernetes.io/serviceaccount/namespace")


class LeadershipLost(RuntimeError):
    """The Lease could not be renewed in time: another replica may be active now."""


def lease_namespace(settings: OperatorSettings) -> str:
    if settings.lease_namespace:
        return settings.lease_namespace
    with contextlib.suppress(OSError):
        return _SA_NAMESPACE.read_text().strip() or "default"
    return "default"


async def _wait(flag: asyncio.Event | threading.Event | None) -> None:
    if flag is None:
        await asyncio.Event().wait()
    elif isinstance(flag, asyncio.Event):
        await flag.wait()
    else:
        while not flag.is_set():  # noqa: ASYNC110 - a threading.Event cannot be awaited
            await asyncio.sleep(0.2)


@contextlib.asynccontextmanager
async def _liveness(endpoint: str | None, state: dict[str, str]):  # type: ignore[no-untyped-def]
    if not endpoint:
        yield
        return
    url = urlparse(endpoint)

    async def healthz(_: web.Request) -> web.Response:
        return web.json_response({"status": "ok", "role": state["role"]})

    app = web.Application()
    app.router.add_get(url.path or "/healthz", healthz)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    await web.TCPSite(runner, url.hostname or "0.0.0.0", url.port or 8080).start()  # noqa: S104
    try:
        yield
    finally:
        await runner.cleanup()


async def _release(api: ApiClient, name: str, namespace: str, identity: str) -> None:
    """Hand the Lease back (holder cleared) so a follower takes over now instead of after the lease duration."""
    leases = CoordinationV1Api(api)
    try:
        lease = await leases.read_namespaced_lease(name, namespace)
        if lease.spec is None or lease.spec.holder_identity != identity:
            return
        lease.spec.holder_identity = None  # type: ignore[assignment]
        lease.spec.lease_duration_seconds = 1
        await leases.replace_namespaced_lease(name, namespace, lease)
        log.info("released Lease %s/%s", namespace, name)
    except ApiException as exc:
        log.warning("could not release Lease %s/%s: %s", namespace, name, exc.reason)


async def run_as_leader(
    settings: OperatorSettings,
    lead: Callable[[], Awaitable[None]],
    *,
    stop_flag: asyncio.Event | threading.Event | None = None,
    liveness_endpoint: str | None = None,
    identity: str | None = None,
) -> None:
    """Wait for the Lease, then run ``lead()`` until it returns or ``stop_flag`` is set; release the Lease after.

    Raises ``LeadershipLost`` when the Lease could not be renewed while leading.
    """
    identity = identity or f"{os.environ.get('POD_NAME') or socket.gethostname()}-{uuid.uuid4().hex[:6]}"
    namespace = lease_namespace(settings)
    api = ApiClient(await kube_login())
    api.user_agent = USER_AGENT
    state = {"role": "follower"}
    leading_done = asyncio.Event()

    async def on_started() -> None:
        state["role"] = "leader"
        log.info("%s leads (Lease %s/%s)", identity, namespace, settings.lease_name)
        try:
            await lead()
        finally:
            leading_done.set()

    lost = asyncio.Event()

    async def on_stopped() -> None:
        lost.set()

    election = LeaderElection(
        Config(
            LeaseLock(settings.lease_name, namespace, identity, api),
            lease_duration=settings.lease_duration_s,
            renew_deadline=settings.lease_renew_deadline_s,
            retry_period=settings.lease_retry_period_s,
            onstarted_leading=on_started,
            onstopped_leading=on_stopped,
        )
    )
    log.info("%s waits for Lease %s/%s", identity, namespace, settings.lease_name)
    async with _liveness(liveness_endpoint, state):
        runner = asyncio.create_task(election.run(), name="leader-election")
        stop = asyncio.create_task(_wait(stop_flag), name="stop-flag")
        done_leading = asyncio.create_task(leading_done.wait(), name="leading-done")
        try:
            await asyncio.wait({runner, stop, done_leading}, return_when=asyncio.FIRST_COMPLETED)
            if runner.done() and not runner.cancelled() and runner.exception() is not None:
                raise runner.exception()  # type: ignore[misc]
            if not leading_done.is_set() and state["role"] == "leader" and not runner.done():
                await leading_done.wait()  # stop requested: kopf sees the same flag and winds down
        finally:
            for task in (runner, stop, done_leading):
                task.cancel()
            await asyncio.gather(runner, stop, done_leading, return_exceptions=True)
            if state["role"] == "leader":
                await _release(api, settings.lease_name, namespace, identity)
            await api.close()
    if lost.is_set():
        raise LeadershipLost(f"{identity} could not renew Lease {namespace}/{settings.lease_name} in time")
