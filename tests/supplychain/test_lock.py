"""``lock/`` agrees with ``pyproject.toml``: every requirement satisfied by a pin with hashes, no pin that nothing
needs, and the packages this test runs on are exactly the locked ones. Offline: the lock files, ``pyproject.toml``
and the installed distributions' metadata only. When it fails, run ``scripts/lock`` and commit ``lock/``."""

from __future__ import annotations

import importlib.metadata
import tomllib
from collections.abc import Iterable
from pathlib import Path

import pytest
from packaging.requirements import Requirement

from tests.supplychain.support import LOCK_DIR, REPO, Pin, lockfile

PYPROJECT = tomllib.loads((REPO / "pyproject.toml").read_text())
PROJECT = PYPROJECT["project"]
RUNTIME_EXTRAS = ("operator",)  # the extras the image installs (lock/runtime.txt); `dev` is not locked


def _requirements(lines: Iterable[str]) -> list[Requirement]:
    return [Requirement(line) for line in lines]


def _build_in() -> list[Requirement]:
    lines = (REPO / "lock" / "build.in").read_text().splitlines()
    return _requirements(line for line in lines if line.strip() and not line.startswith("#"))


CORE = _requirements(PROJECT["dependencies"])
RUNTIME = CORE + _requirements(r for extra in RUNTIME_EXTRAS for r in PROJECT["optional-dependencies"][extra])
LOCKS = {  # lock file -> (its roots, the `# via` entry that marks a root)
    "runtime.txt": (RUNTIME, lockfile.PROJECT_VIA),
    "core.txt": (CORE, lockfile.PROJECT_VIA),
    "build.txt": (_build_in(), "-r lock/build.in"),
}


def _read(name: str) -> dict[str, Pin]:
    return lockfile.read_lock(LOCK_DIR / name)


def _unsatisfied(requirements: list[Requirement], pins: dict[str, Pin]) -> list[str]:
    problems = []
    for req in requirements:
        pin = pins.get(lockfile.normalize(req.name))
        if pin is None:
            problems.append(f"{req} has no pin")
        elif not req.specifier.contains(pin.version, prereleases=True):
            problems.append(f"{req} is not satisfied by the pin {pin.name}=={pin.version}")
        elif not {lockfile.normalize(e) for e in req.extras} <= pin.extras:
            problems.append(f"{req} asks for extras the pin {pin.name}[{','.join(sorted(pin.extras))}] lacks")
    return problems


@pytest.mark.parametrize("name", sorted(LOCKS))
def test_every_requirement_is_satisfied_by_a_hashed_pin(name: str) -> None:
    roots, _ = LOCKS[name]
    pins = _read(name)
    problems = _unsatisfied(roots, pins)
    problems += [f"{p.name}=={p.version} (line {p.line}) has no sha256 hash" for p in pins.values() if not p.hashes]
    assert not problems, f"lock/{name} disagrees with its sources (run scripts/lock):\n" + "\n".join(problems)


@pytest.mark.parametrize("name", sorted(LOCKS))
def test_no_pin_that_nothing_needs(name: str) -> None:
    """Reachable from the roots through the resolver's own `# via` annotations; a pin that says it comes from
    pyproject.toml must still be a requirement there."""
    roots, root_via = LOCKS[name]
    pins = _read(name)
    root_names = {lockfile.normalize(r.name) for r in roots}
    stale_roots = [p.name for p in pins.values() if root_via in p.via and p.name not in root_names]
    reached = set(root_names & set(pins))
    changed = True
    while changed:
        grown = {p.name for p in pins.values() if p.name not in reached and reached.intersection(p.via)}
        reached |= grown
        changed = bool(grown)
    orphans = sorted(set(pins) - reached)
    assert not stale_roots, f"lock/{name} pins {stale_roots} for a requirement that is gone (run scripts/lock)"
    assert not orphans, f"lock/{name} pins {orphans}, which nothing requires (run scripts/lock)"


def test_core_is_the_runtime_lock_without_the_operator_extra() -> None:
    """`./scripts/up` and the image run the same versions of what they share, from the same files."""
    core, runtime = _read("core.txt"), _read("runtime.txt")
    differ = [
        f"{name}: core {pin.version} {len(pin.hashes)} hashes, runtime "
        + (f"{runtime[name].version} {len(runtime[name].hashes)} hashes" if name in runtime else "missing")
        for name, pin in core.items()
        if name not in runtime or (runtime[name].version, runtime[name].hashes) != (pin.version, pin.hashes)
    ]
    assert not differ, "lock/core.txt is not a subset of lock/runtime.txt (run scripts/lock):\n" + "\n".join(differ)


def test_the_build_lock_satisfies_the_build_system() -> None:
    problems = _unsatisfied(_requirements(PYPROJECT["build-system"]["requires"]), _read("build.txt"))
    assert not problems, f"lock/build.txt cannot build the wheel (edit lock/build.in, run scripts/lock): {problems}"


def test_this_environment_runs_exactly_the_locked_runtime_and_nothing_is_missing() -> None:
    """./scripts/test installs lock/runtime.txt before the dev tools, so every pin that applies here is installed
    at its version; and each locked package's own requirements (as its installed metadata states them, with the
    extras the lock asks of it) are pinned too: a hand-edited lock that drops a transitive dependency fails."""
    pins = _read("runtime.txt")
    wrong, missing = [], []
    for pin in pins.values():
        if pin.marker and not _marker_holds(pin.marker, ""):
            continue
        try:
            dist = importlib.metadata.distribution(pin.name)
        except importlib.metadata.PackageNotFoundError:
            wrong.append(f"{pin.name}=={pin.version} is not installed")
            continue
        if dist.version != pin.version:
            wrong.append(f"{pin.name} is {dist.version} here, locked at {pin.version}")
            continue
        for text in dist.requires or []:
            req = Requirement(text)
            if req.marker is not None and not any(req.marker.evaluate({"extra": e}) for e in {"", *pin.extras}):
                continue
            missing += [f"{problem} (needed by {pin.name})" for problem in _unsatisfied([req], pins)]
    assert not wrong, "the test environment is not the locked one (a dev tool moved a pin?):\n" + "\n".join(wrong)
    assert not missing, "lock/runtime.txt misses what its packages require (run scripts/lock):\n" + "\n".join(missing)


def _marker_holds(marker: str, extra: str) -> bool:
    return Requirement(f"x; {marker}").marker.evaluate({"extra": extra})  # type: ignore[union-attr]


def test_lock_files_are_generated_by_scripts_lock() -> None:
    for path in sorted(Path(LOCK_DIR).glob("*.txt")):
        head = path.read_text().splitlines()[:2]
        assert head == ["# This file was autogenerated by uv via the following command:", "#    scripts/lock"], (
            f"{path.name} was not written by scripts/lock: {head}"
        )
