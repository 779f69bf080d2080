"""``load_manifests``: the YAML that ``kubectl apply -f`` and ``interlock up`` both take."""

from __future__ import annotations

import base64
from pathlib import Path

import pytest

from interlock.resources import ManifestError, Provider, load_manifests
from interlock.resources.manifests import manifest_files, read_manifests

REPO = Path(__file__).resolve().parents[2]
EXAMPLES = REPO / "examples"

BACKEND = """\
apiVersion: interlock.dev/v1alpha1
kind: LLMBackend
metadata: {{name: {name}, namespace: {namespace}}}
spec:
  provider: mock
  models: [{{name: mock-small}}]
"""


def _write(path: Path, text: str) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text, encoding="utf-8")
    return path


def test_local_examples() -> None:
    result = load_manifests(manifest_files(EXAMPLES / "local"))
    assert [b.name for b in result.backends] == ["mock"]
    assert result.backends[0].spec.provider is Provider.MOCK
    assert sorted(r.name for r in result.routes) == ["chat-default", "chat-large", "embeddings"]
    assert result.secrets == {}


def test_cluster_examples() -> None:
    result = load_manifests(manifest_files(EXAMPLES / "cluster"))
    assert sorted(b.name for b in result.backends) == ["llama-8b", "openai"]
    assert [r.name for r in result.routes] == ["chat-default"]
    assert result.secrets == {("default", "openai"): {"api-key": "sk-replace-me"}}
    route = result.routes[0]
    assert route.spec.retry.retry_on == ["connect", "429", "5xx"]
    assert route.spec.targets[0].weight == 80


def test_manifest_files_order_and_suffixes(tmp_path: Path) -> None:
    _write(tmp_path / "b.yaml", "")
    _write(tmp_path / "a" / "z.yml", "")
    _write(tmp_path / "c.json", "{}")
    _write(tmp_path / "README.md", "# not a manifest")
    assert [p.relative_to(tmp_path).as_posix() for p in manifest_files(tmp_path)] == ["a/z.yml", "b.yaml", "c.json"]
    assert manifest_files(tmp_path / "b.yaml") == [tmp_path / "b.yaml"]
    with pytest.raises(ManifestError, match="no such file or directory"):
        manifest_files(tmp_path / "missing")


def test_secret_data_and_string_data(tmp_path: Path) -> None:
    encoded = base64.b64encode(b"sk-from-data").decode()
    other = base64.b64encode(b"overridden").decode()
    path = _write(
        tmp_path / "secrets.yaml",
        f"""\
apiVersion: v1
kind: Secret
metadata: {{name: keys, namespace: team-a}}
data: {{api-key: {encoded}, shared: {other}}}
stringData: {{shared: from-string-data, port: 8080}}
---
apiVersion: v1
kind: Secret
metadata: {{name: keys}}
""",
    )
    result = load_manifests([path])
    assert result.secrets == {
        ("team-a", "keys"): {"api-key": "sk-from-data", "shared": "from-string-data", "port": "8080"},
        ("default", "keys"): {},
    }


def test_secret_with_bad_base64_names_file_secret_and_key(tmp_path: Path) -> None:
    path = _write(
        tmp_path / "bad.yaml", "apiVersion: v1\nkind: Secret\nmetadata: {name: creds}\ndata: {token: '%%%'}\n"
    )
    with pytest.raises(ManifestError) as info:
        load_manifests([path])
    assert str(path) in str(info.value)
    assert "Secret 'creds'" in str(info.value)
    assert "data.token" in str(info.value)


def test_validation_error_names_file_kind_object_and_field(tmp_path: Path) -> None:
    path = _write(
        tmp_path / "routes.yaml",
        """\
apiVersion: interlock.dev/v1alpha1
kind: Route
metadata: {name: chat}
spec:
  model: chat
  targets: [{backend: mock, model: mock-small, weight: -5}]
""",
    )
    with pytest.raises(ManifestError) as info:
        load_manifests([path])
    expected = "spec.targets[0].weight: Input should be greater than or equal to 0, not -5"
    assert str(info.value) == f"{path}: Route 'chat': {expected}"


def test_cross_field_error_is_readable(tmp_path: Path) -> None:
    path = _write(tmp_path / "b.yaml", BACKEND.format(name="oa", namespace="default").replace("mock", "openai", 1))
    with pytest.raises(ManifestError, match=r"LLMBackend 'oa': spec: provider 'openai' needs url"):
        load_manifests([path])


def test_yaml_syntax_error_names_the_file(tmp_path: Path) -> None:
    path = _write(tmp_path / "broken.yaml", "kind: Route\nmetadata: {name: [unclosed\n")
    with pytest.raises(ManifestError) as info:
        load_manifests([path])
    assert str(info.value).startswith(f"{path}: not valid YAML at line 3, column 1: ")


def test_document_that_is_not_a_mapping(tmp_path: Path) -> None:
    path = _write(tmp_path / "list.yaml", "- a\n- b\n")
    with pytest.raises(ManifestError, match=r"document 1: each document must be a mapping, got list"):
        load_manifests([path])


def test_duplicate_object_across_files(tmp_path: Path) -> None:
    first = _write(tmp_path / "a.yaml", BACKEND.format(name="mock", namespace="default"))
    second = _write(tmp_path / "b.yaml", BACKEND.format(name="mock", namespace="default"))
    with pytest.raises(ManifestError) as info:
        load_manifests([first, second])
    assert str(info.value) == f"{second}: LLMBackend default/mock is also defined in {first}"


def test_same_name_in_another_namespace_or_kind_is_fine(tmp_path: Path) -> None:
    path = _write(
        tmp_path / "all.yaml",
        BACKEND.format(name="mock", namespace="default")
        + "---\n"
        + BACKEND.format(name="mock", namespace="other")
        + "---\napiVersion: v1\nkind: Secret\nmetadata: {name: mock}\nstringData: {k: v}\n",
    )
    result = load_manifests([path])
    assert [(b.metadata.namespace, b.name) for b in result.backends] == [("default", "mock"), ("other", "mock")]
    assert result.secrets == {("default", "mock"): {"k": "v"}}


def test_empty_documents_and_lists(tmp_path: Path) -> None:
    path = _write(
        tmp_path / "mixed.yaml",
        """\
---
---
apiVersion: v1
kind: List
items:
  - apiVersion: interlock.dev/v1alpha1
    kind: Route
    metadata: {name: embeddings}
    spec:
      model: text-embedding
      targets: [{backend: mock, model: mock-embed}]
""",
    )
    result = load_manifests([path])
    assert [r.name for r in result.routes] == ["embeddings"]
    assert result.origins == {("Route", "default", "embeddings"): path}


def test_unknown_kinds_and_api_versions_are_errors_with_the_right_one(tmp_path: Path) -> None:
    path = _write(
        tmp_path / "kinds.yaml",
        """\
apiVersion: interlock.dev/v1alpha1
kind: Rout
metadata: {name: a}
---
apiVersion: v1
kind: ConfigMap
metadata: {name: b}
---
apiVersion: interlock.dev/v1
kind: LLMBackend
metadata: {name: c}
---
kind: Route
metadata: {name: d}
---
apiVersion: interlock.dev/v1alpha1
metadata: {name: e}
---
apiVersion: interlock.dev/v1alpha1
kind: Secret
metadata: {name: f}
""",
    )
    with pytest.raises(ManifestError) as info:
        load_manifests([path])
    reads = "interlock reads LLMBackend and Route, apiVersion interlock.dev/v1alpha1, and Secret, apiVersion v1"
    assert info.value.problems == [
        f"{path}: Rout 'a': kind: unknown kind 'Rout'; did you mean 'Route'? {reads}",
        f"{path}: ConfigMap 'b': kind: unknown kind 'ConfigMap'; {reads}",
        f"{path}: LLMBackend 'c': apiVersion: 'interlock.dev/v1' is not served; "
        "LLMBackend needs apiVersion: interlock.dev/v1alpha1",
        f"{path}: Route 'd': apiVersion: is missing; Route needs apiVersion: interlock.dev/v1alpha1",
        f"{path}: document 5: kind: required field is missing; {reads}",
        f"{path}: Secret 'f': apiVersion: 'interlock.dev/v1alpha1' is not served; Secret needs apiVersion: v1",
    ]


def test_every_problem_of_every_file_is_reported_at_once(tmp_path: Path) -> None:
    first = _write(
        tmp_path / "a.yaml",
        """\
apiVersion: interlock.dev/v1alpha1
kind: Route
metadata: {name: chat}
spec:
  model: chat
  retyr: {attempts: 2}
  targets: [{backend: mock, model: mock-small, wieght: 3}]
""",
    )
    second = _write(tmp_path / "b.yaml", "kind: [unclosed\n")
    third = _write(
        tmp_path / "c.yaml",
        BACKEND.format(name="mock", namespace="default").replace("provider: mock", "provider: mokc")
        + "---\napiVersion: interlock.dev/v1alpha1\nkind: Route\nmetadata: {name: r}\nsepc: {}\n",
    )
    with pytest.raises(ManifestError) as info:
        load_manifests([first, second, third])
    problems = info.value.problems
    assert problems[:2] == [
        f"{first}: Route 'chat': spec.targets[0].wieght: unknown field; did you mean 'weight'?",
        f"{first}: Route 'chat': spec.retyr: unknown field; did you mean 'retry'?",
    ]
    assert problems[2] == (
        f"{second}: not valid YAML at line 2, column 1: while parsing a flow sequence did not find expected ',' or ']'"
    )
    assert problems[3:] == [
        f"{third}: LLMBackend 'mock': spec.provider: Input should be 'openai', 'anthropic', 'vllm' or 'mock', "
        "not 'mokc'",
        f"{third}: Route 'r': spec: required field is missing; did you mean 'spec' instead of 'sepc'?",
    ]
    assert str(info.value) == "\n".join(problems)


def test_an_unknown_field_without_a_close_name_lists_the_fields(tmp_path: Path) -> None:
    path = _write(tmp_path / "b.yaml", BACKEND.format(name="m", namespace="default") + "  zzz: 1\n")
    with pytest.raises(ManifestError) as info:
        load_manifests([path])
    assert str(info.value) == (
        f"{path}: LLMBackend 'm': spec.zzz: unknown field; the fields here are provider, url, endpoints, picker, "
        "queueing, credentialsSecretRef, models, serving, limits, circuitBreaker"
    )


def test_a_directory_without_manifests_or_objects_is_an_error(tmp_path: Path) -> None:
    reads = "interlock reads LLMBackend and Route, apiVersion interlock.dev/v1alpha1, and Secret, apiVersion v1"
    with pytest.raises(ManifestError) as info:
        read_manifests(tmp_path)
    assert str(info.value) == f"{tmp_path}: no manifests: the directory has no .yaml, .yml or .json files; {reads}"
    _write(tmp_path / "s.yaml", "apiVersion: v1\nkind: Secret\nmetadata: {name: s}\nstringData: {k: v}\n")
    with pytest.raises(ManifestError) as info:
        read_manifests(tmp_path)
    assert str(info.value) == f"{tmp_path}: no LLMBackend or Route: found 1 Secret(s) and nothing else; {reads}"
    _write(tmp_path / "b.yaml", BACKEND.format(name="m", namespace="default"))
    assert [b.name for b in read_manifests(tmp_path).backends] == ["m"]


def test_json_manifest(tmp_path: Path) -> None:
    path = _write(
        tmp_path / "backend.json",
        '{"apiVersion": "interlock.dev/v1alpha1", "kind": "LLMBackend", "metadata": {"name": "m"},'
        ' "spec": {"provider": "mock", "models": [{"name": "x"}]}}',
    )
    [backend] = load_manifests([path]).backends
    assert backend.metadata.namespace == "default"
