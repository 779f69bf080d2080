"""The fault suite: each case breaks something on purpose (a process, a dependency, an upstream, a client) and
counts what went wrong. ``tests/faults`` asserts that every count is zero; ``python -m bench.faults`` prints the
table for bench/RESULTS.md.

A case module in ``bench/faults/cases/`` exposes ``CASES``, a list of ``Case``. ``Case.run`` starts what it needs
(real processes, real servers on 127.0.0.1, bounded loads), breaks it, and returns an ``Outcome``.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field

__all__ = ["Case", "Outcome"]


@dataclass(frozen=True, slots=True)
class Outcome:
    """What a fault cost. Each count must be zero."""

    lost: int = 0
    """Answered requests whose usage never reached the control plane (or data the fault destroyed)."""
    double_counted: int = 0
    """Requests metered more than once."""
    leaked: int = 0
    """Responses, log lines, spans or usage rows that carried a secret, or resources never given back."""
    detail: str = ""
    """One line on what happened: counts, timings, the error the client saw."""
    facts: dict[str, float] = field(default_factory=dict)
    """Figures worth a column in the table (requests, p99 ms, RSS MB, ...)."""

    @property
    def clean(self) -> bool:
        return self.lost == 0 and self.double_counted == 0 and self.leaked == 0


@dataclass(frozen=True, slots=True)
class Case:
    name: str
    run: Callable[[], Awaitable[Outcome]]
    """Runs the case from scratch; everything it starts is stopped before it returns."""
