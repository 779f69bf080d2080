"""``operator/samples/`` are valid objects: the CRDs' schema and CEL rules accept them (as the API server would),
and the operator's models read them."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from interlock.gatewayconfig import compile_config
from interlock.resources import LLMBackend, Route
from tests.resources.crdcheck import rejections

ROOT = Path(__file__).resolve().parents[2]
SAMPLES = sorted((ROOT / "operator" / "samples").glob("*.yaml"))
CRDS = {
    "LLMBackend": yaml.safe_load((ROOT / "operator/crds/llmbackends.interlock.dev.yaml").read_text()),
    "Route": yaml.safe_load((ROOT / "operator/crds/routes.interlock.dev.yaml").read_text()),
}


@pytest.mark.parametrize("path", SAMPLES, ids=lambda p: p.name)
def test_sample_is_accepted(path: Path) -> None:
    (doc,) = list(yaml.safe_load_all(path.read_text()))
    assert rejections(CRDS[doc["kind"]], doc) == []
    (LLMBackend if doc["kind"] == "LLMBackend" else Route).model_validate(doc)


def test_samples_compile_into_one_gateway() -> None:
    docs = [yaml.safe_load(p.read_text()) for p in SAMPLES]
    backends = [LLMBackend.model_validate(d) for d in docs if d["kind"] == "LLMBackend"]
    routes = [Route.model_validate(d) for d in docs if d["kind"] == "Route"]
    config = compile_config(backends, routes)
    assert set(config.routes) == {"chat-default"}
    assert config.rejected == {}
