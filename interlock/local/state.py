"""What ``interlock up`` keeps in its state directory across restarts: the admin token and the first tenant's key.

A restart prints the same two secrets, so the token and key a user copied keep working and no new key is minted per
start. ``--admin-token`` and ``--bootstrap-key`` replace them (and are kept in turn). The file is written only once
every check before serving has passed, readable by its owner only.
"""

from __future__ import annotations

import json
import os
import secrets
from dataclasses import dataclass
from pathlib import Path

__all__ = ["STATE_FILE", "UpState", "read_state", "write_state"]

STATE_FILE = "credentials.json"


@dataclass(frozen=True)
class UpState:
    admin_token: str | None = None
    bootstrap_key: str | None = None

    def with_options(self, *, admin_token: str | None, bootstrap_key: str | None) -> UpState:
        """The flags win over what was kept; a missing admin token is made up here."""
        return UpState(
            admin_token=admin_token or self.admin_token or secrets.token_urlsafe(24),
            bootstrap_key=bootstrap_key or self.bootstrap_key,
        )


def read_state(state_dir: Path) -> UpState | str:
    """What an earlier start kept (empty when nothing was), or why the file cannot be used."""
    path = state_dir / STATE_FILE
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        return UpState()
    except NotADirectoryError:
        return f"--state-dir {state_dir}: not a directory (a file is in its path); choose another"
    except (OSError, ValueError) as exc:
        return f"{path}: cannot read it ({exc}); fix or delete it (a new admin token and key are then made)"
    if not isinstance(data, dict) or not all(isinstance(data.get(k), str | None) for k in ("admin_token", "key")):
        return f"{path}: not the file interlock up writes; delete it (a new admin token and key are then made)"
    return UpState(admin_token=data.get("admin_token"), bootstrap_key=data.get("key"))


def write_state(state_dir: Path, state: UpState) -> None:
    """Write atomically, readable by the owner only."""
    state_dir.mkdir(parents=True, exist_ok=True)
    path = state_dir / STATE_FILE
    partial = path.with_suffix(".tmp")
    fd = os.open(partial, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w", encoding="utf-8") as out:
        json.dump({"admin_token": state.admin_token, "key": state.bootstrap_key}, out)
        out.write("\n")
    os.replace(partial, path)
