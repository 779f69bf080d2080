"""Run the operator: kopf's settings (our finalizer and annotation prefix), the scope, and the registry.

kopf's own peering is off (``standalone``): with ``leader_election`` (the chart's default, two replicas) a Lease
decides which replica runs kopf at all (``leader.py``); without it, one process runs alone.
"""

from __future__ import annotations

import asyncio
import logging
import signal
import threading
from collections.abc import Sequence

import kopf

from interlock.operator.handlers import Operator, build_registry
from interlock.operator.k8s import Kube
from interlock.operator.leader import run_as_leader
from interlock.operator.naming import FINALIZER, PROGRESS_PREFIX
from interlock.operator.settings import OperatorSettings

__all__ = ["kopf_settings", "run_operator"]


def kopf_settings(settings: OperatorSettings) -> kopf.OperatorSettings:
    """kopf's settings for Interlock: everything kopf writes on objects lives under ``interlock.dev``."""
    out = kopf.OperatorSettings()
    out.persistence.finalizer = FINALIZER
    out.persistence.progress_storage = kopf.AnnotationsProgressStorage(prefix=PROGRESS_PREFIX, v1=False)
    out.persistence.diffbase_storage = kopf.AnnotationsDiffBaseStorage(
        prefix=PROGRESS_PREFIX, key="last-handled-configuration", v1=False
    )
    out.posting.level = logging.INFO
    out.networking.request_timeout = settings.request_timeout_s
    out.watching.server_timeout = 600  # the API server closes each watch after this; kopf reconnects
    out.peering.standalone = True
    return out


async def run_operator(
    settings: OperatorSettings,
    *,
    namespaces: Sequence[str] = (),
    clusterwide: bool = False,
    liveness_endpoint: str | None = None,
    stop_flag: asyncio.Event | threading.Event | None = None,
    ready_flag: asyncio.Event | threading.Event | None = None,
    kube: Kube | None = None,
) -> None:
    """Watch ``namespaces`` (or every namespace with ``clusterwide``) until ``stop_flag`` is set or a signal.

    With ``settings.leader_election``, only while holding the Lease (``ready_flag`` is set once waiting for it).
    """
    if not clusterwide and not namespaces:
        raise ValueError("name the namespaces to watch, or set clusterwide")

    async def operate(liveness: str | None, ready: asyncio.Event | threading.Event | None) -> None:
        operator = Operator(settings, kube=kube)
        try:
            await kopf.operator(
                registry=build_registry(operator),
                settings=kopf_settings(settings),
                standalone=True,
                clusterwide=clusterwide,
                namespaces=list(namespaces),
                liveness_endpoint=liveness,
                stop_flag=stop_flag,
                ready_flag=ready,
            )
        finally:
            await operator.close()

    if not settings.leader_election:
        await operate(liveness_endpoint, ready_flag)
        return
    if ready_flag is not None:
        ready_flag.set()
    if stop_flag is None and threading.current_thread() is threading.main_thread():
        # A follower runs no kopf (which handles signals while it runs): stop cleanly on SIGTERM/SIGINT anyway.
        stop_flag = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, stop_flag.set)
    await run_as_leader(settings, lambda: operate(None, None), stop_flag=stop_flag, liveness_endpoint=liveness_endpoint)
