"""Credentials, loaded once by the official ``kubernetes`` client and shared by kopf and ``Kube``.

kopf's implicit login reads ``$KUBECONFIG`` only when ``kubernetes`` is first imported, so the operator logs in
explicitly: the in-cluster service account when it runs in a pod, otherwise the kubeconfig ``$KUBECONFIG`` names
(or ``~/.kube/config``). The configuration is a fresh object, never the client library's global default.
"""

from __future__ import annotations

import os

import kopf
from kubernetes.client import Configuration
from kubernetes.config import ConfigException, load_incluster_config, load_kube_config

__all__ = ["connection_info", "load_configuration"]


def load_configuration() -> Configuration:
    """In-cluster service account first, then ``$KUBECONFIG``; ``kopf.LoginError`` when neither works."""
    configuration = Configuration()
    try:
        load_incluster_config(client_configuration=configuration)  # type: ignore[no-untyped-call]
        return configuration
    except ConfigException:
        pass
    try:
        load_kube_config(  # type: ignore[no-untyped-call]
            config_file=os.environ.get("KUBECONFIG") or None, client_configuration=configuration
        )
    except (ConfigException, OSError) as exc:
        raise kopf.LoginError(f"no in-cluster service account and no usable kubeconfig: {exc}") from exc
    return configuration


def connection_info(configuration: Configuration) -> kopf.ConnectionInfo:
    """kopf's view of the same credentials."""
    header = configuration.get_api_key_with_prefix("BearerToken") or configuration.get_api_key_with_prefix(
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
