"""The chart under GitOps (Argo CD, Flux render with `helm template`, without a cluster to `lookup`): two renders
of the same values are identical, Secrets included; secret values are drawn once, in the cluster, by the secrets
hook Job, which may touch only its own Secrets; and the default image is exactly the one `scripts/image` builds."""

from __future__ import annotations

import json
import subprocess
import tomllib
from typing import Any

import pytest
import yaml

from tests.charts.rendering import CHART, CI_VALUES, REPO, Rendered, ci_values, render

VALUE_SETS = [pytest.param({}, id="default"), *(pytest.param(ci_values(p), id=p.stem) for p in CI_VALUES)]


def _documents(rendered: Rendered) -> list[str]:
    return [yaml.safe_dump(obj, sort_keys=True) for obj in rendered]


@pytest.mark.parametrize("values", VALUE_SETS)
def test_two_renders_of_the_same_values_are_identical_secrets_included(values: dict[str, Any]) -> None:
    first, second, upgrade = render(values), render(values), render(values, is_upgrade=True)
    assert _documents(first) == _documents(second) == _documents(upgrade)
    assert [s for s in first if s["kind"] == "Secret"] == [s for s in second if s["kind"] == "Secret"] == []


def _generated(rendered: Rendered) -> list[dict[str, Any]]:
    job = rendered.one("Job", "-secrets")
    env = {e["name"]: e["value"] for e in job["spec"]["template"]["spec"]["containers"][0]["env"]}
    specs: list[dict[str, Any]] = json.loads(env["INTERLOCK_GENERATED_SECRETS"])
    return specs


def test_the_secrets_job_creates_every_credential_no_value_names() -> None:
    rendered = render({"redis": {"mode": "bundled"}})
    job = rendered.one("Job", "-secrets")
    assert job["metadata"]["annotations"]["helm.sh/hook"] == "pre-install,pre-upgrade"
    assert job["spec"]["template"]["spec"]["containers"][0]["command"] == ["python", "-m", "interlock.deploy.secrets"]
    specs = {s["name"]: s["keys"] for s in _generated(rendered)}
    assert specs == {
        "il-interlock-auth": {
            "admin-token": {"random": 32},
            "gateway-signing-key": {"random": 48},  # >= 32 bytes, as the credential contract requires
        },
        "il-interlock-postgresql": {
            "password": {"random": 24},
            "database-url": {
                "template": "postgresql+asyncpg://interlock:{password}@il-interlock-postgresql.interlock.svc:5432/interlock"
            },
        },
        "il-interlock-redis": {"password": {"random": 32}},
    }
    given = {
        "auth": {"existingSecret": "a"},
        "postgresql": {"auth": {"existingSecret": "p"}},
        "redis": {"mode": "bundled", "auth": {"existingSecret": "r"}},
    }
    everything_given = render(given)
    assert [o for o in everything_given if o["metadata"]["name"].endswith("-secrets")] == []  # no Job, no RBAC
    assert [s["name"] for s in _generated(render({"auth": {"existingSecret": "a"}}))] == ["il-interlock-postgresql"]


def test_the_secrets_job_may_only_create_secrets_and_read_and_patch_its_own() -> None:
    rendered = render({"redis": {"mode": "bundled"}})
    role = rendered.one("Role", "-secrets")
    assert role["metadata"]["namespace"] == "interlock"
    assert role["rules"] == [
        {"apiGroups": [""], "resources": ["secrets"], "verbs": ["create"]},
        {
            "apiGroups": [""],
            "resources": ["secrets"],
            "resourceNames": ["il-interlock-auth", "il-interlock-postgresql", "il-interlock-redis"],
            "verbs": ["get", "patch"],
        },
    ]
    binding = rendered.one("RoleBinding", "-secrets")
    assert binding["subjects"] == [{"kind": "ServiceAccount", "name": "il-interlock-secrets", "namespace": "interlock"}]
    job_pod = rendered.one("Job", "-secrets")["spec"]["template"]["spec"]
    assert job_pod["serviceAccountName"] == "il-interlock-secrets"
    for obj in (role, binding, rendered.one("ServiceAccount", "-secrets")):  # exist before the Job runs
        annotations = obj["metadata"]["annotations"]
        assert annotations["helm.sh/hook"] == "pre-install,pre-upgrade"
        assert int(annotations["helm.sh/hook-weight"]) < int(
            rendered.one("Job", "-secrets")["metadata"]["annotations"]["helm.sh/hook-weight"]
        )


def _interlock_images(rendered: Rendered) -> set[str]:
    images = set()
    for obj in rendered:
        if obj["kind"] in ("Deployment", "Job", "StatefulSet"):
            pod = obj["spec"]["template"]["spec"]
            for container in [*pod.get("initContainers", []), *pod["containers"]]:
                if "interlock" in container["image"]:
                    images.add(container["image"])
                for env in container.get("env", []):
                    if env["name"] == "INTERLOCK_OPERATOR_GATEWAY_IMAGE":
                        images.add(env["value"])
    return images


def test_helm_template_defaults_to_exactly_the_image_scripts_image_builds() -> None:
    built = subprocess.run(
        [str(REPO / "scripts" / "image"), "--print-ref"], capture_output=True, text=True, check=True, timeout=30
    ).stdout.strip()
    version = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]["version"]
    assert built == f"ghcr.io/interlock-dev/interlock:{version}"
    assert yaml.safe_load((CHART / "Chart.yaml").read_text())["appVersion"] == version
    assert _interlock_images(render({"redis": {"mode": "bundled"}})) == {built}  # operator, API, Jobs, gateways
    pulled = render({"image": {"digest": "sha256:" + "ab" * 32}})
    assert _interlock_images(pulled) == {f"ghcr.io/interlock-dev/interlock@sha256:{'ab' * 32}"}


def test_no_template_draws_a_random_value_or_looks_up_the_cluster() -> None:
    nondeterministic = ("lookup", "randAlphaNum", "randAlpha", "randNumeric", "randAscii", "randBytes", "uuidv4", "now")
    for template in sorted((CHART / "templates").rglob("*")):
        if template.is_file():
            text = template.read_text()
            used = [f for f in nondeterministic if f"{f} " in text or f"({f}" in text or f"{f})" in text]
            assert not used, f"{template.relative_to(REPO)} uses {used}"
