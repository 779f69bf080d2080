"""Mounted credentials: the fingerprint follows the kubelet's ``..data`` swap (and plain files), and the watcher
calls back once per change, reading nothing on the event loop."""

from __future__ import annotations

import os
from pathlib import Path

from interlock.gateway.dispatch.credentials import CredentialWatcher, FileSecretResolver, resolve_all
from interlock.gatewayconfig.model import BackendConfig, CredentialRef, GatewayConfig
from tests.support import eventually


def kubelet_write(directory: Path, files: dict[str, str], generation: int) -> None:
    directory.mkdir(parents=True, exist_ok=True)
    stamp = directory / f"..2026_12_06_00_00_0{generation}.1"
    stamp.mkdir()
    for name, content in files.items():
        (stamp / name).write_text(content)
    (directory / "..data_tmp").symlink_to(stamp.name)
    os.replace(directory / "..data_tmp", directory / "..data")
    for name in files:
        if not (directory / name).is_symlink():
            (directory / name).symlink_to(f"..data/{name}")


async def test_a_swapped_secret_is_noticed_and_read_again(tmp_path: Path) -> None:
    resolver = FileSecretResolver(tmp_path)
    kubelet_write(tmp_path / "openai", {"api-key": "sk-old"}, 1)
    (tmp_path / "plain").mkdir()
    (tmp_path / "plain" / "key").write_text("p1")
    config = GatewayConfig(
        gateway="ns/default",
        backends={
            "a": BackendConfig(
                name="a",
                provider="openai",
                url="http://a/v1",
                models={},
                credentials=CredentialRef(secret="openai", key="api-key"),
            ),
        },
    )
    assert (await resolve_all(resolver, config)).resolve(CredentialRef(secret="openai", key="api-key")) == "sk-old"
    changes: list[int] = []

    async def changed() -> None:
        changes.append(1)

    watcher = CredentialWatcher(resolver, changed, interval_s=0.05)
    await watcher.start()
    try:
        before = resolver.fingerprint()
        kubelet_write(tmp_path / "openai", {"api-key": "sk-new"}, 2)
        assert resolver.fingerprint() != before
        await eventually(lambda: len(changes) == 1, within=5)
        new = await resolve_all(resolver, config)
        assert new.resolve(CredentialRef(secret="openai", key="api-key")) == "sk-new"
        (tmp_path / "plain" / "key.tmp").write_text("p2-longer")
        os.replace(tmp_path / "plain" / "key.tmp", tmp_path / "plain" / "key")  # a plain directory: by stat
        await eventually(lambda: len(changes) == 2, within=5)
    finally:
        await watcher.stop()
