"""The generated CRDs: committed files match the models, the API server would accept them, every field is described."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any, Literal

import kubernetes_validate
import pytest
import yaml
from pydantic import BaseModel, ConfigDict, Field

from interlock.cli import main as cli_main
from interlock.resources import LLMBackend, LLMBackendSpec, Route
from interlock.resources.crdgen import (
    GENERATED_HEADER,
    CrdGenerationError,
    crd_filename,
    crd_for,
    dump_crd,
    render_crds,
    structural_schema,
    write_crds,
)

REPO = Path(__file__).resolve().parents[2]
CRD_DIR = REPO / "operator" / "crds"
KUBE_VERSION = "1.33.0"
REGENERATE = "the CRDs drifted from interlock/resources: run `interlock render-crds` and commit operator/crds/"

CRDS = render_crds()


def _schema(crd: dict[str, Any]) -> dict[str, Any]:
    schema: dict[str, Any] = crd["spec"]["versions"][0]["schema"]["openAPIV3Schema"]
    return schema


def _nodes(schema: dict[str, Any], path: str = "") -> Iterator[tuple[str, dict[str, Any]]]:
    """Every schema node with a readable path; list items are ``path[]``, map values ``path.*``."""
    yield path, schema
    for name, sub in schema.get("properties", {}).items():
        yield from _nodes(sub, f"{path}.{name}" if path else name)
    if isinstance(schema.get("items"), dict):
        yield from _nodes(schema["items"], f"{path}[]")
    if isinstance(schema.get("additionalProperties"), dict):
        yield from _nodes(schema["additionalProperties"], f"{path}.*")


def _properties(schema: dict[str, Any], path: str = "") -> Iterator[tuple[str, dict[str, Any]]]:
    for node_path, node in _nodes(schema, path):
        for name, sub in node.get("properties", {}).items():
            yield f"{node_path}.{name}" if node_path else name, sub


def test_render_names_one_file_per_kind() -> None:
    assert sorted(CRDS) == ["llmbackends.interlock.dev.yaml", "routes.interlock.dev.yaml"]
    assert crd_filename(LLMBackend) == "llmbackends.interlock.dev.yaml"


@pytest.mark.parametrize("name", sorted(CRDS))
def test_committed_crd_matches_models(name: str) -> None:
    path = CRD_DIR / name
    assert path.is_file(), f"{path} is missing: {REGENERATE}"
    text = path.read_text(encoding="utf-8")
    assert yaml.safe_load(text) == CRDS[name], REGENERATE
    assert text == dump_crd(CRDS[name]), f"{path} was edited by hand or reformatted: {REGENERATE}"


def test_no_stale_crd_files() -> None:
    assert sorted(p.name for p in CRD_DIR.glob("*.yaml")) == sorted(CRDS), REGENERATE


def test_write_crds_is_stable(tmp_path: Path) -> None:
    first = write_crds(tmp_path / "out")
    assert [p.name for p in first] == list(CRDS)
    texts = [p.read_text(encoding="utf-8") for p in first]
    assert all(t.startswith(GENERATED_HEADER) for t in texts)
    assert "interlock render-crds" in GENERATED_HEADER
    second = write_crds(tmp_path / "out")
    assert [p.read_text(encoding="utf-8") for p in second] == texts


def test_cli_render_crds(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert cli_main(["render-crds", "--out", str(tmp_path)]) == 0
    printed = capsys.readouterr().out.split()
    assert sorted(Path(p).name for p in printed) == sorted(CRDS)
    for name, crd in CRDS.items():
        assert (tmp_path / name).read_text(encoding="utf-8") == dump_crd(crd)


@pytest.mark.parametrize("name", sorted(CRDS))
def test_crd_is_a_valid_custom_resource_definition(name: str) -> None:
    kubernetes_validate.validate(CRDS[name], KUBE_VERSION, strict=True)


def test_kubernetes_validate_catches_a_bad_crd() -> None:
    crd = crd_for(Route)
    crd["spec"]["versions"][0]["schema"]["openAPIV3Schema"]["properties"]["spec"]["typo"] = True
    with pytest.raises(kubernetes_validate.ValidationError):
        kubernetes_validate.validate(crd, KUBE_VERSION, strict=True)


@pytest.mark.parametrize("name", sorted(CRDS))
def test_every_property_has_a_description(name: str) -> None:
    schema = _schema(CRDS[name])
    undocumented = [
        path for path, prop in _properties(schema) if path != "metadata" and not prop.get("description", "").strip()
    ]
    assert undocumented == [], f"add description= to these model fields: {undocumented}"
    assert schema["description"]


@pytest.mark.parametrize("name", sorted(CRDS))
def test_schema_is_structural(name: str) -> None:
    """The rules the API server enforces on a v1 CRD schema, as far as this project's schemas use them."""
    schema = _schema(CRDS[name])
    problems = []
    for path, node in _nodes(schema):
        where = path or "(root)"
        forbidden = {"$ref", "$defs", "definitions", "anyOf", "oneOf", "allOf", "not", "title", "const", "uniqueItems"}
        problems += [f"{where}: {key}" for key in forbidden & set(node)]
        if "type" not in node and not node.get("x-kubernetes-preserve-unknown-fields"):
            problems.append(f"{where}: no type")
        if "properties" in node and "additionalProperties" in node:
            problems.append(f"{where}: properties and additionalProperties together")
        if node.get("default", 0) is None or (node.get("nullable") and "default" in node):
            problems.append(f"{where}: null default")
        if isinstance(node.get("exclusiveMinimum"), int | float) and not isinstance(node["exclusiveMinimum"], bool):
            problems.append(f"{where}: exclusiveMinimum must be the OpenAPI v3.0 boolean")
        for key in node.get("required", []):
            if key not in node.get("properties", {}):
                problems.append(f"{where}: required {key!r} is not a property")
        if node.get("x-kubernetes-list-type") == "map":
            items = node["items"]
            missing = [k for k in node["x-kubernetes-list-map-keys"] if k not in items.get("required", [])]
            if missing:
                problems.append(f"{where}: list-map keys {missing} not required")
    assert schema["properties"]["metadata"] == {"type": "object"}, "the API server owns metadata"
    assert schema["required"] == ["spec"]
    assert problems == []


@pytest.mark.parametrize(
    ("model", "plural", "short_names", "columns"),
    [
        (LLMBackend, "llmbackends", ["llmb"], ["Provider", "URL", "Ready", "Reason", "Replicas", "Age"]),
        (Route, "routes", ["llmroute", "llmr"], ["Model", "Gateway", "Ready", "Reason", "Age"]),
    ],
)
def test_crd_names_and_columns(model: type[BaseModel], plural: str, short_names: list[str], columns: list[str]) -> None:
    crd = crd_for(model)
    spec = crd["spec"]
    kind = model.__name__
    assert crd["metadata"]["name"] == f"{plural}.interlock.dev"
    assert spec["group"] == "interlock.dev"
    assert spec["scope"] == "Namespaced"
    assert spec["names"] == {
        "kind": kind,
        "listKind": f"{kind}List",
        "plural": plural,
        "singular": kind.lower(),
        "shortNames": short_names,
        "categories": ["interlock"],
    }
    [version] = spec["versions"]
    assert (version["name"], version["served"], version["storage"]) == ("v1alpha1", True, True)
    if model is LLMBackend:  # kubectl scale, and autoscalers that target the backend itself
        assert version["subresources"] == {
            "status": {},
            "scale": {
                "specReplicasPath": ".spec.serving.replicas",
                "statusReplicasPath": ".status.replicas",
                "labelSelectorPath": ".status.selector",
            },
        }
    else:
        assert version["subresources"] == {"status": {}}
    printed = {col["name"]: col for col in version["additionalPrinterColumns"]}
    assert list(printed) == columns
    assert printed["Ready"]["jsonPath"] == '.status.conditions[?(@.type=="Ready")].status'
    assert printed["Reason"].get("priority", 0) == 0  # plain `kubectl get` shows why
    assert printed["Age"] == {"name": "Age", "type": "date", "jsonPath": ".metadata.creationTimestamp"}


def test_llmbackend_columns_and_free_form_fields() -> None:
    crd = crd_for(LLMBackend)
    version = crd["spec"]["versions"][0]
    columns = {c["name"]: c for c in version["additionalPrinterColumns"]}
    assert columns["Provider"]["jsonPath"] == ".spec.provider"
    assert columns["URL"]["jsonPath"] == ".status.url"
    assert columns["Replicas"]["jsonPath"] == ".status.readyReplicas"
    assert columns["Replicas"]["priority"] == 1
    serving = _schema(crd)["properties"]["spec"]["properties"]["serving"]["properties"]
    free_form = {"type": "object", "x-kubernetes-preserve-unknown-fields": True}
    assert serving["env"]["items"] == free_form
    assert serving["tolerations"]["items"] == free_form
    assert {k: serving["resources"][k] for k in free_form} == free_form
    assert serving["nodeSelector"]["additionalProperties"] == {"type": "string"}
    assert serving["engine"]["enum"] == ["vllm", "tgi", "llamacpp"]
    assert serving["engine"]["default"] == "vllm"


def test_route_schema_keeps_defaults_and_bounds() -> None:
    spec = _schema(crd_for(Route))["properties"]["spec"]
    props = spec["properties"]
    assert spec["required"] == ["model", "targets"]
    assert props["gateway"]["default"] == "default"
    assert props["targets"]["minItems"] == 1
    assert props["targets"]["items"]["properties"]["weight"] == {
        "description": "Relative weight; 0 takes it out of rotation.",
        "type": "integer",
        "default": 1,
        "minimum": 0,
        "maximum": 10000,
    }
    assert props["retry"]["properties"]["retryOn"]["items"]["enum"] == ["connect", "timeout", "429", "5xx"]
    assert props["timeouts"]["properties"]["request"]["pattern"].startswith("^")
    assert props["targets"]["x-kubernetes-list-map-keys"] == ["backend", "model"]
    assert "on" not in props["retry"]["properties"], "`on:` is a boolean key in YAML 1.1"


class _Toy(BaseModel):
    """A toy model."""

    when: Literal["now"] = Field(default="now", description="A constant.")
    ratio: float | None = Field(default=None, gt=0, lt=1, description="An open interval.")
    count: int = Field(default=1, gt=0, description="Strictly positive.")
    extra: dict[str, Any] = Field(default_factory=dict, description="Anything.")


class _Union(BaseModel):
    """Not expressible."""

    either: int | str = Field(description="An int or a string.")


def test_structural_conversion_of_json_schema_features() -> None:
    props = structural_schema(_Toy)["properties"]
    assert props["when"] == {"description": "A constant.", "type": "string", "enum": ["now"], "default": "now"}
    assert props["ratio"] == {
        "description": "An open interval.",
        "type": "number",
        "minimum": 0,
        "exclusiveMinimum": True,
        "maximum": 1,
        "exclusiveMaximum": True,
    }
    assert props["count"]["minimum"] == 1
    assert "exclusiveMinimum" not in props["count"]
    assert props["extra"] == {
        "description": "Anything.",
        "type": "object",
        "x-kubernetes-preserve-unknown-fields": True,
    }


def test_unsupported_schema_features_stop_generation() -> None:
    with pytest.raises(CrdGenerationError, match=r"either: unions"):
        structural_schema(_Union)
    with pytest.raises(CrdGenerationError, match="not a custom resource"):
        crd_for(LLMBackendSpec)


class _Empty(BaseModel):
    """Nothing inside."""

    model_config = ConfigDict(extra="forbid")


class _HoldsEmpty(BaseModel):
    """Holds an empty, closed object."""

    empty: _Empty = Field(description="No fields.")


def test_closed_empty_object_is_not_free_form() -> None:
    empty = structural_schema(_HoldsEmpty)["properties"]["empty"]
    assert empty == {"description": "No fields.", "type": "object", "properties": {}}
