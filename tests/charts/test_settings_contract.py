"""The environment the chart gives each container is one its settings accept: the operator's (and, through it,
the gateways'), the API's and the migration Job's, in production mode, with the Secrets the chart renders."""

from __future__ import annotations

import base64
import os
import re
from typing import Any

import kubernetes_validate
import pytest

from interlock.api.settings import ApiSettings
from interlock.contract.gatewaycred import mint_gateway_credential, verify_gateway_credential
from interlock.gateway.settings import GatewaySettings
from interlock.operator.builders import control_plane_secret, gateway_deployment
from interlock.operator.settings import OperatorSettings
from tests.charts.rendering import CHART, KUBE_VERSION, Rendered, ci_values, render
from tests.gateway.harness import backend, config, route


def _secrets(rendered: Rendered) -> dict[tuple[str, str], str]:
    return {
        (secret["metadata"]["name"], key): base64.b64decode(value).decode()
        for secret in rendered.of_kind("Secret")
        for key, value in secret["data"].items()
    }


def _environ(container: dict[str, Any], secrets: dict[tuple[str, str], str]) -> dict[str, str]:
    """The container's environment as the kubelet would resolve it (Secret references included)."""
    env = {}
    for var in container.get("env", []):
        if "value" in var:
            env[var["name"]] = re.sub(r"\$\((\w+)\)", lambda m: env.get(m.group(1), m.group(0)), var["value"])
        elif "fieldRef" in var["valueFrom"]:  # the downward API: the pod's own name
            assert var["valueFrom"]["fieldRef"]["fieldPath"] == "metadata.name"
            env[var["name"]] = "interlock-gateway-default-5d4f8-x2x9q"
        else:
            ref = var["valueFrom"]["secretKeyRef"]
            env[var["name"]] = secrets[ref["name"], ref["key"]]
    return env


def _use(monkeypatch: pytest.MonkeyPatch, env: dict[str, str]) -> None:
    """Exactly the container's variables among those the settings read."""
    for name in [n for n in os.environ if n.startswith("INTERLOCK_")] + ["DATABASE_URL", "REDIS_URL"]:
        monkeypatch.delenv(name, raising=False)
    for name, value in env.items():
        monkeypatch.setenv(name, value)


@pytest.mark.parametrize("values_file", ["bundled-db-values.yaml", "redis-values.yaml"])
def test_it_should_configure_the_operator_and_through_it_the_gateways(
    monkeypatch: pytest.MonkeyPatch, values_file: str
) -> None:
    values = ci_values(CHART / "ci" / values_file)
    rendered = render(values)
    operator = rendered.one("Deployment", "-operator")["spec"]["template"]["spec"]["containers"][0]
    _use(monkeypatch, _environ(operator, _secrets(rendered)))
    settings = OperatorSettings()
    assert settings.gateway_image == "ghcr.io/interlock-dev/interlock:0.1.0"
    assert settings.gateway_replicas == values.get("gateway", {}).get("replicas", 2)

    manifests = config(backend("a", "http://upstream:8000/v1"), route("chat", [("a", "m1")]))
    deployment = gateway_deployment("team-a", "default", manifests, settings)
    kubernetes_validate.validate(deployment, KUBE_VERSION, strict=True)
    gateway = deployment["spec"]["template"]["spec"]["containers"][0]
    # The gateway's own credential, minted by the operator under the chart's signing key.
    credential = control_plane_secret("team-a", "default", mint_gateway_credential(
        settings.gateway_signing_key.get_secret_value().encode(), "team-a/default"))  # type: ignore[union-attr]  # fmt: skip
    secrets = {("default-controlplane", "token"): base64.b64decode(credential["data"]["token"]).decode()}
    _use(monkeypatch, _environ(gateway, secrets))
    gateway_settings = GatewaySettings()
    assert gateway_settings.control_plane_url == "http://il-interlock-api.interlock.svc:8081"
    assert gateway_settings.control_plane_token is not None
    signing_key = _secrets(rendered)["il-interlock-auth", "gateway-signing-key"].encode()
    scope = verify_gateway_credential(signing_key, gateway_settings.control_plane_token.get_secret_value())
    assert scope == "team-a/default"
    redis = values.get("redis", {}).get("enabled", False)
    assert gateway_settings.redis_url == ("redis://il-interlock-redis.interlock.svc:6379/0" if redis else None)


@pytest.mark.parametrize("values", [{}, ci_values(CHART / "ci" / "bundled-db-values.yaml")], ids=["generated", "given"])
def test_it_should_start_the_api_and_the_migration_in_production_mode(
    monkeypatch: pytest.MonkeyPatch, values: dict[str, Any]
) -> None:
    rendered = render(values)
    secrets = _secrets(rendered)
    for kind, suffix in (("Deployment", "-api"), ("Job", "-migrate")):
        container = rendered.one(kind, suffix)["spec"]["template"]["spec"]["containers"][0]
        _use(monkeypatch, _environ(container, secrets))
        settings = ApiSettings()
        assert settings.environment == "production"
        assert settings.url == secrets["il-interlock-postgresql", "database-url"]
        assert settings.admin_secret() == secrets["il-interlock-auth", "admin-token"]
        if kind == "Deployment":
            assert settings.gateway_secret() == secrets["il-interlock-auth", "gateway-token"]
            assert container["args"] == ["--host", "0.0.0.0", "--port", "8081"]
