"""How the ``interlock`` commands tell a user what is wrong: one line per problem, on stderr, no traceback."""

from __future__ import annotations

import re
import sys
from collections.abc import Mapping
from typing import Any, TypeVar

from pydantic import ValidationError
from pydantic_settings import BaseSettings, SettingsError

__all__ = ["build_settings", "report", "settings_problems"]

S = TypeVar("S", bound=BaseSettings)


def report(command: str, problems: str | list[str]) -> None:
    """``interlock up: <problem>``, or a count and one indented line per problem."""
    lines = [problems] if isinstance(problems, str) else problems
    prefix = f"interlock {command}" if command else "interlock"
    if len(lines) == 1:
        print(f"{prefix}: {lines[0]}", file=sys.stderr, flush=True)
        return
    print(f"{prefix}: {len(lines)} problems:", file=sys.stderr)
    for line in lines:
        print(f"  {line}", file=sys.stderr)
    sys.stderr.flush()


def settings_problems(exc: ValidationError, env_prefix: str, flags: Mapping[str, str] | None = None) -> list[str]:
    """A settings class's validation errors, each named by the flag that set the field or else its environment
    variable (``INTERLOCK_GATEWAY_PORT: Input should be a valid integer, not 'x'``); secret values are not shown."""
    flags = flags or {}
    lines = []
    for err in exc.errors(include_url=False):
        field = str(err["loc"][0]) if err["loc"] else ""
        message = str(err["msg"]).removeprefix("Value error, ")
        if not field:  # a check across fields, which names them itself
            lines.append(message)
            continue
        value = err.get("input")
        if "token" not in field and "key" not in field and isinstance(value, str | int | float):
            message += f", not {value!r}"
        lines.append(f"{flags.get(field) or env_prefix + field.upper()}: {message}")
    return lines


def build_settings(cls: type[S], env_prefix: str, **overrides: Any) -> S | list[str]:
    """``cls(**overrides)``, or its problems: each named by the flag that gave the value (overrides come from
    ``--name`` flags) or else by its environment variable."""
    try:
        return cls(**overrides)
    except ValidationError as exc:
        return settings_problems(exc, env_prefix, {name: f"--{name.replace('_', '-')}" for name in overrides})
    except SettingsError as exc:  # a list or mapping setting that is not JSON
        found = re.search(r'field "(\w+)"', str(exc))
        name = f"{env_prefix}{found.group(1).upper()}" if found else "a setting"
        return [f'{name}: not valid JSON (list and mapping settings are JSON, e.g. \'["a", "b"]\')']
