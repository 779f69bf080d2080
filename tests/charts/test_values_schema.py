"""values.schema.json rejects unknown and mistyped values, naming the offending key, before anything renders."""

from __future__ import annotations

import json
from typing import Any

import helm_python
import pytest
import yaml

from tests.charts.rendering import CHART, CI_VALUES, CRDS_CHART, ci_values, render

REJECTED: list[tuple[str, dict[str, Any], str]] = [
    ("unknown top-level key", {"replicaCount": 3}, "additional properties 'replicaCount' not allowed"),
    ("typo in a nested key", {"operator": {"replica": 1}}, "'/operator': additional properties 'replica'"),
    ("string for an integer", {"api": {"replicas": "two"}}, "'/api/replicas': got string, want integer"),
    ("latest image tag", {"image": {"tag": "latest"}}, "'/image/tag'"),
    ("space in an image tag", {"image": {"tag": "1 0"}}, "'/image/tag'"),
    ("malformed digest", {"image": {"digest": "sha256:abc"}}, "'/image/digest'"),
    ("latest Postgres tag", {"postgresql": {"image": {"tag": "latest"}}}, "'/postgresql/image/tag'"),
    ("unknown pull policy", {"image": {"pullPolicy": "Sometimes"}}, "'/image/pullPolicy'"),
    ("unknown database mode", {"database": {"mode": "sqlite"}}, "'/database/mode'"),
    ("external database without its Secret", {"database": {"mode": "external"}}, "'/database/external/existingSecret'"),
    ("eleven operators", {"operator": {"replicas": 11}}, "'/operator/replicas'"),
    ("invalid namespace name", {"operator": {"watchNamespaces": ["Team_A"]}}, "'/operator/watchNamespaces/0'"),
    (
        "writable root filesystem",
        {"containerSecurityContext": {"readOnlyRootFilesystem": False}},
        "readOnlyRootFilesystem",
    ),
    ("root pods", {"podSecurityContext": {"runAsNonRoot": False}}, "'/podSecurityContext/runAsNonRoot'"),
    (
        "privilege escalation",
        {"containerSecurityContext": {"allowPrivilegeEscalation": True}},
        "allowPrivilegeEscalation",
    ),
    (
        "string for a boolean",
        {"networkPolicy": {"enabled": "yes"}},
        "'/networkPolicy/enabled': got string, want boolean",
    ),
    ("malformed quantity", {"api": {"resources": {"limits": {"memory": "lots"}}}}, "'/api/resources/limits/memory'"),
    ("port out of range", {"api": {"port": 70000}}, "'/api/port'"),
    ("malformed duration", {"monitoring": {"podMonitors": {"interval": "often"}}}, "'/monitoring/podMonitors/"),
    ("the old ServiceMonitor switch", {"serviceMonitor": {"enabled": True}}, "'serviceMonitor' not allowed"),
    ("unknown Redis mode", {"redis": {"mode": "cluster"}}, "'/redis/mode'"),
    ("the old Redis switch", {"redis": {"enabled": True}}, "additional properties 'enabled' not allowed"),
    ("external Redis without a host", {"redis": {"mode": "external"}}, "'/redis/external"),
    ("a password in the values", {"postgresql": {"auth": {"password": "x"}}}, "'password' not allowed"),
    ("a token in the values", {"auth": {"adminToken": "x"}}, "'adminToken' not allowed"),
    ("a negative drain", {"gateway": {"drainSeconds": -1}}, "'/gateway/drainSeconds'"),
    ("a Postgres user that breaks the DSN", {"postgresql": {"auth": {"username": "a@b"}}}, "'/postgresql/auth/"),
    ("an error ratio of 0", {"monitoring": {"prometheusRule": {"upstreamErrorRatio": 0}}}, "upstreamErrorRatio"),
    ("number for a label value", {"dashboards": {"labelValue": 1}}, "'/dashboards/labelValue'"),
    ("non-HTTP control-plane URL", {"gateway": {"controlPlane": {"url": "ftp://cp"}}}, "'/gateway/controlPlane/url'"),
    ("unknown API environment", {"api": {"environment": "staging"}}, "'/api/environment'"),
    ("sample ratio over 1", {"gateway": {"tracing": {"sampleRatio": 5}}}, "'/gateway/tracing/sampleRatio'"),
    ("non-HTTP OTLP endpoint", {"gateway": {"tracing": {"endpoint": "collector:4317"}}}, "'/gateway/tracing/endpoint'"),
    ("env entry without a name", {"gateway": {"extraEnv": [{"value": "x"}]}}, "'/gateway/extraEnv/0'"),
    ("the shared token Secret is gone", {"gateway": {"controlPlane": {"tokenSecret": {"name": "x"}}}}, "tokenSecret"),
]


@pytest.mark.parametrize(("values", "message"), [pytest.param(v, m, id=i) for i, v, m in REJECTED])
def test_it_should_reject_bad_values_naming_the_key(values: dict[str, Any], message: str) -> None:
    with pytest.raises(helm_python.HelmValuesError) as info:
        render(values)
    assert message in str(info.value)


def test_it_should_reject_unknown_values_of_the_crds_chart() -> None:
    with pytest.raises(helm_python.HelmValuesError, match="additional properties 'keepCrds' not allowed"):
        render({"keepCrds": False}, chart=CRDS_CHART)
    with pytest.raises(helm_python.HelmValuesError, match="'/keep': got string, want boolean"):
        render({"keep": "no"}, chart=CRDS_CHART)


def _schema_paths(node: dict[str, Any], path: str = "") -> set[str]:
    out = set()
    for key, sub in node.get("properties", {}).items():
        out.add(f"{path}.{key}".lstrip("."))
        if sub.get("additionalProperties") is False:
            out |= _schema_paths(sub, f"{path}.{key}")
    return out


def _value_paths(values: dict[str, Any], schema: dict[str, Any], path: str = "") -> set[str]:
    """Paths of the defaults down to where the schema stops describing keys (free-form Kubernetes objects)."""
    out = set()
    for key, value in values.items():
        sub = schema.get("properties", {}).get(key, {})
        out.add(f"{path}.{key}".lstrip("."))
        if isinstance(value, dict) and sub.get("additionalProperties") is False:
            out |= _value_paths(value, sub, f"{path}.{key}")
    return out


@pytest.mark.parametrize("chart", [CHART, CRDS_CHART], ids=["interlock", "interlock-crds"])
def test_it_should_type_every_default_value_and_forbid_the_rest(chart: Any) -> None:
    schema = json.loads((chart / "values.schema.json").read_text())
    defaults = yaml.safe_load((chart / "values.yaml").read_text())
    assert schema["additionalProperties"] is False
    assert _value_paths(defaults, schema) == _schema_paths(schema) - {"global"}


@pytest.mark.parametrize("chart", [CHART, CRDS_CHART], ids=["interlock", "interlock-crds"])
def test_it_should_document_every_value_in_values_yaml(chart: Any) -> None:
    """helm-docs style: a `# --` comment right above a key documents it and everything under it; every leaf value
    must be documented by its own comment or an ancestor's."""
    lines = (chart / "values.yaml").read_text().splitlines()
    assert lines[0].startswith("# yaml-language-server: $schema=values.schema.json")
    undocumented = []
    stack: list[tuple[int, bool]] = []  # (indent, documented) of the enclosing keys
    comment_pending = False
    for number, line in enumerate(lines):
        stripped = line.strip()
        if stripped.startswith("# --"):
            comment_pending = True
            continue
        if not stripped or stripped.startswith("#"):
            continue
        indent = len(line) - len(line.lstrip())
        if stripped.startswith("-"):  # a list item belongs to the key above it
            comment_pending = False
            continue
        while stack and stack[-1][0] >= indent:
            stack.pop()
        documented = comment_pending or any(doc for _, doc in stack)
        comment_pending = False
        if stripped.partition(":")[2].strip() == "" and _opens_block(lines, number):
            stack.append((indent, documented))
        elif not documented:
            undocumented.append(".".join(_path(lines, number)))
    assert undocumented == []


def _opens_block(lines: list[str], number: int) -> bool:
    indent = len(lines[number]) - len(lines[number].lstrip())
    for line in lines[number + 1 :]:
        if line.strip() and not line.strip().startswith("#"):
            return len(line) - len(line.lstrip()) > indent
    return False


def _path(lines: list[str], number: int) -> list[str]:
    """The dotted path of the key on line ``number``, for the failure message."""
    path = [lines[number].strip().partition(":")[0]]
    indent = len(lines[number]) - len(lines[number].lstrip())
    for line in reversed(lines[:number]):
        stripped = line.strip()
        if stripped and not stripped.startswith(("#", "-")) and len(line) - len(line.lstrip()) < indent:
            indent = len(line) - len(line.lstrip())
            path.insert(0, stripped.partition(":")[0])
    return path


@pytest.mark.parametrize("path", CI_VALUES, ids=lambda p: p.stem)
def test_it_should_accept_each_ci_values_file(path: Any) -> None:
    with helm_python.Chart.load(CHART) as chart:
        chart.validate_schema(ci_values(path))
