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
from interlock.deploy.secrets import parse_spec, values_for
from interlock.gateway.settings import GatewaySettings
from interlock.operator.builders import control_plane_secret, gateway_deployment
from interlock.operator.settings import OperatorSettings
from tests.charts.rendering import CHART, KUBE_VERSION, Rendered, ci_values, render
from tests.gateway.harness import backend, config, route

REDIS_PASSWORD = "redis-password-copied-to-the-gateways-namespace"


def _secrets(rendered: Rendered) -> dict[tuple[str, str], str]:
    """The Secrets the chart's secrets hook Job creates, as it creates them (interlock.deploy.secrets)."""
    out = {}
    for job in rendered.of_kind("Job"):
        if not job["metadata"]["name"].endswith("-secrets"):
            continue
        env = {e["name"]: e["value"] for e in job["spec"]["template"]["spec"]["containers"][0]["env"]}
        for spec in parse_spec(env["INTERLOCK_GENERATED_SECRETS"]):
            out |= {(spec.name, key): value for key, value in values_for(spec, {}).items()}
    return out


def _environ(container: dict[str, Any], secrets: dict[tuple[str, str], str]) -> dict[str, str]:
    """The container's environment as the kubelet would resolve it: Secret references, and `$(NAME)` in a value
    expanded from the variables defined before it."""
    env: dict[str, str] = {}
    for var in container.get("env", []):
        if "value" in var:
            env[var["name"]] = re.sub(r"\$\(([A-Za-z_][A-Za-z0-9_]*)\)", lambda m: env.get(m[1], m[0]), var["value"])
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
    generated = _secrets(rendered)  # once: each call draws new random values
    operator = rendered.one("Deployment", "-operator")["spec"]["template"]["spec"]["containers"][0]
    _use(monkeypatch, _environ(operator, generated))
    settings = OperatorSettings()
    assert settings.gateway_image == "ghcr.io/interlock-dev/interlock:0.1.0"
    assert settings.gateway_replicas == values.get("gateway", {}).get("replicas", 2)

    manifests = config(backend("a", "http://upstream:8000/v1"), route("chat", [("a", "m1")]))
    deployment = gateway_deployment("team-a", "default", manifests, settings)
    kubernetes_validate.validate(deployment, KUBE_VERSION, strict=True)
    gateway = deployment["spec"]["template"]["spec"]["containers"][0]
    # The gateway's own credential, minted by the operator under the chart's signing key.
    assert settings.gateway_signing_key is not None
    minted = mint_gateway_credential(settings.gateway_signing_key.get_secret_value().encode(), "team-a/default")
    credential = control_plane_secret("team-a", "default", minted)
    secrets = {
        ("default-controlplane", "token"): base64.b64decode(credential["data"]["token"]).decode(),
        ("interlock-redis", "password"): REDIS_PASSWORD,
    }
    _use(monkeypatch, _environ(gateway, secrets))
    gateway_settings = GatewaySettings()
    assert gateway_settings.control_plane_url == "http://il-interlock-api.interlock.svc:8081"
    assert gateway_settings.control_plane_token is not None
    signing_key = generated["il-interlock-auth", "gateway-signing-key"].encode()
    scope = verify_gateway_credential(signing_key, gateway_settings.control_plane_token.get_secret_value())
    assert scope == "team-a/default"
    redis = values.get("redis", {}).get("mode") == "bundled"
    bundled = f"redis://:{REDIS_PASSWORD}@il-interlock-redis.interlock.svc:6379/0"
    assert gateway_settings.redis_url == (bundled if redis else None)


EXTERNAL = {"database": {"mode": "external", "external": {"existingSecret": "il-interlock-postgresql"}}}


@pytest.mark.parametrize("values", [{}, EXTERNAL], ids=["bundled", "external"])
def test_it_should_start_the_api_and_the_migration_in_production_mode(
    monkeypatch: pytest.MonkeyPatch, values: dict[str, Any]
) -> None:
    rendered = render(values)
    secrets = _secrets(rendered)
    if values:  # the external DSN, given by the user in the Secret named
        secrets["il-interlock-postgresql", "database-url"] = "postgresql://interlock:pw@db.example.com:5432/interlock"
    api = rendered.one("Deployment", "-api")["spec"]["template"]["spec"]
    migrate = (
        rendered.one("Job", "-migrate")["spec"]["template"]["spec"]["containers"][0]
        if values
        else api["initContainers"][0]
    )
    for kind, container in (("Deployment", api["containers"][0]), ("migration", migrate)):
        _use(monkeypatch, _environ(container, secrets))
        settings = ApiSettings()
        assert settings.environment == "production"
        assert settings.url == secrets["il-interlock-postgresql", "database-url"]
        assert settings.admin_secret() == secrets["il-interlock-auth", "admin-token"]
        if kind == "Deployment":
            assert container["args"] == ["--host", "0.0.0.0", "--port", "8081"]
