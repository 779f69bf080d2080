"""Resolve a backend's ``CredentialRef`` to its API key: from mounted Secret files, or from local manifests; and
notice when they change (a rotated key), so the next upstream request uses the new one without a restart.

The kubelet updates a mounted Secret atomically: it writes the new files into a fresh timestamped directory and
swaps the ``..data`` symlink to it (the key files are symlinks through ``..data``). ``FileSecretResolver.fingerprint``
reads that symlink per Secret (one ``readlink``, plus a ``stat`` per file where there is no ``..data``, as in a
plain directory), and ``CredentialWatcher`` polls it off the event loop; on a change the gateway re-reads the keys
(``resolve_all``, in a thread) and rebuilds only the backends whose key changed. Requests never touch the files.
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
import os
from collections.abc import Awaitable, Callable, Hashable, Iterable, Mapping
from pathlib import Path
from typing import Protocol

from interlock.gatewayconfig.model import CredentialRef, GatewayConfig

__all__ = ["CredentialWatcher", "FileSecretResolver", "MappingSecretResolver", "SecretResolver", "resolve_all"]

log = logging.getLogger("interlock.gateway")


class SecretResolver(Protocol):
    def resolve(self, ref: CredentialRef) -> str | None:
        """The secret value, or None when it does not exist."""

    def fingerprint(self) -> Hashable:
        """Changes whenever a secret may have changed; cheap (no secret is read)."""


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

    def fingerprint(self) -> Hashable:
        out: list[tuple[str, object]] = []
        try:
            secrets = sorted(os.scandir(self.root), key=lambda e: e.name)
        except OSError:
            return None
        for entry in secrets:
            if not entry.is_dir():
                continue
            try:
                out.append((entry.name, os.readlink(os.path.join(entry.path, "..data"))))
                continue
            except OSError:
                pass  # not a kubelet projection: look at the files themselves
            try:
                files = [(f.name, f.stat().st_ino, f.stat().st_mtime_ns, f.stat().st_size) for f in os.scandir(entry)]
            except OSError:
                files = []
            out.append((entry.name, tuple(sorted(files))))
        return tuple(out)


class MappingSecretResolver:
    """Secrets held in memory, for ``interlock up`` (``kind: Secret`` manifests) and tests."""

    def __init__(self, secrets: Mapping[str, Mapping[str, str]]) -> None:
        self.secrets = secrets

    def resolve(self, ref: CredentialRef) -> str | None:
        return self.secrets.get(ref.secret, {}).get(ref.key)

    def fingerprint(self) -> Hashable:
        body = repr(sorted((name, sorted(keys.items())) for name, keys in self.secrets.items()))
        return hashlib.sha256(body.encode()).hexdigest()


def _refs(config: GatewayConfig) -> Iterable[CredentialRef]:
    return {b.credentials for b in config.backends.values() if b.credentials is not None}


async def resolve_all(resolver: SecretResolver, config: GatewayConfig) -> MappingSecretResolver:
    """Every key ``config`` references, read once in a thread (file reads stay off the event loop)."""

    def read() -> dict[str, dict[str, str]]:
        out: dict[str, dict[str, str]] = {}
        for ref in _refs(config):
            value = resolver.resolve(ref)
            if value is not None:
                out.setdefault(ref.secret, {})[ref.key] = value
        return out

    return MappingSecretResolver(await asyncio.to_thread(read))


class CredentialWatcher:
    """Calls ``on_change`` when ``resolver.fingerprint()`` changes (polled in a thread every ``interval_s``)."""

    def __init__(
        self, resolver: SecretResolver, on_change: Callable[[], Awaitable[None]], *, interval_s: float = 1.0
    ) -> None:
        self._resolver = resolver
        self._on_change = on_change
        self.interval_s = interval_s
        self._task: asyncio.Task[None] | None = None

    async def start(self) -> None:
        seen = await asyncio.to_thread(self._resolver.fingerprint)
        self._task = asyncio.create_task(self._run(seen), name="interlock-credentials")

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)
            self._task = None

    async def _run(self, seen: Hashable) -> None:
        while True:
            await asyncio.sleep(self.interval_s)
            try:
                current = await asyncio.to_thread(self._resolver.fingerprint)
                if current != seen:
                    seen = current
                    log.info("mounted credentials changed: re-reading them")
                    await self._on_change()
            except Exception:  # keep watching: the next change gets another try
                log.exception("re-reading credentials failed")
