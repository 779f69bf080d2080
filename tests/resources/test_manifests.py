"""``load_manifests``: the YAML that ``kubectl apply -f`` and ``interlock up`` both take."""

from __future__ import annotations

import base64
from pathlib import Path

import pytest

from interlock.resources import ManifestError, Provider, load_manifests
from interlock.resources.manifests import manifest_files

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
    message = str(info.value)
    assert message.startswith(f"{path}: Route 'chat': ")
    assert "spec.targets.0.weight: Input should be greater than or equal to 0" in message


def test_cross_field_error_is_readable(tmp_path: Path) -> None:
    path = _write(tmp_path / "b.yaml", BACKEND.format(name="oa", namespace="default").replace("mock", "openai", 1))
    with pytest.raises(ManifestError, match=r"LLMBackend 'oa': spec: provider 'openai' needs url"):
        load_manifests([path])


def test_yaml_syntax_error_names_the_file(tmp_path: Path) -> None:
    path = _write(tmp_path / "broken.yaml", "kind: Route\nmetadata: {name: [unclosed\n")
    with pytest.raises(ManifestError) as info:
        load_manifests([path])
    assert str(info.value).startswith(f"{path}: not valid YAML")
    assert "line" in str(info.value)


def test_document_that_is_not_a_mapping(tmp_path: Path) -> None:
    path = _write(tmp_path / "list.yaml", "- a\n- b\n")
    with pytest.raises(ManifestError, match=r"each document must be a mapping, got list"):
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


def test_other_kinds_empty_documents_and_lists(tmp_path: Path) -> None:
    path = _write(
        tmp_path / "mixed.yaml",
        """\
---
apiVersion: v1
kind: ConfigMap
metadata: {name: mock}
data: {spec: nonsense}
---
apiVersion: apps/v1
kind: Deployment
metadata: {name: gateway}
spec: {replicas: two}
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
    assert result.backends == []
    assert result.secrets == {}


def test_json_manifest(tmp_path: Path) -> None:
    path = _write(
        tmp_path / "backend.json",
        '{"apiVersion": "interlock.dev/v1alpha1", "kind": "LLMBackend", "metadata": {"name": "m"},'
        ' "spec": {"provider": "mock", "models": [{"name": "x"}]}}',
    )
    [backend] = load_manifests([path]).backends
    assert backend.metadata.namespace == "default"
