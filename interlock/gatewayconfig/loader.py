"""Hot reload: poll a config source, keep serving the last good config when a new one is invalid.

A source says cheaply whether it may have changed (``fingerprint``) and how to load itself (``load``). The
ConfigMap file source fingerprints the file's stat (a ConfigMap update swaps a symlink, which inotify-based
watchers miss); the manifest source fingerprints every manifest file, so ``interlock up`` reloads edited YAML.
"""

from __future__ import annotations

import asyncio
import inspect
import logging
import time
from collections.abc import Awaitable, Callable, Hashable
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

from pydantic import ValidationError

from interlock.gatewayconfig.model import GatewayConfig
from interlock.resources.problems import validation_problems

__all__ = [
    "ConfigLoader",
    "ConfigSource",
    "ConfigStatus",
    "FileConfigSource",
    "StaticConfigSource",
    "describe_config_error",
]

log = logging.getLogger("interlock.gatewayconfig")


def _config_problems(exc: ValidationError) -> list[str]:
    """A GatewayConfig's validation errors, one line each."""
    invalid_json = [err for err in exc.errors() if err["type"] == "json_invalid"]
    if invalid_json:
        return [f"not valid JSON: {str(invalid_json[0]['msg']).removeprefix('Invalid JSON: ')}"]
    return [f"invalid GatewayConfig: {line}" for line in validation_problems(exc, GatewayConfig)]


def describe_config_error(path: Path, exc: Exception) -> list[str]:
    """Why a GatewayConfig file cannot be loaded: one line per problem, each naming the file."""
    if isinstance(exc, ValidationError):
        return [f"{path}: {line}" for line in _config_problems(exc)]
    if isinstance(exc, OSError):
        return [f"{path}: cannot read it: {exc.strerror or exc}"]
    return [f"{path}: {exc}"]


def _one_line(exc: Exception) -> str:
    """Why a config was refused, on one line: every problem of a manifest set or a config file, or the
    exception's type and message for anything else."""
    problems = getattr(exc, "problems", None)
    if isinstance(problems, list):  # ManifestError
        return "; ".join(map(str, problems))
    if isinstance(exc, ValidationError):
        return "; ".join(_config_problems(exc))
    return f"{type(exc).__name__}: {' '.join(str(exc).split())}"


class ConfigSource(Protocol):
    def fingerprint(self) -> Hashable:
        """Changes whenever the config may have changed."""

    def load(self) -> GatewayConfig:
        """Read and validate the config; raise on any problem."""


class FileConfigSource:
    """A compiled ``GatewayConfig`` JSON file, as the operator's ConfigMap is mounted."""

    def __init__(self, path: Path) -> None:
        self.path = path

    def fingerprint(self) -> Hashable:
        try:
            st = self.path.stat()
        except OSError:
            return None
        return (st.st_ino, st.st_mtime_ns, st.st_size)

    def load(self) -> GatewayConfig:
        return GatewayConfig.from_json(self.path.read_bytes())


class StaticConfigSource:
    """A config held in memory; ``set`` replaces it (tests, embedding)."""

    def __init__(self, config: GatewayConfig) -> None:
        self._config = config
        self._generation = 0

    def set(self, config: GatewayConfig) -> None:
        self._config = config
        self._generation += 1

    def fingerprint(self) -> Hashable:
        return self._generation

    def load(self) -> GatewayConfig:
        return self._config


@dataclass
class ConfigStatus:
    """What ``/readyz`` reports."""

    version: str | None = None
    loaded_at: float | None = None
    last_error: str | None = None
    last_error_at: float | None = None
    rejected_routes: dict[str, str] | None = None
    """Routes the loaded config leaves out (a Route to a missing backend, ...), with the reason."""

    @property
    def ready(self) -> bool:
        return self.version is not None


class ConfigLoader:
    """Loads ``source`` now and again whenever its fingerprint changes; ``apply`` (sync or async) receives each
    good config.

    ``apply`` may raise too (for example when a referenced secret is unreadable): that counts as an invalid
    config, and the previous one stays in service.
    """

    def __init__(
        self,
        source: ConfigSource,
        apply: Callable[[GatewayConfig], Awaitable[None] | None],
        *,
        interval_s: float = 1.0,
    ) -> None:
        self.source = source
        self._apply = apply
        self.interval_s = interval_s
        self.status = ConfigStatus()
        self._fingerprint: Hashable = object()
        self._task: asyncio.Task[None] | None = None

    def _reject(self, exc: Exception) -> None:
        self.status.last_error = _one_line(exc)
        self.status.last_error_at = time.time()
        kept = self.status.version or "none"
        log.error("gateway config rejected, keeping version %s: %s", kept, self.status.last_error)

    async def check(self) -> None:
        """Reload if the source changed. Files are read in a thread; ``apply`` runs on the event loop."""
        fingerprint = await asyncio.to_thread(self.source.fingerprint)
        if fingerprint == self._fingerprint:
            return
        self._fingerprint = fingerprint
        try:
            config = await asyncio.to_thread(self.source.load)
            if config.version and config.version == self.status.version:
                return
            result = self._apply(config)
            if inspect.isawaitable(result):
                await result
        except Exception as exc:  # any failure keeps the last good config
            self._reject(exc)
            return
        self.status.version = config.version
        self.status.loaded_at = time.time()
        self.status.last_error = None
        self.status.rejected_routes = dict(config.rejected)
        log.info(
            "gateway config %s loaded: %d routes, %d backends",
            config.version,
            len(config.routes),
            len(config.backends),
        )
        for name, reason in sorted(config.rejected.items()):
            log.warning("gateway config %s leaves out route %r: %s", config.version, name, reason)

    async def _run(self) -> None:
        while True:
            await asyncio.sleep(self.interval_s)
            try:
                await self.check()
            except Exception:  # a failing poll must never end hot reload
                log.exception("config poll failed")

    async def start(self) -> None:
        await self.check()
        self._task = asyncio.create_task(self._run(), name="interlock-config-loader")

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)
            self._task = None
