"""Interlock: a Kubernetes-operated, multi-tenant LLM gateway platform."""

__version__ = "0.1.0"
