"""What the mock provider has seen, for tests to assert on: requests, bodies, disconnects, concurrency."""

from __future__ import annotations

from collections import Counter, deque
from dataclasses import dataclass, field
from typing import Any

__all__ = ["MockStats", "RecordedRequest"]


@dataclass(frozen=True, slots=True)
class RecordedRequest:
    method: str
    path: str
    headers: dict[str, str]  # lower-case names; the last value of a repeated header
    body: Any  # parsed JSON; None when the body was empty or not JSON

    def to_dict(self) -> dict[str, Any]:
        return {"method": self.method, "path": self.path, "headers": self.headers, "body": self.body}


@dataclass
class MockStats:
    keep: int = 100
    by_path: Counter[str] = field(default_factory=Counter)
    recent: deque[RecordedRequest] = field(init=False)
    disconnects: int = 0
    disconnect_times: list[float] = field(default_factory=list)  # time.monotonic() when each was observed
    inflight: int = 0
    max_inflight: int = 0

    def __post_init__(self) -> None:
        self.recent = deque(maxlen=self.keep)

    @property
    def total(self) -> int:
        return sum(self.by_path.values())

    @property
    def last(self) -> RecordedRequest | None:
        return self.recent[-1] if self.recent else None

    def record(self, request: RecordedRequest) -> None:
        self.by_path[request.path] += 1
        self.recent.append(request)

    def record_disconnect(self, at: float) -> None:
        self.disconnects += 1
        self.disconnect_times.append(at)

    def enter(self) -> None:
        self.inflight += 1
        self.max_inflight = max(self.max_inflight, self.inflight)

    def leave(self) -> None:
        self.inflight -= 1

    def reset(self) -> None:
        """Forget everything but the requests now in flight, which still count towards ``max_inflight``."""
        self.by_path.clear()
        self.recent.clear()
        self.disconnects = 0
        self.disconnect_times.clear()
        self.max_inflight = self.inflight

    def to_dict(self) -> dict[str, Any]:
        return {
            "total": self.total,
            "by_path": dict(self.by_path),
            "recent": [r.to_dict() for r in self.recent],
            "disconnects": self.disconnects,
            "disconnect_times": list(self.disconnect_times),
            "inflight": self.inflight,
            "max_inflight": self.max_inflight,
        }
