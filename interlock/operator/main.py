"""Run the operator: kopf's settings (our finalizer and annotation prefix), the scope, and the registry.

Peering is off (``standalone``): the operator runs as one replica (the chart's Deployment uses the Recreate
strategy), so there is no second instance to negotiate with and no KopfPeering CRD to install.
"""

from __future__ import annotations

import asyncio
import logging
import threading
from collections.abc import Sequence

import kopf

from interlock.operator.handlers import Operator, build_registry
from interlock.operator.k8s import Kube
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
    """Watch ``namespaces`` (or every namespace with ``clusterwide``) until ``stop_flag`` is set or a signal."""
    if not clusterwide and not namespaces:
        raise ValueError("name the namespaces to watch, or set clusterwide")
    operator = Operator(settings, kube=kube)
    try:
        await kopf.operator(
            registry=build_registry(operator),
            settings=kopf_settings(settings),
            standalone=True,
            clusterwide=clusterwide,
            namespaces=list(namespaces),
            liveness_endpoint=liveness_endpoint,
            stop_flag=stop_flag,
            ready_flag=ready_flag,
        )
    finally:
        await operator.close()
