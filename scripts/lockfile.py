"""Read the hash-locked requirements files of ``lock/`` as ``scripts/lock`` (``uv pip compile --generate-hashes``)
writes them: one pin per package, ``name[extras]==version ; marker``, its ``--hash=sha256:`` options, then
``# via`` comments naming what needs it (other pins, ``interlock (pyproject.toml)``, ``-r``/``-c`` files).

Standard library only: ``scripts/sbom`` runs it inside the image's build stage, and ``tests/supplychain`` checks
``pyproject.toml`` against the lock with it.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path

__all__ = ["PROJECT_VIA", "Pin", "normalize", "read_lock"]

PROJECT_VIA = "interlock (pyproject.toml)"
_PIN = re.compile(
    r"^(?P<name>[A-Za-z0-9][A-Za-z0-9._-]*)(?:\[(?P<extras>[^\]]*)\])?==(?P<version>[^\s;\\]+)"
    r"\s*(?:;\s*(?P<marker>[^\\]+?))?\s*\\?$"
)
_HASH = re.compile(r"^\s+--hash=(?P<alg>sha256):(?P<digest>[0-9a-f]{64})\s*\\?$")
_VIA_ONE = re.compile(r"^\s+# via (?P<who>.+)$")
_VIA_HEAD = re.compile(r"^\s+# via$")
_VIA_ITEM = re.compile(r"^\s+#   (?P<who>.+)$")


def normalize(name: str) -> str:
    """PEP 503 name normalization."""
    return re.sub(r"[-_.]+", "-", name).lower()


@dataclass
class Pin:
    name: str  # normalized
    version: str
    extras: frozenset[str]
    marker: str | None
    line: int
    hashes: list[str] = field(default_factory=list)
    via: list[str] = field(default_factory=list)  # normalized package names, or PROJECT_VIA, or "-r FILE"/"-c FILE"


def read_lock(path: Path) -> dict[str, Pin]:
    """The pins of ``path`` by normalized name. Raises ``ValueError`` naming the line for anything else."""
    pins: dict[str, Pin] = {}
    current: Pin | None = None
    in_via = False
    for number, raw in enumerate(path.read_text(encoding="utf-8").splitlines(), start=1):
        if not raw.strip() or (raw.startswith("#") and current is None):
            continue  # the header
        if match := _PIN.match(raw):
            name = normalize(match["name"])
            if name in pins:
                raise ValueError(f"{path}:{number}: {name} is pinned twice")
            extras = frozenset(normalize(e) for e in (match["extras"] or "").split(",") if e.strip())
            current = pins[name] = Pin(name, match["version"], extras, match["marker"], number)
            in_via = False
        elif current is None:
            raise ValueError(f"{path}:{number}: expected a pin `name==version`, found {raw!r}")
        elif match := _HASH.match(raw):
            current.hashes.append(f"{match['alg']}:{match['digest']}")
        elif match := _VIA_ONE.match(raw):
            current.via.append(_via(match["who"]))
        elif _VIA_HEAD.match(raw):
            in_via = True
        elif in_via and (match := _VIA_ITEM.match(raw)):
            current.via.append(_via(match["who"]))
        else:
            raise ValueError(f"{path}:{number}: not a pin, a hash or a `# via` line: {raw!r}")
    return pins


def _via(who: str) -> str:
    who = who.strip()
    return who if who == PROJECT_VIA or who.startswith(("-r ", "-c ")) else normalize(who)
