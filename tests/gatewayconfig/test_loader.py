"""``ConfigLoader``: hot reload from a file, keeping the last good config on any error."""

from __future__ import annotations

import logging
import os
from pathlib import Path

import pytest

from interlock.gatewayconfig import (
    ConfigLoader,
    FileConfigSource,
    GatewayConfig,
    StaticConfigSource,
    compile_config,
)
from interlock.resources import LLMBackend, Route
from tests.support import eventually


def make_config(*models: str) -> GatewayConfig:
    backend = LLMBackend.model_validate(
        {"metadata": {"name": "mock"}, "spec": {"provider": "mock", "models": [{"name": m} for m in models]}}
    )
    routes = [
        Route.model_validate(
            {"metadata": {"name": m}, "spec": {"model": m, "targets": [{"backend": "mock", "model": m}]}}
        )
        for m in models
    ]
    return compile_config([backend], routes)


def write_atomically(path: Path, data: bytes) -> None:
    """Write next to ``path`` and rename over it, as editors and kubelet do (a new inode every time)."""
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_bytes(data)
    os.replace(tmp, path)


class Recorder:
    def __init__(self) -> None:
        self.applied: list[GatewayConfig] = []

    def __call__(self, config: GatewayConfig) -> None:
        self.applied.append(config)


@pytest.fixture
def config_file(tmp_path: Path) -> Path:
    path = tmp_path / "config.json"
    path.write_bytes(make_config("a").to_json())
    return path


async def test_initial_load(config_file: Path) -> None:
    recorder = Recorder()
    loader = ConfigLoader(FileConfigSource(config_file), recorder)
    assert not loader.status.ready
    await loader.check()
    assert [c.version for c in recorder.applied] == [make_config("a").version]
    assert loader.status.ready
    assert loader.status.version == make_config("a").version
    assert loader.status.loaded_at is not None
    assert loader.status.last_error is None


async def test_unchanged_file_is_not_reloaded(config_file: Path) -> None:
    recorder = Recorder()
    loader = ConfigLoader(FileConfigSource(config_file), recorder)
    await loader.check()
    await loader.check()
    assert len(recorder.applied) == 1
    write_atomically(config_file, make_config("a").to_json())  # new inode, same version: nothing to apply
    await loader.check()
    assert len(recorder.applied) == 1
    assert loader.status.last_error is None


async def test_changed_file_is_reloaded(config_file: Path) -> None:
    recorder = Recorder()
    loader = ConfigLoader(FileConfigSource(config_file), recorder)
    await loader.check()
    new = make_config("a", "b")
    write_atomically(config_file, new.to_json())
    await loader.check()
    assert [c.version for c in recorder.applied] == [make_config("a").version, new.version]
    assert sorted(recorder.applied[-1].routes) == ["a", "b"]
    assert loader.status.version == new.version


async def test_invalid_file_keeps_the_last_good_config(config_file: Path, caplog: pytest.LogCaptureFixture) -> None:
    recorder = Recorder()
    loader = ConfigLoader(FileConfigSource(config_file), recorder)
    await loader.check()
    good = loader.status.version
    write_atomically(config_file, b'{"schemaVersion": 1, "routes": "not a mapping"')
    with caplog.at_level(logging.ERROR, logger="interlock.gatewayconfig"):
        await loader.check()
    assert loader.status.version == good
    assert loader.status.ready
    assert loader.status.last_error is not None
    assert loader.status.last_error.startswith("not valid JSON: EOF while parsing an object at line 1")
    assert loader.status.last_error_at is not None
    assert len(recorder.applied) == 1
    assert f"keeping version {good}" in caplog.text
    fixed = make_config("c")
    write_atomically(config_file, fixed.to_json())
    await loader.check()
    assert loader.status.version == fixed.version
    assert loader.status.last_error is None


async def test_missing_file_is_an_error_not_a_crash(tmp_path: Path) -> None:
    loader = ConfigLoader(FileConfigSource(tmp_path / "absent.json"), Recorder())
    await loader.check()
    assert not loader.status.ready
    assert loader.status.last_error is not None
    assert "FileNotFoundError" in loader.status.last_error


async def test_apply_that_raises_counts_as_rejected(config_file: Path) -> None:
    seen: list[str] = []

    def apply(config: GatewayConfig) -> None:
        seen.append(config.version)
        if "b" in config.routes:
            raise RuntimeError("secret openai/api-key is not mounted")

    loader = ConfigLoader(FileConfigSource(config_file), apply)
    await loader.check()
    good = loader.status.version
    write_atomically(config_file, make_config("a", "b").to_json())
    await loader.check()
    assert len(seen) == 2
    assert loader.status.version == good
    assert loader.status.last_error == "RuntimeError: secret openai/api-key is not mounted"


async def test_async_apply(config_file: Path) -> None:
    applied: list[str] = []

    async def apply(config: GatewayConfig) -> None:
        applied.append(config.version)

    loader = ConfigLoader(FileConfigSource(config_file), apply)
    await loader.check()
    assert applied == [make_config("a").version]


async def test_configmap_symlink_swap_is_detected(tmp_path: Path) -> None:
    """A mounted ConfigMap: ``config.json -> ..data/config.json`` and ``..data -> ..<timestamp>``; kubelet updates
    it by writing a new timestamped directory and renaming a new ``..data`` symlink over the old one."""
    mount = tmp_path / "mount"
    first_dir = mount / "..2025_01_01_00_00_00.000000001"
    first_dir.mkdir(parents=True)
    (first_dir / "config.json").write_bytes(make_config("a").to_json())
    (mount / "..data").symlink_to(first_dir.name)
    (mount / "config.json").symlink_to("..data/config.json")

    recorder = Recorder()
    loader = ConfigLoader(FileConfigSource(mount / "config.json"), recorder)
    await loader.check()
    assert loader.status.version == make_config("a").version

    second_dir = mount / "..2025_01_01_00_01_00.000000002"
    second_dir.mkdir()
    new = make_config("a", "b")
    (second_dir / "config.json").write_bytes(new.to_json())
    (mount / "..data_tmp").symlink_to(second_dir.name)
    os.replace(mount / "..data_tmp", mount / "..data")
    await loader.check()
    assert loader.status.version == new.version
    assert [c.version for c in recorder.applied] == [make_config("a").version, new.version]


async def test_static_source() -> None:
    source = StaticConfigSource(make_config("a"))
    recorder = Recorder()
    loader = ConfigLoader(source, recorder)
    await loader.check()
    await loader.check()
    source.set(make_config("b"))
    await loader.check()
    assert [sorted(c.routes) for c in recorder.applied] == [["a"], ["b"]]


async def test_background_polling_picks_up_changes(config_file: Path) -> None:
    recorder = Recorder()
    loader = ConfigLoader(FileConfigSource(config_file), recorder, interval_s=0.01)
    await loader.start()
    try:
        assert loader.status.version == make_config("a").version, "start() loads before it returns"
        new = make_config("z")
        write_atomically(config_file, new.to_json())
        await eventually(lambda: loader.status.version == new.version, what="reload by the poller")
    finally:
        await loader.stop()
    await loader.stop()  # idempotent
