"""The public surface, pinned (httpx's test_exported_members idea): a change to it is a deliberate edit here."""

from __future__ import annotations

import importlib
import inspect
from pathlib import Path
from types import ModuleType

import pytest

import interlock
import interlock.gatewayconfig
import interlock.resources

RESOURCES_ALL = [
    "API_GROUP",
    "API_VERSION",
    "GROUP_VERSION",
    "BackendLimits",
    "CircuitBreaker",
    "Condition",
    "Duration",
    "Endpoint",
    "LLMBackend",
    "LLMBackendSpec",
    "LLMBackendStatus",
    "ManifestError",
    "ManifestSet",
    "ModelCache",
    "ModelPricing",
    "ObjectMeta",
    "Picker",
    "Provider",
    "Queueing",
    "RetryPolicy",
    "Route",
    "RouteFallback",
    "RouteLimits",
    "RouteSpec",
    "RouteStatus",
    "RouteTarget",
    "RouteTimeouts",
    "SecretKeyRef",
    "ServedModel",
    "Serving",
    "ServingEngine",
    "Spillover",
    "format_validation_error",
    "load_manifests",
    "parse_duration",
    "set_condition",
]

GATEWAYCONFIG_ALL = [
    "SCHEMA_VERSION",
    "BackendConfig",
    "CircuitBreakerConfig",
    "ConfigLoader",
    "ConfigSource",
    "ConfigStatus",
    "CredentialRef",
    "DiscoveryConfig",
    "FileConfigSource",
    "GatewayConfig",
    "ModelPrice",
    "PickerConfig",
    "QueueingConfig",
    "RetryConfig",
    "RouteConfig",
    "SpilloverConfig",
    "StaticConfigSource",
    "TargetConfig",
    "TimeoutConfig",
    "compile_config",
    "self_hosted_pods_service",
    "self_hosted_url",
]


def _isort_key(name: str) -> tuple[int, str]:
    """The order ruff's RUF022 keeps ``__all__`` in: CONSTANTS, then Classes, then functions."""
    if name.isupper():
        return (0, name)
    return (1, name) if name[:1].isupper() else (2, name)


@pytest.mark.parametrize(
    ("package", "expected"),
    [(interlock.resources, RESOURCES_ALL), (interlock.gatewayconfig, GATEWAYCONFIG_ALL)],
    ids=["resources", "gatewayconfig"],
)
def test_public_surface(package: ModuleType, expected: list[str]) -> None:
    assert package.__all__ == expected
    assert expected == sorted(set(expected), key=_isort_key)
    for name in expected:
        assert getattr(package, name, None) is not None, f"{package.__name__}.{name} is not importable"
    namespace: dict[str, object] = {}
    exec(f"from {package.__name__} import *", namespace)
    assert sorted(set(namespace) - {"__builtins__"}) == sorted(expected)


def _module_names() -> list[str]:
    root = Path(interlock.__file__).parent
    names = []
    for path in sorted(root.rglob("*.py")):
        parts = path.relative_to(root.parent).with_suffix("").parts
        if parts[-1] == "__main__":
            continue
        if parts[-1] == "__init__":
            parts = parts[:-1]
        names.append(".".join(parts))
    return names


@pytest.mark.parametrize("module_name", _module_names())
def test_modules_with_public_definitions_declare_all(module_name: str) -> None:
    module = importlib.import_module(module_name)
    public = sorted(
        name
        for name, obj in vars(module).items()
        if not name.startswith("_")
        and (inspect.isfunction(obj) or inspect.isclass(obj))
        and getattr(obj, "__module__", None) == module_name
    )
    declared = getattr(module, "__all__", None)
    if public:
        assert declared is not None, f"{module_name} defines {public} but has no __all__"
    missing = [name for name in declared or () if not hasattr(module, name)]
    assert missing == [], f"{module_name}.__all__ names what it does not define: {missing}"
    assert len(set(declared or ())) == len(declared or ()), f"{module_name}.__all__ has duplicates"
