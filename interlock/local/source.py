"""``ManifestSource``: the same YAML manifests ``kubectl apply`` takes, compiled into a ``GatewayConfig``.

It is both the config source (hot reload on any manifest edit) and the secret resolver (``kind: Secret``
manifests answer ``credentialsSecretRef``), so one directory of YAML runs the gateway with no cluster.
"""

from __future__ import annotations

from collections.abc import Hashable
from pathlib import Path

from interlock.gatewayconfig.compile import compile_config
from interlock.gatewayconfig.model import CredentialRef, GatewayConfig
from interlock.resources.manifests import ManifestSet, manifest_files, read_manifests

__all__ = ["ManifestSource"]


class ManifestSource:
    def __init__(self, path: Path, *, namespace: str = "default", gateway: str = "default") -> None:
        self.path = path
        self.namespace = namespace
        self.gateway = gateway
        self._secrets: dict[str, dict[str, str]] = {}
        self._origins: dict[tuple[str, str, str], Path] = {}

    def fingerprint(self) -> Hashable:
        try:
            files = manifest_files(self.path)
        except ValueError:
            return None
        stamps = []
        for file in files:
            try:
                st = file.stat()
            except OSError:
                continue
            stamps.append((str(file), st.st_mtime_ns, st.st_size))
        return tuple(stamps)

    def read(self) -> ManifestSet:
        return read_manifests(self.path)

    def load(self) -> GatewayConfig:
        manifests = self.read()
        self._secrets = {name: data for (ns, name), data in manifests.secrets.items() if ns == self.namespace}
        self._origins = manifests.origins
        return compile_config(manifests.backends, manifests.routes, namespace=self.namespace, gateway=self.gateway)

    def rejected_problems(self, config: GatewayConfig) -> list[str]:
        """The routes the last load left out, one line each, with the file that defines them."""
        return [
            f"{self._origins.get(('Route', self.namespace, name), self.path)}: Route {name!r}: cannot be served: {why}"
            for name, why in config.rejected.items()
        ]

    def resolve(self, ref: CredentialRef) -> str | None:
        return self._secrets.get(ref.secret, {}).get(ref.key)
