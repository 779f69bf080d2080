"""Data access of the control plane: keyword-only async functions that take a session and raise
``interlock.api.errors`` exceptions (never HTTP ones)."""

__all__: list[str] = []
