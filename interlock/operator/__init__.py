"""The Kubernetes operator: ``LLMBackend`` and ``Route`` reconciled into inference workloads and gateways."""

from interlock.operator.main import kopf_settings, run_operator
from interlock.operator.settings import OperatorSettings

__all__ = ["OperatorSettings", "kopf_settings", "run_operator"]
