"""Golden cases in tests/testdata/crds/<kind>/{valid,invalid}/*.yaml, checked by the models and by the CRD schema.

A valid case passes pydantic, the generated openAPIV3Schema (jsonschema) and the API-server stand-in in
``crdcheck`` (unknown fields, list-map keys, CEL rules). An invalid case starts with ``# expect: <substring>``: pydantic
rejects it with that text, and the CRD rejects it too, so ``kubectl apply`` fails before the operator sees it.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import jsonschema
import pytest
import yaml
from pydantic import BaseModel, ValidationError

from interlock.resources import LLMBackend, Route, format_validation_error
from interlock.resources.crdgen import LLMBACKEND_SPEC_RULES, ROUTE_SPEC_RULES, ROUTE_SPILLOVER_RULES, crd_for
from tests.resources.crdcheck import apply_defaults, cel_rules, evaluate_cel, openapi_schema, rejections

TESTDATA = Path(__file__).resolve().parents[1] / "testdata" / "crds"
MODELS: dict[str, type[BaseModel]] = {"llmbackend": LLMBackend, "route": Route}
CRDS = {kind: crd_for(model) for kind, model in MODELS.items()}


def _cases(validity: str) -> list[Any]:
    cases = [
        pytest.param(kind, path, id=f"{kind}/{path.stem}")
        for kind in MODELS
        for path in sorted((TESTDATA / kind / validity).glob("*.yaml"))
    ]
    assert cases, f"no {validity} cases under {TESTDATA}"
    return cases


def _load(path: Path) -> dict[str, Any]:
    doc = yaml.safe_load(path.read_text(encoding="utf-8"))
    assert isinstance(doc, dict)
    return doc


def _expectation(path: Path) -> str:
    first = path.read_text(encoding="utf-8").splitlines()[0]
    assert first.startswith("# expect: "), f"{path} must start with '# expect: <substring of the error>'"
    return first.removeprefix("# expect: ").strip()


def test_each_kind_has_enough_cases() -> None:
    for kind in MODELS:
        assert len(list((TESTDATA / kind / "valid").glob("*.yaml"))) >= 5
        assert len(list((TESTDATA / kind / "invalid").glob("*.yaml"))) >= 10


@pytest.mark.parametrize(("kind", "path"), _cases("valid"))
def test_valid_case(kind: str, path: Path) -> None:
    doc = _load(path)
    MODELS[kind].model_validate(doc)
    schema = openapi_schema(CRDS[kind])
    jsonschema.Draft4Validator(schema).validate(doc)
    jsonschema.Draft4Validator(schema).validate(apply_defaults(doc, schema))
    assert rejections(CRDS[kind], doc) == []
    # CEL rules must not depend on defaulting having happened.
    assert rejections(CRDS[kind], doc, defaults=False) == []


@pytest.mark.parametrize(("kind", "path"), _cases("invalid"))
def test_invalid_case(kind: str, path: Path) -> None:
    expected = _expectation(path)
    doc = _load(path)
    with pytest.raises(ValidationError) as info:
        MODELS[kind].model_validate(doc)
    message = format_validation_error(info.value)
    assert expected in message
    refused = rejections(CRDS[kind], doc)
    assert refused, f"the CRD accepts {path.name}, which pydantic rejects: {message}"
    assert rejections(CRDS[kind], doc, defaults=False), "CEL rules must not depend on defaulting"
    for reason in refused:  # a CEL rule speaks with the pydantic validator's words
        if ": Invalid value: " in reason and not reason.startswith("metadata."):
            assert reason.split(": Invalid value: ", 1)[1] in message


# Every cross-field check in the pydantic validators, and the CRD rule that mirrors it.
CROSS_FIELD_RULES = [
    ("llmbackend", "url-and-serving", "!(has(self.url) && has(self.serving))"),
    (
        "llmbackend",
        "openai-without-url",
        "has(self.url) || has(self.endpoints) || has(self.serving) || self.provider == 'mock'",
    ),
    ("llmbackend", "endpoints-and-url", "!has(self.endpoints) || !(has(self.url) || has(self.serving))"),
    ("llmbackend", "serving-with-anthropic", "!has(self.serving) || self.provider in ['vllm', 'openai']"),
    (
        "llmbackend",
        "autoscaling-min-above-max",
        "!has(self.serving) || !has(self.serving.autoscaling) || "
        "(has(self.serving.autoscaling.minReplicas) ? self.serving.autoscaling.minReplicas : 1) "
        "<= self.serving.autoscaling.maxReplicas",
    ),
    ("route", "all-weights-zero", "self.targets.exists(t, !has(t.weight) || t.weight > 0)"),
    (
        "route",
        "fallback-repeats-target",
        "!has(self.fallbacks) || "
        "self.fallbacks.all(f, !self.targets.exists(t, t.backend == f.backend && t.model == f.model))",
    ),
    ("route", "spillover-target-and-backend", "spec.spillover: has(self.target) != has(self.backend)"),
    ("route", "spillover-without-target", "spec.spillover: has(self.target) != has(self.backend)"),
]


def _at(rule: str) -> tuple[str, str]:
    """``"spec.spillover: <rule>"`` -> the schema node's path and the rule; a bare rule is on ``spec``."""
    path, sep, rest = rule.partition(": ")
    return (path, rest) if sep and " " not in path else ("spec", rule)


def _node(doc: dict[str, Any], path: str) -> Any:
    for key in path.split("."):
        doc = doc[key]
    return doc


@pytest.mark.parametrize(("kind", "case", "rule"), CROSS_FIELD_RULES, ids=[c[1] for c in CROSS_FIELD_RULES])
def test_cel_rule_mirrors_pydantic_validator(kind: str, case: str, rule: str) -> None:
    at, rule = _at(rule)
    rules = {r["rule"]: r for path, r in cel_rules(openapi_schema(CRDS[kind])) if path == at}
    assert rule in rules, f"{at} lost its CEL rule {rule!r}"
    doc = _load(TESTDATA / kind / "invalid" / f"{case}.yaml")
    assert not evaluate_cel(rule, _node(doc, at))
    with pytest.raises(ValidationError) as info:
        MODELS[kind].model_validate(doc)
    entry = rules[rule]
    message = str(evaluate_cel(entry["messageExpression"], _node(doc, at))) if "messageExpression" in entry else ""
    assert (message or entry["message"]) in format_validation_error(info.value)


def test_every_cel_rule_is_listed_above() -> None:
    listed = {(kind, *_at(rule)) for kind, _, rule in CROSS_FIELD_RULES}
    present = {(kind, path, r["rule"]) for kind, crd in CRDS.items() for path, r in cel_rules(openapi_schema(crd))}
    assert present == listed
    mirrored = (*LLMBACKEND_SPEC_RULES, *ROUTE_SPEC_RULES, *ROUTE_SPILLOVER_RULES)
    assert {r["rule"] for r in mirrored} == {rule for _, _, rule in listed}


@pytest.mark.parametrize(
    ("kind", "path", "keys"),
    [
        ("llmbackend", "spec.models", ["name"]),
        ("route", "spec.targets", ["backend", "model"]),
        ("route", "spec.fallbacks", ["backend", "model"]),
        ("llmbackend", "spec.endpoints", ["url"]),
        ("llmbackend", "status.conditions", ["type"]),
        ("route", "status.conditions", ["type"]),
    ],
)
def test_duplicates_are_rejected_by_list_map_keys(kind: str, path: str, keys: list[str]) -> None:
    node = openapi_schema(CRDS[kind])
    for part in path.split("."):
        node = node["properties"][part]
    assert node["x-kubernetes-list-type"] == "map"
    assert node["x-kubernetes-list-map-keys"] == keys


def test_cel_messages_fill_in_the_provider() -> None:
    [_, _, missing_url, wrong_provider, _] = LLMBACKEND_SPEC_RULES
    spec = {"provider": "anthropic", "models": [{"name": "m"}], "serving": {"model": "m"}}
    assert evaluate_cel(missing_url["rule"], spec)
    assert not evaluate_cel(wrong_provider["rule"], spec)
    assert evaluate_cel(wrong_provider["messageExpression"], spec) == (
        "serving runs an OpenAI-compatible engine: provider must be vllm or openai, not 'anthropic'"
    )
    assert not evaluate_cel(missing_url["rule"], {"provider": "vllm", "models": []})
    assert evaluate_cel(missing_url["rule"], {"provider": "mock", "models": []})
