"""The project's in-memory Kubernetes API server for operator tests (see ``server.py`` and ``store.py``)."""

from tests.operator.emulator.kinds import BUILTIN_KINDS, ResourceType
from tests.operator.emulator.server import Emulator, RecordedRequest
from tests.operator.emulator.store import ApiError, Store

__all__ = ["BUILTIN_KINDS", "ApiError", "Emulator", "RecordedRequest", "ResourceType", "Store"]
