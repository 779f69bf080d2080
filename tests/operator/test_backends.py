"""LLMBackend reconciled by the real kopf operator against the emulator over HTTP: external and self-hosted
backends, status that follows the Secret and the Deployment, invalid specs, and delete behind the finalizer."""

from __future__ import annotations

from typing import Any

from interlock.operator.builders import GPU_RESOURCE
from interlock.operator.settings import OperatorSettings
from tests.operator.conftest import Api, backend_manifest, backends_path, condition, running_operator
from tests.support import eventually

SECRETS = "/api/v1/namespaces/default/secrets"
DEPLOYMENTS = "/apis/apps/v1/namespaces/default/deployments"


def external(name: str = "openai", **spec: Any) -> dict[str, Any]:
    return backend_manifest(
        name,
        provider="openai",
        url="https://api.openai.com/v1",
        credentialsSecretRef={"name": "openai", "key": "api-key"},
        models=[{"name": "gpt-4o-mini"}],
        **spec,
    )


def self_hosted(name: str = "llama", **serving: Any) -> dict[str, Any]:
    serving = {
        "engine": "vllm",
        "model": "meta-llama/Llama-3.1-8B-Instruct",
        "replicas": 2,
        "gpus": 2,
        "nodeSelector": {"gpu": "a100"},
        "tolerations": [{"key": "dedicated", "operator": "Equal", "value": "llm", "effect": "NoSchedule"}],
        "modelCache": {"size": "50Gi", "storageClassName": "fast"},
        "args": ["--max-model-len", "8192"],
        **serving,
    }
    return backend_manifest(name, provider="vllm", models=[{"name": "llama-3.1-8b"}], serving=serving)


def owner_uid(obj: dict[str, Any] | None) -> list[tuple[str, str, bool]]:
    refs = ((obj or {}).get("metadata") or {}).get("ownerReferences") or []
    return [(r["kind"], r["uid"], bool(r.get("controller"))) for r in refs]


async def test_external_backend_is_ready_once_its_secret_exists(api: Api) -> None:
    settings = OperatorSettings(resync_interval_s=600)  # no resync in time: the Secret watch alone must notice
    async with running_operator(settings):
        await api.create(backends_path(), external())
        cond = await eventually(lambda: condition(api.backend("openai")), within=10, what="status written")
        assert cond["status"] == "False"
        assert cond["reason"] == "SecretNotFound"
        assert "'openai'" in cond["message"]
        assert api.backend("openai")["status"]["url"] == "https://api.openai.com/v1"  # type: ignore[index]

        await api.create(SECRETS, {"metadata": {"name": "openai"}, "stringData": {"other": "x"}})
        await eventually(
            lambda: (condition(api.backend("openai")) or {}).get("reason") == "SecretKeyNotFound", within=10
        )
        await api.patch(f"{SECRETS}/openai", {"stringData": {"api-key": "sk-never-copied"}})
        await eventually(lambda: (condition(api.backend("openai")) or {}).get("status") == "True", within=10)

        backend = api.backend("openai")
        assert backend is not None
        leaf = condition(backend, "CredentialsResolved")
        assert leaf is not None
        assert leaf["reason"] == "SecretFound"
        assert backend["status"]["observedGeneration"] == backend["metadata"]["generation"]
        assert "interlock.dev/finalizer" in backend["metadata"]["finalizers"]
        # The Secret is only mounted into gateways: nothing the operator wrote holds its value.
        for request in api.emu.requests:
            assert not (request.user_agent.startswith("interlock") and request.verb == "create"
                        and request.resource == "secrets")  # fmt: skip
        assert "sk-never-copied" not in str(backend)


async def test_self_hosted_backend_runs_the_engine_and_follows_the_deployment(api: Api, operator: Any) -> None:
    created = await api.create(backends_path(), self_hosted())
    deployment = await eventually(lambda: api.obj("apps/v1", "deployments", "llama"), within=10)
    pod = deployment["spec"]["template"]["spec"]
    (container,) = pod["containers"]
    assert container["image"].startswith("vllm/vllm-openai:v")  # pinned, never latest
    args = container["args"]
    assert args[:3] == ["meta-llama/Llama-3.1-8B-Instruct", "--served-model-name", "llama-3.1-8b"]
    assert args[args.index("--tensor-parallel-size") + 1] == "2"
    assert args[-2:] == ["--max-model-len", "8192"]
    assert container["resources"]["limits"][GPU_RESOURCE] == "2"
    assert container["startupProbe"]["httpGet"]["path"] == "/health"
    startup = container["startupProbe"]
    assert startup["periodSeconds"] * startup["failureThreshold"] >= 20 * 60  # time to load weights
    assert container["readinessProbe"]["httpGet"] == {"path": "/health", "port": "http", "scheme": "HTTP"}
    assert pod["nodeSelector"] == {"gpu": "a100"}
    assert {"key": "dedicated", "operator": "Equal", "value": "llm", "effect": "NoSchedule"} in pod["tolerations"]
    assert {"key": GPU_RESOURCE, "operator": "Exists", "effect": "NoSchedule"} in pod["tolerations"]
    assert pod["affinity"]["podAntiAffinity"]
    assert deployment["spec"]["replicas"] == 2
    claim = {"name": "model-cache", "persistentVolumeClaim": {"claimName": "llama-model-cache"}}
    assert claim in pod["volumes"]

    pvc = await eventually(lambda: api.obj("v1", "persistentvolumeclaims", "llama-model-cache"), within=10)
    assert pvc["spec"]["resources"]["requests"]["storage"] == "50Gi"
    assert pvc["spec"]["accessModes"] == ["ReadWriteMany"]
    service = await eventually(lambda: api.obj("v1", "services", "llama"), within=10)
    assert service["spec"]["ports"][0]["port"] == 8000
    pods = await eventually(lambda: api.obj("v1", "services", "llama-pods"), within=10)
    assert pods["spec"]["clusterIP"] == "None"
    assert pods["spec"]["selector"] == service["spec"]["selector"]
    uid = created["metadata"]["uid"]
    for child in (deployment, pvc, service, pods):
        assert owner_uid(child) == [("LLMBackend", uid, True)]

    await eventually(lambda: (condition(api.backend("llama")) or {}).get("reason") == "PodsNotReady", within=10)
    assert api.backend("llama")["status"]["url"] == "http://llama.default.svc:8000/v1"  # type: ignore[index]

    # The emulator's Deployment controller reports the pods ready.
    api.emu.store.controller.set_mode("default", "llama", "ready")
    await eventually(lambda: (condition(api.backend("llama")) or {}).get("status") == "True", within=10)
    await eventually(lambda: api.backend("llama")["status"]["readyReplicas"] == 2, within=10)  # type: ignore[index]
    status = api.backend("llama")["status"]  # type: ignore[index]
    assert status["replicas"] == 2
    assert status["selector"] == "app.kubernetes.io/component=inference,interlock.dev/backend=llama"
    assert "2/2" in (condition(api.backend("llama"), "WorkloadReady") or {})["message"]

    # A spec change rolls the Deployment: more GPUs, a new tensor-parallel size.
    await api.patch(f"{backends_path()}/llama", {"spec": {"serving": {"gpus": 4}}})
    await eventually(
        lambda: (
            api.obj("apps/v1", "deployments", "llama")["spec"]["template"]["spec"]["containers"][0]["resources"][  # type: ignore[index]
                "limits"
            ][GPU_RESOURCE]
            == "4"
        ),
        within=10,
    )

    # Delete: the finalizer holds the object until the operator removed the workload.
    await api.delete(f"{backends_path()}/llama")
    await eventually(lambda: api.backend("llama") is None, within=10, what="finalizer released")
    assert api.obj("apps/v1", "deployments", "llama") is None
    assert api.obj("v1", "services", "llama") is None
    assert api.obj("v1", "persistentvolumeclaims", "llama-model-cache") is None


async def test_other_engines_and_backend_that_stops_being_self_hosted(api: Api, operator: Any) -> None:
    await api.create(backends_path(), self_hosted("tgi", engine="tgi", gpus=1, modelCache=None))
    await api.create(backends_path(), self_hosted("gguf", engine="llamacpp", gpus=0, replicas=1, modelCache=None))
    tgi = await eventually(lambda: api.obj("apps/v1", "deployments", "tgi"), within=10)
    (container,) = tgi["spec"]["template"]["spec"]["containers"]
    assert "text-generation-inference" in container["image"]
    assert container["args"][:2] == ["--model-id", "meta-llama/Llama-3.1-8B-Instruct"]
    assert container["resources"]["limits"][GPU_RESOURCE] == "1"
    gguf = await eventually(lambda: api.obj("apps/v1", "deployments", "gguf"), within=10)
    (container,) = gguf["spec"]["template"]["spec"]["containers"]
    assert "llama.cpp" in container["image"]
    assert GPU_RESOURCE not in (container["resources"].get("limits") or {})
    assert "--alias" in container["args"]

    # Switching to an external URL removes the workload it no longer needs.
    await api.patch(
        f"{backends_path()}/tgi",
        {"spec": {"serving": None, "provider": "openai", "url": "https://llm.internal.example/v1"}},
    )
    await eventually(lambda: api.obj("apps/v1", "deployments", "tgi") is None, within=10)
    await eventually(
        lambda: (api.backend("tgi") or {}).get("status", {}).get("url") == "https://llm.internal.example/v1", within=10
    )
    await eventually(lambda: api.obj("v1", "services", "tgi") is None, within=10)


async def test_invalid_spec_is_a_status_that_quotes_the_bad_value(api: Api, operator: Any) -> None:
    # The emulator does not run the CRD's schema or CEL rules: what kubectl would reject reaches the operator.
    await api.create(backends_path(), backend_manifest("bad-provider", provider="bogus"))
    await api.create(
        backends_path(),
        backend_manifest("both", provider="vllm", url="http://x.example/v1", serving={"model": "m"}),
    )
    await api.create(backends_path(), backend_manifest("good"))
    cond = await eventually(lambda: condition(api.backend("bad-provider")), within=10)
    assert (cond["status"], cond["reason"]) == ("False", "InvalidSpec")
    assert "'bogus'" in cond["message"]
    assert "spec.provider" in cond["message"]
    cond = await eventually(lambda: condition(api.backend("both")), within=10)
    assert cond["reason"] == "InvalidSpec"
    assert "not both" in cond["message"]
    assert api.obj("apps/v1", "deployments", "both") is None
    # The operator keeps working: the valid backend is Ready, and fixing the bad one makes it Ready too.
    await eventually(lambda: (condition(api.backend("good")) or {}).get("status") == "True", within=10)
    await api.patch(f"{backends_path()}/bad-provider", {"spec": {"provider": "mock"}})
    await eventually(lambda: (condition(api.backend("bad-provider")) or {}).get("status") == "True", within=10)
    warnings = [
        e for e in api.emu.store.objects[("", "events")].values()
        if e.get("type") == "Warning" and e.get("reason") == "InvalidSpec"
    ]  # fmt: skip
    assert {e["involvedObject"]["name"] for e in warnings} >= {"bad-provider", "both"}
