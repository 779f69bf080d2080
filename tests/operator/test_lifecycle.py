"""The operator as a controller among others, against the emulator's API-server semantics: fields removed from a
spec disappear from the children while other managers' fields stay, an autoscaler keeps the replicas, status tells
why a backend or a route is not ready, and a new namespace needs no manual step."""

from __future__ import annotations

import base64
import json
from typing import Any

from interlock.contract import Snapshot
from interlock.contract.gatewaycred import verify_gateway_credential
from interlock.operator.settings import OperatorSettings
from tests.gateway.contract_server import ContractServer
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

DEPLOYMENTS = "/apis/apps/v1/namespaces/default/deployments"
APPLY = "application/apply-patch+yaml"
SIGNING_KEY = "a-signing-key-of-at-least-32-bytes-for-tests"


def gpu_backend(name: str = "llama", namespace: str = "default", **serving: Any) -> dict[str, Any]:
    serving = {"model": "org/model", "gpus": 1, "replicas": 2, **serving}
    return backend_manifest(name, namespace, provider="vllm", serving=serving)


def reason(obj: dict[str, Any] | None, type_: str = "Ready") -> str | None:
    return (condition(obj, type_) or {}).get("reason")


def replicas(api: Api, name: str = "llama") -> Any:
    return ((api.obj("apps/v1", "deployments", name) or {}).get("spec") or {}).get("replicas")


def operator_writes(api: Api, since: int, resource: str) -> list[Any]:
    return [r for r in api.emu.requests[since:] if r.user_agent.startswith("interlock-operator")
            and r.resource == resource and r.verb in ("create", "update", "patch", "delete")]  # fmt: skip


async def test_removed_fields_disappear_and_other_managers_fields_stay(api: Api, operator: Any) -> None:
    selector = {"gpu": "a100"}
    toleration = {"key": "dedicated", "operator": "Equal", "value": "llm", "effect": "NoSchedule"}
    resources = {"requests": {"cpu": 4, "memory": "1024Mi"}}
    await api.create(backends_path(), gpu_backend(nodeSelector=selector, tolerations=[toleration], resources=resources))
    deployment = await eventually(lambda: api.obj("apps/v1", "deployments", "llama"), within=10)
    pod = deployment["spec"]["template"]["spec"]
    assert pod["nodeSelector"] == selector
    assert toleration in pod["tolerations"]
    assert pod["containers"][0]["resources"]["requests"] == {"cpu": "4", "memory": "1Gi"}  # canonical

    # A user annotates the Deployment; a mesh injects a sidecar container with its own server-side apply.
    await api.patch(f"{DEPLOYMENTS}/llama", {"metadata": {"annotations": {"team": "ml"}}})
    proxy = {"name": "mesh-proxy", "image": "mesh/proxy:2"}
    sidecar = {"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "llama", "namespace": "default"},
               "spec": {"template": {"spec": {"containers": [proxy]}}}}  # fmt: skip
    response = await api.http.patch(f"{DEPLOYMENTS}/llama", content=json.dumps(sidecar),
                                    params={"fieldManager": "mesh"}, headers={"Content-Type": APPLY})  # fmt: skip
    assert response.status_code == 200, response.text

    # The spec loses its node selector and toleration: so does the Deployment, and nothing else changes.
    await api.patch(f"{backends_path()}/llama", {"spec": {"serving": {"nodeSelector": None, "tolerations": None}}})

    def cleaned() -> bool:
        spec = api.obj("apps/v1", "deployments", "llama")["spec"]["template"]["spec"]  # type: ignore[index]
        return "nodeSelector" not in spec and toleration not in (spec.get("tolerations") or [])

    await eventually(cleaned, within=10, what="removed fields gone from the Deployment")
    live = api.obj("apps/v1", "deployments", "llama")
    assert live is not None
    assert live["metadata"]["annotations"]["team"] == "ml"
    assert [c["name"] for c in live["spec"]["template"]["spec"]["containers"]] == ["vllm", "mesh-proxy"]
    gpu = {"key": "nvidia.com/gpu", "operator": "Exists", "effect": "NoSchedule"}
    assert live["spec"]["template"]["spec"]["tolerations"] == [gpu]


async def test_an_autoscaler_owns_the_replicas_across_resyncs(api: Api) -> None:
    async with running_operator(OperatorSettings(resync_interval_s=0.3)):
        await api.create(backends_path(), gpu_backend(replicas=3))
        await eventually(lambda: replicas(api) == 3, within=10)

        # Autoscaling on: an HPA appears, and the replicas the operator set are handed over, not reset to 1.
        autoscaling = {"minReplicas": 2, "maxReplicas": 6}
        await api.patch(f"{backends_path()}/llama", {"spec": {"serving": {"autoscaling": autoscaling}}})
        hpa = await eventually(lambda: api.obj("autoscaling/v2", "horizontalpodautoscalers", "llama"), within=10)
        assert hpa["spec"]["scaleTargetRef"] == {"apiVersion": "apps/v1", "kind": "Deployment", "name": "llama"}
        assert (hpa["spec"]["minReplicas"], hpa["spec"]["maxReplicas"]) == (2, 6)
        assert hpa["spec"]["metrics"][0]["pods"]["metric"]["name"] == "vllm_num_requests_waiting"

        def applied_without_replicas() -> bool:
            live = api.obj("apps/v1", "deployments", "llama") or {}
            entries = live.get("metadata", {}).get("managedFields") or []
            mine = [e for e in entries if e["manager"] == "interlock-operator" and e["operation"] == "Apply"]
            return bool(mine) and "f:replicas" not in mine[0]["fieldsV1"]["f:spec"]

        await eventually(applied_without_replicas, within=10)
        assert replicas(api) == 3

        # The HPA scales through the scale subresource (as kube-controller-manager does).
        scaled = await api.http.put(f"{DEPLOYMENTS}/llama/scale", json={"spec": {"replicas": 5}},
                                    headers={"User-Agent": "kube-controller-manager/v1.37.0"})  # fmt: skip
        assert scaled.status_code == 200, scaled.text
        mark = len(api.emu.requests)

        def resyncs() -> int:
            return sum(1 for r in api.emu.requests[mark:] if r.user_agent.startswith("interlock-operator")
                       and r.resource == "deployments" and r.verb == "get" and r.name == "llama")  # fmt: skip

        await eventually(lambda: resyncs() >= 3, within=10, what="three resyncs of the backend")
        assert replicas(api) == 5
        assert operator_writes(api, mark, "deployments") == []

        # kubectl scale on the backend itself goes through its scale subresource.
        scale = (await api.http.get(f"{backends_path()}/llama/scale")).json()
        assert scale["status"]["selector"] == "app.kubernetes.io/component=inference,interlock.dev/backend=llama"

        # Autoscaling off: the HPA goes and the operator owns the replicas again.
        await api.patch(f"{backends_path()}/llama", {"spec": {"serving": {"autoscaling": None, "replicas": 2}}})
        await eventually(lambda: api.obj("autoscaling/v2", "horizontalpodautoscalers", "llama") is None, within=10)
        await eventually(lambda: replicas(api) == 2, within=10)


async def test_backend_status_says_why_it_is_not_ready(api: Api, operator: Any) -> None:
    controller = api.emu.store.controller
    controller.modes[("default", "cached")] = "pending"
    await api.create(backends_path(), gpu_backend("cached", modelCache={"size": "100Gi", "storageClassName": "fast"}))
    claim = await eventually(lambda: api.obj("v1", "persistentvolumeclaims", "cached-model-cache"), within=10)
    assert claim["spec"]["accessModes"] == ["ReadWriteMany"]
    await api.http.patch("/api/v1/namespaces/default/persistentvolumeclaims/cached-model-cache/status",
                         json={"status": {"phase": "Pending"}},
                         headers={"Content-Type": "application/merge-patch+json"})  # fmt: skip
    controller.set_mode("default", "cached", "pending")  # the pods wait for the volume
    await eventually(lambda: reason(api.backend("cached")) == "ModelCachePending", within=10)
    assert "StorageClass fast" in condition(api.backend("cached"))["message"]  # type: ignore[index]

    controller.modes[("default", "big")] = "unschedulable"
    await api.create(backends_path(), gpu_backend("big", gpus=8))
    await eventually(lambda: reason(api.backend("big")) == "Unschedulable", within=10)
    assert "Insufficient nvidia.com/gpu" in condition(api.backend("big"))["message"]  # type: ignore[index]

    controller.set_mode("default", "big", "stuck")
    await eventually(lambda: reason(api.backend("big")) == "ProgressDeadlineExceeded", within=10)
    controller.set_mode("default", "big", "ready")
    await eventually(lambda: reason(api.backend("big")) == "Ready", within=10)

    # A spec change the Deployment controller has not observed yet is not Ready, whatever the old status says.
    controller.enabled = False
    await api.patch(f"{backends_path()}/big", {"spec": {"serving": {"args": ["--max-model-len", "4096"]}}})
    await eventually(lambda: reason(api.backend("big")) == "RolloutPending", within=10)
    controller.enabled = True
    controller.set_mode("default", "big", "ready")
    await eventually(lambda: reason(api.backend("big")) == "Ready", within=10)

    # The reason is a column of plain `kubectl get`.
    table = await api.http.get(backends_path(), headers={"Accept": "application/json;as=Table;v=v1;g=meta.k8s.io"})
    rows = {row["cells"][0]: row["cells"] for row in table.json()["rows"]}
    columns = [c["name"] for c in table.json()["columnDefinitions"]]
    assert rows["cached"][columns.index("Reason")] == "ModelCachePending"


async def test_route_is_not_ready_while_its_gateway_is_unavailable(api: Api, operator: Any) -> None:
    controller = api.emu.store.controller
    gateway = "interlock-gateway-default"
    controller.modes[("default", gateway)] = "pending"
    await api.create(backends_path(), backend_manifest("mock"))
    await api.create(routes_path(), route_manifest("chat", ("mock", "m1")))
    await eventually(lambda: reason(api.route("chat")) == "GatewayUnavailable", within=10)
    assert condition(api.route("chat"), "BackendsResolved")["status"] == "True"  # type: ignore[index]

    controller.set_mode("default", gateway, "ready")
    await eventually(lambda: reason(api.route("chat")) == "Ready", within=10)

    # The gateway's pods have not reloaded yet: a changed route waits for them; the unchanged one stays Ready.
    cm = api.obj("v1", "configmaps", gateway)
    api.emu.gateways.pin("default", "default", cm["metadata"]["annotations"]["interlock.dev/config-version"])  # type: ignore[attr-defined,index]
    await api.create(routes_path(), route_manifest("fast", ("mock", "m1")))
    await eventually(lambda: reason(api.route("fast")) == "ConfigNotLoaded", within=10)
    assert reason(api.route("chat")) == "Ready"
    # The operator keeps asking (no resync is due: these are its rechecks) until the pods have it.
    hits = api.emu.gateways.hits  # type: ignore[attr-defined]
    asked = hits[("default", gateway)]
    await eventually(lambda: hits[("default", gateway)] >= asked + 3 * 2, within=15, what="three rechecks")
    assert reason(api.route("fast")) == "ConfigNotLoaded"
    api.emu.gateways.unpin("default", "default")  # type: ignore[attr-defined]
    await eventually(lambda: reason(api.route("fast")) == "Ready", within=10)

    # All gateway pods gone (a bad rollout, a node loss): every route says so.
    controller.set_mode("default", gateway, "unschedulable")
    await eventually(lambda: reason(api.route("chat")) == "GatewayUnavailable", within=10)
    await eventually(lambda: reason(api.route("fast")) == "GatewayUnavailable", within=10)


async def test_a_new_namespace_needs_no_manual_step(api: Api) -> None:
    settings = OperatorSettings(resync_interval_s=60, gateway_signing_key=SIGNING_KEY, image_pull_secrets=["regcred"])
    async with running_operator(settings):
        await api.create("/api/v1/namespaces", {"metadata": {"name": "team-new"}})
        ns = "team-new"
        await api.create(backends_path(ns), gpu_backend("llama", ns))
        await api.create(routes_path(ns), route_manifest("chat", ("llama", "m1"), namespace=ns))
        api.emu.store.controller.set_mode(ns, "llama", "ready")
        await eventually(lambda: reason(api.route("chat", ns)) == "Ready", within=15)

        # The gateway's own control-plane credential, minted for <namespace>/<gateway> and mounted from a Secret.
        secret = api.obj("v1", "secrets", "default-controlplane", ns)
        assert secret is not None
        token = base64.b64decode(secret["data"]["token"]).decode()
        assert verify_gateway_credential(SIGNING_KEY.encode(), token) == "team-new/default"
        deployment = api.obj("apps/v1", "deployments", "interlock-gateway-default", ns)
        assert deployment is not None
        pod = deployment["spec"]["template"]["spec"]
        env = {e["name"]: e for e in pod["containers"][0]["env"]}
        assert env["INTERLOCK_GATEWAY_CONTROL_PLANE_TOKEN"]["valueFrom"]["secretKeyRef"] == {
            "name": "default-controlplane", "key": "token"}  # fmt: skip
        assert env["INTERLOCK_GATEWAY_GATEWAY_ID"]["value"] == "team-new/default/$(POD_NAME)"
        assert pod["imagePullSecrets"] == [{"name": "regcred"}]

        # The engine demands a generated key that the gateway mounts and sends; only gateways may reach it.
        key = api.obj("v1", "secrets", "llama-engine-key", ns)
        assert key is not None
        assert len(base64.b64decode(key["data"]["api-key"])) >= 32
        engine = api.obj("apps/v1", "deployments", "llama", ns)["spec"]["template"]["spec"]["containers"][0]  # type: ignore[index]
        key_ref = {"secretKeyRef": {"name": "llama-engine-key", "key": "api-key"}}
        assert {"name": "VLLM_API_KEY", "valueFrom": key_ref} in engine["env"]
        mounted = [v["secret"]["secretName"] for v in pod["volumes"] if "secret" in v]
        assert "llama-engine-key" in mounted
        policy = api.obj("networking.k8s.io/v1", "networkpolicies", "llama", ns)
        assert policy is not None
        assert policy["spec"]["podSelector"]["matchLabels"] == {
            "interlock.dev/backend": "llama", "app.kubernetes.io/component": "inference"}  # fmt: skip
        (rule,) = policy["spec"]["ingress"]
        gateways = {"app.kubernetes.io/component": "gateway", "app.kubernetes.io/managed-by": "interlock-operator"}
        assert rule["from"] == [{"podSelector": {"matchLabels": gateways}}]

        # The key survives reconciles (generated once), and a rotated signing key re-mints the credential.
        before = key["data"]["api-key"]
        await api.patch(f"{backends_path(ns)}/llama", {"spec": {"serving": {"args": ["--max-model-len", "4096"]}}})
        await eventually(lambda: "4096" in json.dumps(api.obj("apps/v1", "deployments", "llama", ns)), within=10)
        assert api.obj("v1", "secrets", "llama-engine-key", ns)["data"]["api-key"] == before  # type: ignore[index]
    rotated = OperatorSettings(resync_interval_s=60, gateway_signing_key="another-signing-key-of-32-bytes-or-more")
    async with running_operator(rotated):

        def reminted() -> bool:
            data = (api.obj("v1", "secrets", "default-controlplane", ns) or {})["data"]
            token = base64.b64decode(data["token"]).decode()
            return verify_gateway_credential(b"another-signing-key-of-32-bytes-or-more", token) == "team-new/default"

        await eventually(reminted, within=10, what="credential re-minted under the new key")


async def test_each_gateways_last_snapshot_is_kept_for_pods_that_start_while_the_control_plane_is_down(
    api: Api,
) -> None:
    control_plane = ContractServer(signing_key=SIGNING_KEY.encode())  # verifies what the operator mints
    tenant = control_plane.add_tenant("acme")
    control_plane.add_key(tenant)
    url = await control_plane.start()
    settings = OperatorSettings(resync_interval_s=0.3, gateway_signing_key=SIGNING_KEY, control_plane_url=url,
                                snapshot_refresh_s=0.2)  # fmt: skip
    try:
        async with running_operator(settings):
            await api.create(backends_path(), backend_manifest("mock"))
            await api.create(routes_path(), route_manifest("chat", ("mock", "m1")))
            secret = await eventually(lambda: api.obj("v1", "secrets", "default-snapshot"), within=10)
            snapshot = Snapshot.model_validate_json(base64.b64decode(secret["data"]["snapshot.json"]))
            assert [k.tenant_id for k in snapshot.keys] == [tenant]
            assert secret["metadata"]["annotations"]["interlock.dev/snapshot-version"] == snapshot.version
            pod = api.obj("apps/v1", "deployments", "interlock-gateway-default")["spec"]["template"]["spec"]  # type: ignore[index]
            volume = next(v for v in pod["volumes"] if v["name"] == "snapshot")
            assert volume["secret"] == {"secretName": "default-snapshot", "optional": True, "defaultMode": 0o440}
            env = {e["name"]: e.get("value") for e in pod["containers"][0]["env"]}
            assert env["INTERLOCK_GATEWAY_SNAPSHOT_SEED_FILE"] == "/var/run/interlock/snapshot/snapshot.json"

            # Fetched again and again (ETag, 304): written only when the snapshot changed.
            mark = len(api.emu.requests)
            await eventually(lambda: control_plane.snapshot_gets >= 4, within=10, what="refreshes")
            assert operator_writes(api, mark, "secrets") == []
            control_plane.add_key(tenant)
            await eventually(lambda: len(Snapshot.model_validate_json(base64.b64decode(
                api.obj("v1", "secrets", "default-snapshot")["data"]["snapshot.json"])).keys) == 2, within=10)  # type: ignore[index]  # fmt: skip
    finally:
        await control_plane.stop()


KEDA_CRD = {
    "apiVersion": "apiextensions.k8s.io/v1",
    "kind": "CustomResourceDefinition",
    "metadata": {"name": "scaledobjects.keda.sh"},
    "spec": {
        "group": "keda.sh",
        "names": {"kind": "ScaledObject", "plural": "scaledobjects", "singular": "scaledobject"},
        "scope": "Namespaced",
        "versions": [{"name": "v1alpha1", "served": True, "storage": True,
                      "schema": {"openAPIV3Schema": {"type": "object", "x-kubernetes-preserve-unknown-fields": True}}}],
    },
}  # fmt: skip


async def test_keda_scales_the_backend_where_it_is_installed(api: Api) -> None:
    response = await api.http.post("/apis/apiextensions.k8s.io/v1/customresourcedefinitions", json=KEDA_CRD)
    assert response.status_code == 201, response.text
    settings = OperatorSettings(resync_interval_s=60, keda_prometheus_url="http://prometheus.monitoring.svc:9090")
    async with running_operator(settings):
        await api.create(backends_path(), gpu_backend(autoscaling={"minReplicas": 0, "maxReplicas": 4}))
        scaled = await eventually(lambda: api.obj("keda.sh/v1alpha1", "scaledobjects", "llama"), within=10)
        assert scaled["spec"]["minReplicaCount"] == 0
        assert scaled["spec"]["triggers"][0]["metadata"]["serverAddress"] == "http://prometheus.monitoring.svc:9090"
        assert api.obj("autoscaling/v2", "horizontalpodautoscalers", "llama") is None
        await eventually(lambda: api.obj("apps/v1", "deployments", "llama"), within=10)
        assert replicas(api) == 1  # the API server's default, owned by no manager: KEDA sets it from here
        await api.patch(f"{backends_path()}/llama", {"spec": {"serving": {"autoscaling": None}}})
        await eventually(lambda: api.obj("keda.sh/v1alpha1", "scaledobjects", "llama") is None, within=10)


async def test_gateways_handed_to_an_autoscaler_keep_their_replicas(api: Api) -> None:
    await api.create(backends_path(), backend_manifest("mock"))
    await api.create(routes_path(), route_manifest("chat", ("mock", "m1")))
    async with running_operator(OperatorSettings(resync_interval_s=60, gateway_replicas=3)):
        await eventually(lambda: replicas(api, "interlock-gateway-default") == 3, within=10)
    scaling = {"min_replicas": 2, "max_replicas": 8, "cpu_utilization": 70}
    async with running_operator(OperatorSettings(resync_interval_s=60, gateway_autoscaling=scaling)):
        hpa = await eventually(
            lambda: api.obj("autoscaling/v2", "horizontalpodautoscalers", "interlock-gateway-default"), within=10
        )
        assert hpa["spec"]["maxReplicas"] == 8
        assert replicas(api, "interlock-gateway-default") == 3  # handed over, not reset to 1
    async with running_operator(OperatorSettings(resync_interval_s=60, gateway_replicas=2)):
        await eventually(lambda: replicas(api, "interlock-gateway-default") == 2, within=10)
        gone = api.obj("autoscaling/v2", "horizontalpodautoscalers", "interlock-gateway-default") is None
        assert gone
