"""Credentials, loaded once by the ``kubernetes_asyncio`` client and shared by kopf and ``Kube``.

The in-cluster service account when the operator runs in a pod (its token re-read as the kubelet rotates it),
otherwise the kubeconfig ``$KUBECONFIG`` names (or ``~/.kube/config``; exec plugins and client certificates
included). kopf gets the same credentials through an explicit login handler, so both clients always talk to the
same API server as the same user.
"""

from __future__ import annotations

import asyncio
import os
from pathlib import Path

import kopf
from kubernetes_asyncio.client import Configuration
from kubernetes_asyncio.config import ConfigException, load_incluster_config, load_kube_config

__all__ = ["connection_info", "kube_login", "load_configuration"]


def _kubeconfig() -> str:
    """``$KUBECONFIG`` or ``~/.kube/config``; a missing file is said here, before the client library logs it."""
    named = os.environ.get("KUBECONFIG") or str(Path("~/.kube/config").expanduser())
    if not any(Path(p).is_file() for p in named.split(os.pathsep) if p):
        raise kopf.LoginError(f"no in-cluster service account and no kubeconfig file at {named}")
    return named


async def kube_login() -> Configuration:
    """In-cluster service account first, then ``$KUBECONFIG``; ``kopf.LoginError`` when neither works."""
    configuration = Configuration()
    try:
        load_incluster_config(client_configuration=configuration)  # type: ignore[no-untyped-call]
        return configuration
    except ConfigException:
        pass
    named = _kubeconfig()
    try:
        await load_kube_config(config_file=named, client_configuration=configuration)
    except (ConfigException, OSError) as exc:
        raise kopf.LoginError(f"no in-cluster service account and no usable kubeconfig: {exc}") from exc
    return configuration


def load_configuration() -> Configuration:
    """``kube_login()`` from synchronous code, before an event loop runs: the CLI's check that there is a cluster."""
    return asyncio.run(kube_login())


async def connection_info(configuration: Configuration) -> kopf.ConnectionInfo:
    """kopf's view of the same credentials."""
    header = await configuration.get_api_key_with_prefix("BearerToken") or await configuration.get_api_key_with_prefix(
        "authorization"
    )
    scheme, token = (header.split(" ", 1) if " " in header else (None, header)) if header else (None, None)
    return kopf.ConnectionInfo(
        server=str(configuration.host),
        ca_path=configuration.ssl_ca_cert,
        insecure=not configuration.verify_ssl,
        username=configuration.username or None,
        password=configuration.password or None,
        scheme=scheme,
        token=token,
        certificate_path=configuration.cert_file,
        private_key_path=configuration.key_file,
    )
