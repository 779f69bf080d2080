"""The container tools for tests/image: installed with apt when missing (as root), configured for this kind of
machine (runc, not crun; ulimits the kernel allows), with a store of their own under the repository's
``.cache/image/`` (gitignored: kept between runs, so only the first build on a clone is cold)."""

from __future__ import annotations

import hashlib
import json
import os
import resource
import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

__all__ = ["APT_PACKAGES", "REPO", "Tools", "container_tools"]

REPO = Path(__file__).resolve().parents[2]
APT_PACKAGES = ("buildah", "podman", "runc", "mmdebstrap", "skopeo")
_INSTALL_HINT = (
    "tests/image needs buildah, podman, runc, mmdebstrap and skopeo (Debian: `apt-get install -y "
    + " ".join(APT_PACKAGES)
    + "`, as root; ./scripts/test does it when run as root). Run the rest with `./scripts/test --ignore tests/image`."
)


def _missing() -> list[str]:
    return [tool for tool in APT_PACKAGES if shutil.which(tool) is None]


def _install() -> None:
    missing = _missing()
    if not missing:
        return
    if os.geteuid() != 0 or shutil.which("apt-get") is None:
        pytest.fail(f"{', '.join(missing)} missing, and not root or no apt-get to install them. {_INSTALL_HINT}")
    env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    for cmd in (["apt-get", "update", "-qq"], ["apt-get", "install", "-y", "-qq", *APT_PACKAGES]):
        done = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=600)
        if done.returncode != 0:
            pytest.fail(f"`{' '.join(cmd)}` failed ({done.returncode}): {done.stderr[-2000:]}\n{_INSTALL_HINT}")
    if still := _missing():
        pytest.fail(f"apt-get installed the packages but {still} are still missing. {_INSTALL_HINT}")


@dataclass(frozen=True)
class Tools:
    """podman, buildah and skopeo with this test's configuration (``env``) and store."""

    env: dict[str, str]
    graphroot: Path

    def run(self, *args: str, timeout: float = 120, check: bool = True) -> subprocess.CompletedProcess[str]:
        done = subprocess.run(list(args), env=self.env, capture_output=True, text=True, timeout=timeout)
        if check and done.returncode != 0:
            raise AssertionError(f"`{' '.join(args)}` exited {done.returncode}:\n{done.stdout}\n{done.stderr}")
        return done

    def podman(self, *args: str, timeout: float = 120, check: bool = True) -> subprocess.CompletedProcess[str]:
        return self.run("podman", *args, timeout=timeout, check=check)

    def close(self) -> None:
        """containers/storage leaves its overlay directory bind-mounted on itself; unmount it, so the store (and
        the clone it lives in) can be deleted."""
        overlay = str(self.graphroot / "overlay")
        with open("/proc/self/mountinfo", encoding="utf-8") as mounts:  # a bind mount on itself: not os.path.ismount
            mounted = any(line.split()[4] == overlay for line in mounts)
        if mounted:
            subprocess.run(["umount", overlay], capture_output=True, timeout=60, check=True)

    def image_config(self, ref: str) -> dict[str, Any]:
        """The OCI image config, as a registry would serve it (``skopeo inspect --config``)."""
        done = self.run("skopeo", "inspect", "--config", f"containers-storage:{ref}")
        config: dict[str, Any] = json.loads(done.stdout)
        return config


def _limit(kind: int, cap: int) -> int:
    """What a container may ask for: podman's defaults are more than this machine lets a process set."""
    hard = resource.getrlimit(kind)[1]
    return cap if hard == resource.RLIM_INFINITY else min(hard, cap)


def container_tools() -> Tools:
    _install()
    cache = REPO / ".cache" / "image"
    cache.mkdir(parents=True, exist_ok=True)
    # The runroot (locks, mount state) belongs on a tmpfs and must stay the same for a store: podman records it in
    # the store's database and its exit hooks use it after a test ends. One per store, under /run.
    runroot = Path("/run") / f"interlock-podman-{hashlib.sha256(str(cache).encode()).hexdigest()[:12]}"
    storage = cache / "storage.conf"
    storage.write_text(
        f'[storage]\ndriver = "overlay"\ngraphroot = "{cache / "storage"}"\nrunroot = "{runroot}"\n', encoding="utf-8"
    )
    nofile, nproc = _limit(resource.RLIMIT_NOFILE, 1 << 20), _limit(resource.RLIMIT_NPROC, 32768)
    conf = cache / "containers.conf"
    conf.write_text(
        "[containers]\n"
        f'default_ulimits = ["nofile={nofile}:{nofile}", "nproc={nproc}:{nproc}"]\n'
        "[engine]\n"
        'runtime = "runc"\n',
        encoding="utf-8",
    )
    env = {**os.environ, "CONTAINERS_STORAGE_CONF": str(storage), "CONTAINERS_CONF": str(conf)}
    return Tools(env, cache / "storage")
