"""Routes reconciled into gateways by the real kopf operator against the emulator: the ConfigMap is exactly
``compile_config`` of the same objects, the gateway's children are owned by its Routes, route status says why a
route is not Ready, drift is repaired, and deletes go through the finalizer."""

from __future__ import annotations

from typing import Any

from interlock.gatewayconfig import GatewayConfig, compile_config
from interlock.operator.naming import CONFIG_KEY
from interlock.operator.settings import OperatorSettings
from interlock.resources import LLMBackend, Route
from tests.operator.conftest import (
    Api,
    backend_manifest,
    backends_path,
    condition,
    route_manifest,
    routes_path,
    running_operator,
)
from tests.support import eventually

GATEWAY = "interlock-gateway-default"
CONFIGMAPS = "/api/v1/namespaces/default/configmaps"
DEPLOYMENTS = "/apis/apps/v1/namespaces/default/deployments"


def config_of(api: Api, name: str = GATEWAY) -> GatewayConfig | None:
    cm = api.obj("v1", "configmaps", name)
    return None if cm is None else GatewayConfig.from_json(cm["data"][CONFIG_KEY])


def compiled_from_emulator(api: Api, gateway: str = "default") -> GatewayConfig:
    """What ``compile_config`` makes of the objects the emulator holds right now."""
    store = api.emu.store
    backends = [LLMBackend.model_validate(o) for o in store.objects[("interlock.dev", "llmbackends")].values()]
    routes = [Route.model_validate(o) for o in store.objects[("interlock.dev", "routes")].values()]
    return compile_config(backends, routes, namespace="default", gateway=gateway)


def ready(obj: dict[str, Any] | None) -> tuple[str, str] | None:
    cond = condition(obj)
    return None if cond is None else (cond["status"], cond["reason"])


async def test_routes_compile_into_a_gateway_owned_by_them(api: Api, operator: Any) -> None:
    await api.create(
        "/api/v1/namespaces/default/secrets", {"metadata": {"name": "keys"}, "stringData": {"openai": "sk-secret-1"}}
    )
    await api.create(backends_path(), backend_manifest("mock"))
    await api.create(
        backends_path(),
        backend_manifest(
            "openai", provider="openai", url="https://api.openai.com/v1",
            credentialsSecretRef={"name": "keys", "key": "openai"}, models=[{"name": "gpt-4o-mini"}],
        ),
    )  # fmt: skip
    r1 = await api.create(routes_path(), route_manifest("chat", ("mock", "m1"), ("openai", "gpt-4o-mini")))
    r2 = await api.create(routes_path(), route_manifest("fast", ("mock", "m1")))

    await eventually(lambda: ready(api.route("chat")) == ("True", "Ready"), within=10, what="chat Ready")
    await eventually(lambda: ready(api.route("fast")) == ("True", "Ready"), within=10, what="fast Ready")
    config = config_of(api)
    assert config is not None
    assert config == compiled_from_emulator(api)
    assert set(config.routes) == {"chat", "fast"}
    cm = api.obj("v1", "configmaps", GATEWAY)
    assert "sk-secret-1" not in str(cm)  # a reference, never the value
    assert cm["metadata"]["annotations"]["interlock.dev/config-version"] == config.version  # type: ignore[index]

    deployment = api.obj("apps/v1", "deployments", GATEWAY)
    service = api.obj("v1", "services", GATEWAY)
    pdb = api.obj("policy/v1", "poddisruptionbudgets", GATEWAY)
    assert deployment is not None
    assert service is not None
    assert pdb is not None
    owners = {r1["metadata"]["uid"], r2["metadata"]["uid"]}
    for child in (cm, deployment, service, pdb):
        refs = child["metadata"]["ownerReferences"]  # type: ignore[index]
        assert {r["uid"] for r in refs} == owners
        assert {r["kind"] for r in refs} == {"Route"}
    pod = deployment["spec"]["template"]["spec"]
    assert deployment["spec"]["replicas"] == 2
    secret_volume = next(v for v in pod["volumes"] if "secret" in v)
    assert secret_volume["secret"]["secretName"] == "keys"
    assert secret_volume["secret"]["items"] == [{"key": "openai", "path": "openai"}]
    env = {e["name"]: e.get("value") for e in pod["containers"][0]["env"]}
    assert env["INTERLOCK_GATEWAY_CONFIG_FILE"] == f"/etc/interlock/config/{CONFIG_KEY}"
    mounts = {m["name"]: m for m in pod["containers"][0]["volumeMounts"]}
    assert "subPath" not in mounts["config"]  # a directory mount: the kubelet's updates reach running pods

    # Update: the config follows, the pod template does not change (hot reload, no restart).
    template = deployment["spec"]["template"]
    await api.patch(f"{routes_path()}/chat", {"spec": {"targets": [{"backend": "mock", "model": "m1", "weight": 7}]}})
    await eventually(lambda: config_of(api).routes["chat"].targets[0].weight == 7, within=10)  # type: ignore[union-attr]
    assert config_of(api) == compiled_from_emulator(api)
    assert api.obj("apps/v1", "deployments", GATEWAY)["spec"]["template"] == template  # type: ignore[index]
    await eventually(
        lambda: condition(api.route("chat"))["observedGeneration"] == api.route("chat")["metadata"]["generation"],  # type: ignore[index]
        within=10,
    )

    # Delete: the route leaves the config before its finalizer is released; the last one takes the gateway along.
    await api.delete(f"{routes_path()}/chat")
    await eventually(lambda: api.route("chat") is None, within=10)
    assert set(config_of(api).routes) == {"fast"}  # type: ignore[union-attr]
    assert [r["uid"] for r in api.obj("v1", "configmaps", GATEWAY)["metadata"]["ownerReferences"]] == [  # type: ignore[index]
        r2["metadata"]["uid"]
    ]
    await api.delete(f"{routes_path()}/fast")
    await eventually(lambda: api.route("fast") is None, within=10)
    for api_version, plural in (
        ("v1", "configmaps"),
        ("apps/v1", "deployments"),
        ("v1", "services"),
        ("policy/v1", "poddisruptionbudgets"),
    ):
        assert api.obj(api_version, plural, GATEWAY) is None, plural


async def test_missing_backend_fails_only_its_route(api: Api, operator: Any) -> None:
    await api.create(backends_path(), backend_manifest("mock"))
    await api.create(routes_path(), route_manifest("good", ("mock", "m1")))
    await api.create(routes_path(), route_manifest("orphan", ("nope", "m1")))
    await api.create(routes_path(), route_manifest("wrong-model", ("mock", "m9")))
    await api.create(routes_path(), route_manifest("later", ("mock", "m1"), model="good"))

    await eventually(lambda: ready(api.route("orphan")) == ("False", "BackendNotFound"), within=10)
    assert "'nope' does not exist" in condition(api.route("orphan"))["message"]  # type: ignore[index]
    await eventually(lambda: ready(api.route("wrong-model")) == ("False", "ModelNotServed"), within=10)
    await eventually(lambda: ready(api.route("later")) == ("False", "ModelConflict"), within=10)
    await eventually(lambda: ready(api.route("good")) == ("True", "Ready"), within=10)
    published = condition(api.route("orphan"), "Published")
    assert published is not None
    assert published["status"] == "False"
    config = config_of(api)
    assert config is not None
    assert set(config.routes) == {"good"}  # the gateway keeps serving the others
    assert set(config.rejected) == {"orphan", "wrong-model", "later"}
    assert config == compiled_from_emulator(api)

    # The backend appears: the route is published and Ready, without touching the route.
    await api.create(backends_path(), backend_manifest("nope"))
    await eventually(lambda: ready(api.route("orphan")) == ("True", "Ready"), within=10)
    assert "orphan" in config_of(api).routes  # type: ignore[union-attr]

    # A backend that is not Ready (a self-hosted one with no ready pods) makes its routes not Ready, with the reason.
    serving = {"model": "org/model", "gpus": 1}
    await api.create(backends_path(), backend_manifest("gpu", provider="vllm", serving=serving))
    await api.create(routes_path(), route_manifest("on-gpu", ("gpu", "m1")))
    await eventually(lambda: ready(api.route("on-gpu")) == ("False", "BackendNotReady"), within=10)
    await eventually(lambda: "PodsNotReady" in condition(api.route("on-gpu"))["message"], within=10)  # type: ignore[index]
    api.emu.store.controller.set_mode("default", "gpu", "ready")
    await eventually(lambda: ready(api.route("on-gpu")) == ("True", "Ready"), within=10)

    # Deleting a backend: its routes fall out of the config and say why.
    await api.delete(f"{backends_path()}/nope")
    await eventually(lambda: ready(api.route("orphan")) == ("False", "BackendNotFound"), within=10)
    assert "orphan" not in config_of(api).routes  # type: ignore[union-attr]


async def test_invalid_route_spec_is_reported_and_others_keep_working(api: Api, operator: Any) -> None:
    await api.create(backends_path(), backend_manifest("mock"))
    bad = route_manifest("bad", ("mock", "m1"))
    bad["spec"]["targets"][0]["weight"] = -3
    await api.create(routes_path(), bad)
    await api.create(routes_path(), route_manifest("bad-gateway", ("mock", "m1"), gateway="No_Such"))
    await api.create(routes_path(), route_manifest("good", ("mock", "m1")))
    await eventually(lambda: ready(api.route("bad")) == ("False", "InvalidSpec"), within=10)
    message = condition(api.route("bad"))["message"]  # type: ignore[index]
    assert "spec.targets.0.weight" in message
    assert "-3" in message
    await eventually(lambda: ready(api.route("bad-gateway")) == ("False", "InvalidSpec"), within=10)
    assert "'No_Such'" in condition(api.route("bad-gateway"))["message"]  # type: ignore[index]
    await eventually(lambda: ready(api.route("good")) == ("True", "Ready"), within=10)
    assert set(config_of(api).routes) == {"good"}  # type: ignore[union-attr]

    # Fixed, it is served.
    await api.patch(f"{routes_path()}/bad", {"spec": {"targets": [{"backend": "mock", "model": "m1", "weight": 3}]}})
    await eventually(lambda: ready(api.route("bad")) == ("True", "Ready"), within=10)


async def test_route_moving_to_another_gateway(api: Api, operator: Any) -> None:
    await api.create(backends_path(), backend_manifest("mock"))
    await api.create(routes_path(), route_manifest("a", ("mock", "m1")))
    await api.create(routes_path(), route_manifest("b", ("mock", "m1"), gateway="internal"))
    await eventually(lambda: config_of(api, "interlock-gateway-internal") is not None, within=10)
    await eventually(lambda: config_of(api) is not None, within=10)
    await api.patch(f"{routes_path()}/a", {"spec": {"gateway": "internal"}})
    await eventually(lambda: set(config_of(api, "interlock-gateway-internal").routes) == {"a", "b"}, within=10)  # type: ignore[union-attr]
    await eventually(lambda: api.obj("apps/v1", "deployments", GATEWAY) is None, within=10)
    assert config_of(api, "interlock-gateway-internal") == compiled_from_emulator(api, "internal")


async def test_drift_is_repaired_by_the_timer(api: Api) -> None:
    async with running_operator(OperatorSettings(resync_interval_s=0.5)):
        await api.create(backends_path(), backend_manifest("gpu", provider="vllm", serving={"model": "org/m"}))
        await api.create(backends_path(), backend_manifest("mock"))
        await api.create(routes_path(), route_manifest("chat", ("mock", "m1")))
        await eventually(lambda: ready(api.route("chat")) == ("True", "Ready"), within=10)
        await eventually(lambda: api.obj("apps/v1", "deployments", "gpu"), within=10)
        good = api.obj("v1", "configmaps", GATEWAY)["data"]  # type: ignore[index]

        await api.delete(f"{DEPLOYMENTS}/{GATEWAY}")
        await api.patch(f"{CONFIGMAPS}/{GATEWAY}", {"data": {CONFIG_KEY: '{"hand": "edited"}'}})
        await api.patch(f"{DEPLOYMENTS}/gpu", {"spec": {"replicas": 9}})
        await api.delete("/api/v1/namespaces/default/services/gpu")

        await eventually(lambda: api.obj("apps/v1", "deployments", GATEWAY) is not None, within=10)
        await eventually(lambda: api.obj("v1", "configmaps", GATEWAY)["data"] == good, within=10)  # type: ignore[index]
        await eventually(lambda: api.obj("apps/v1", "deployments", "gpu")["spec"]["replicas"] == 1, within=10)  # type: ignore[index]
        await eventually(lambda: api.obj("v1", "services", "gpu") is not None, within=10)
