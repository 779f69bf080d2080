"""The operator-to-gateway contract: the compiled, Kubernetes-free ``GatewayConfig`` and its hot-reloading loader."""

from interlock.gatewayconfig.compile import compile_config, self_hosted_pods_service, self_hosted_url
from interlock.gatewayconfig.loader import (
    ConfigLoader,
    ConfigSource,
    ConfigStatus,
    FileConfigSource,
    StaticConfigSource,
)
from interlock.gatewayconfig.model import (
    SCHEMA_VERSION,
    BackendConfig,
    CircuitBreakerConfig,
    CredentialRef,
    DiscoveryConfig,
    GatewayConfig,
    ModelPrice,
    PickerConfig,
    QueueingConfig,
    RetryConfig,
    RouteConfig,
    SpilloverConfig,
    TargetConfig,
    TimeoutConfig,
)

__all__ = [
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
