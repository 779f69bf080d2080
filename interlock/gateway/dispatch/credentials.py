"""Resolve a backend's ``CredentialRef`` to its API key: from mounted Secret files, or from local manifests."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Protocol

from interlock.gatewayconfig.model import CredentialRef

__all__ = ["FileSecretResolver", "MappingSecretResolver", "SecretResolver"]


class SecretResolver(Protocol):
    def resolve(self, ref: CredentialRef) -> str | None:
        """The secret value, or None when it does not exist."""


class FileSecretResolver:
    """Secrets mounted as files, as the operator mounts them: ``<root>/<secret>/<key>``."""

    def __init__(self, root: Path) -> None:
        self.root = root

    def resolve(self, ref: CredentialRef) -> str | None:
        path = self.root / ref.secret / ref.key
        try:
            return path.read_text(encoding="utf-8").strip()
        except OSError:
            return None


class MappingSecretResolver:
    """Secrets held in memory, for ``interlock up`` (``kind: Secret`` manifests) and tests."""

    def __init__(self, secrets: Mapping[str, Mapping[str, str]]) -> None:
        self.secrets = secrets

    def resolve(self, ref: CredentialRef) -> str | None:
        return self.secrets.get(ref.secret, {}).get(ref.key)
