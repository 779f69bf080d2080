"""The emulator's API-server semantics that the operator relies on, each checked against the Kubernetes
documentation page it mirrors (cited per test). ``docs/emulator.md`` lists where the emulator still differs."""

from __future__ import annotations

import asyncio
import base64
import json
from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest

from tests.operator.emulator import Emulator
from tests.support import eventually

DEPLOYMENTS = "/apis/apps/v1/namespaces/default/deployments"
APPLY = "application/apply-patch+yaml"
MERGE = "application/merge-patch+json"


@pytest.fixture
async def http() -> AsyncIterator[httpx.AsyncClient]:
    async with Emulator() as emu, httpx.AsyncClient(base_url=emu.url, timeout=10) as client:
        client.emu = emu  # type: ignore[attr-defined]
        yield client


def deployment(name: str = "web", **spec: Any) -> dict[str, Any]:
    container = {"name": "app", "image": "registry.example/app:1.0", **spec.pop("container", {})}
    return {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {"name": name, "namespace": "default"},
        "spec": {
            "selector": {"matchLabels": {"app": name}},
            "template": {"metadata": {"labels": {"app": name}}, "spec": {"containers": [container], **spec}},
        },
    }


async def apply(http: httpx.AsyncClient, body: dict[str, Any], manager: str, *, force: bool = False) -> httpx.Response:
    name = body["metadata"]["name"]
    params = {"fieldManager": manager, **({"force": "true"} if force else {})}
    return await http.patch(f"{DEPLOYMENTS}/{name}", content=json.dumps(body), params=params,
                            headers={"Content-Type": APPLY})  # fmt: skip


def managers(obj: dict[str, Any]) -> dict[tuple[str, str], dict[str, Any]]:
    return {(e["manager"], e["operation"]): e["fieldsV1"] for e in obj["metadata"]["managedFields"]}


# https://kubernetes.io/docs/reference/using-api/server-side-apply/ ("Field management", "Conflicts",
# "Merge strategy": a field the applier stops applying is removed unless another manager owns it)
async def test_server_side_apply_tracks_owners_removes_dropped_fields_and_reports_conflicts(
    http: httpx.AsyncClient,
) -> None:
    first = deployment(nodeSelector={"gpu": "a100"}, tolerations=[{"key": "t", "operator": "Exists"}])
    first["spec"]["replicas"] = 2
    created = await apply(http, first, "operator")
    assert created.status_code == 201 or created.status_code == 200, created.text
    obj = created.json()
    fields = managers(obj)[("operator", "Apply")]
    assert "f:replicas" in fields["f:spec"]
    assert 'k:{"name":"app"}' in fields["f:spec"]["f:template"]["f:spec"]["f:containers"]

    # Another manager (an HPA through the scale subresource) changes replicas: it owns them now.
    hpa = {"Content-Type": MERGE, "User-Agent": "kube-controller-manager/v1.37"}
    scaled = await http.patch(f"{DEPLOYMENTS}/web/scale", json={"spec": {"replicas": 5}}, headers=hpa)
    assert scaled.status_code == 200, scaled.text
    live = (await http.get(f"{DEPLOYMENTS}/web")).json()
    assert live["spec"]["replicas"] == 5
    scale_entry = next(e for e in live["metadata"]["managedFields"] if e.get("subresource") == "scale")
    assert scale_entry["manager"] == "kube-controller-manager"
    assert "f:replicas" not in managers(live)[("operator", "Apply")]["f:spec"]

    # A user annotates; a mesh injects a sidecar container with its own apply.
    await http.patch(f"{DEPLOYMENTS}/web", json={"metadata": {"annotations": {"team": "ml"}}},
                     headers={"Content-Type": MERGE, "User-Agent": "kubectl/v1.37"})  # fmt: skip
    sidecar = deployment(container={"name": "app"})
    sidecar["spec"]["template"]["spec"]["containers"] = [{"name": "mesh-proxy", "image": "mesh/proxy:2"}]
    assert (await apply(http, sidecar, "mesh")).status_code == 200

    # Applying without replicas, nodeSelector and tolerations: those it alone owned go; others' fields stay.
    second = deployment()
    conflict = await apply(http, {**second, "spec": {**second["spec"], "replicas": 3}}, "operator")
    assert conflict.status_code == 409
    assert conflict.json()["reason"] == "Conflict"
    assert 'conflict with "kube-controller-manager"' in conflict.json()["message"]
    assert conflict.json()["details"]["causes"][0]["field"] == ".spec.replicas"
    ok = await apply(http, second, "operator")
    assert ok.status_code == 200, ok.text
    live = ok.json()
    pod = live["spec"]["template"]["spec"]
    assert "nodeSelector" not in pod
    assert "tolerations" not in pod
    assert live["spec"]["replicas"] == 5  # owned by the autoscaler
    assert live["metadata"]["annotations"] == {"team": "ml"}
    assert [c["name"] for c in pod["containers"]] == ["app", "mesh-proxy"]

    # With force, the applier takes a conflicting field over.
    forced = await apply(http, {**second, "spec": {**second["spec"], "replicas": 3}}, "operator", force=True)
    assert forced.json()["spec"]["replicas"] == 3
    assert "f:replicas" in managers(forced.json())[("operator", "Apply")]["f:spec"]


# https://kubernetes.io/docs/concepts/workloads/controllers/deployment/ (strategy 25%/25%, revisionHistoryLimit 10,
# progressDeadlineSeconds 600) and https://kubernetes.io/docs/concepts/services-networking/service/ (targetPort
# defaults to port, protocol to TCP)
async def test_deployment_and_service_defaults(http: httpx.AsyncClient) -> None:
    created = (await apply(http, deployment(container={"ports": [{"containerPort": 80}],
                                                       "readinessProbe": {"httpGet": {"path": "/", "port": 80}}}),
                           "me")).json()  # fmt: skip
    spec = created["spec"]
    assert spec["replicas"] == 1
    assert spec["strategy"] == {"type": "RollingUpdate", "rollingUpdate": {"maxUnavailable": "25%", "maxSurge": "25%"}}
    assert (spec["revisionHistoryLimit"], spec["progressDeadlineSeconds"]) == (10, 600)
    pod = spec["template"]["spec"]
    assert (pod["restartPolicy"], pod["dnsPolicy"], pod["terminationGracePeriodSeconds"]) == (
        "Always",
        "ClusterFirst",
        30,
    )
    (container,) = pod["containers"]
    assert container["imagePullPolicy"] == "IfNotPresent"
    assert container["ports"] == [{"containerPort": 80, "protocol": "TCP"}]
    probe = container["readinessProbe"]
    assert (probe["timeoutSeconds"], probe["periodSeconds"], probe["failureThreshold"]) == (1, 10, 3)
    assert probe["httpGet"]["scheme"] == "HTTP"
    # Defaulted fields belong to nobody.
    assert "f:revisionHistoryLimit" not in managers(created)[("me", "Apply")]["f:spec"]

    service = await http.post("/api/v1/namespaces/default/services",
                              json={"metadata": {"name": "web"}, "spec": {"ports": [{"port": 8000}]}})  # fmt: skip
    svc = service.json()["spec"]
    assert svc["type"] == "ClusterIP"
    assert svc["ports"] == [{"port": 8000, "protocol": "TCP", "targetPort": 8000}]
    assert svc["sessionAffinity"] == "None"
    assert svc["clusterIP"]


# https://kubernetes.io/docs/reference/kubernetes-api/common-definitions/quantity/ ("1.5 will be serialized as
# 1500m", "1.5Gi will be serialized as 1536Mi"; canonical form: the largest suffix without a fraction)
@pytest.mark.parametrize(
    ("written", "stored"),
    [(4, "4"), ("1.5", "1500m"), ("1.5Gi", "1536Mi"), ("1024Mi", "1Gi"), ("2000", "2k"), ("0.5Ki", "512"),
     ("129e6", "129e6"), ("100m", "100m")],
)  # fmt: skip
async def test_quantities_are_stored_canonical(http: httpx.AsyncClient, written: Any, stored: str) -> None:
    created = await apply(http, deployment(container={"resources": {"limits": {"memory": written}}}), "me")
    (container,) = created.json()["spec"]["template"]["spec"]["containers"]
    assert container["resources"]["limits"]["memory"] == stored


# https://kubernetes.io/docs/concepts/configuration/secret/ ("stringData ... merged into the data field on write,
# overwriting any existing values"; it is never output when reading)
async def test_secret_string_data_is_stored_in_data(http: httpx.AsyncClient) -> None:
    body = {"metadata": {"name": "s"}, "data": {"a": base64.b64encode(b"old").decode()}, "stringData": {"a": "new"}}
    created = (await http.post("/api/v1/namespaces/default/secrets", json=body)).json()
    assert "stringData" not in created
    assert base64.b64decode(created["data"]["a"]) == b"new"
    assert created["type"] == "Opaque"


# https://kubernetes.io/docs/concepts/workloads/controllers/deployment/#deployment-status (the controller reports
# the generation it observed; a status whose observedGeneration is behind describes an older spec)
async def test_deployment_status_reports_the_observed_generation(http: httpx.AsyncClient) -> None:
    emu: Emulator = http.emu  # type: ignore[attr-defined]
    created = (await apply(http, deployment(), "me")).json()
    assert created["metadata"]["generation"] == 1
    live = (await http.get(f"{DEPLOYMENTS}/web")).json()
    assert live["status"]["observedGeneration"] == 1
    emu.store.controller.enabled = False  # the controller is slow to see the next change
    changed = (await apply(http, deployment(container={"image": "registry.example/app:2.0"}), "me")).json()
    assert changed["metadata"]["generation"] == 2
    assert changed["status"]["observedGeneration"] == 1
    annotated = await http.patch(f"{DEPLOYMENTS}/web", json={"metadata": {"annotations": {"a": "b"}}},
                                 headers={"Content-Type": MERGE})  # fmt: skip
    assert annotated.json()["metadata"]["generation"] == 2  # metadata is not spec
    emu.store.controller.enabled = True
    emu.store.controller.set_mode("default", "web", "ready")
    live = (await http.get(f"{DEPLOYMENTS}/web")).json()
    assert live["status"]["observedGeneration"] == 2
    assert live["status"]["availableReplicas"] == 1


# https://kubernetes.io/docs/concepts/overview/working-with-objects/labels/#list-and-watch-filtering
async def test_label_selectors_filter_lists_and_watches(http: httpx.AsyncClient) -> None:
    for name, tier in (("a", "gpu"), ("b", "cpu"), ("c", "gpu")):
        await http.post("/api/v1/namespaces/default/configmaps",
                        json={"metadata": {"name": name, "labels": {"tier": tier}}})  # fmt: skip
    listed = (await http.get("/api/v1/namespaces/default/configmaps", params={"labelSelector": "tier=gpu"})).json()
    assert [i["metadata"]["name"] for i in listed["items"]] == ["a", "c"]
    listed = await http.get("/api/v1/namespaces/default/configmaps", params={"labelSelector": "tier notin (gpu)"})
    assert [i["metadata"]["name"] for i in listed.json()["items"]] == ["b"]
    since = listed.json()["metadata"]["resourceVersion"]
    params = {"watch": "true", "labelSelector": "tier=cpu", "resourceVersion": since, "timeoutSeconds": "2"}

    async def watched() -> list[str]:
        async with http.stream("GET", "/api/v1/namespaces/default/configmaps", params=params) as response:
            return [json.loads(line)["object"]["metadata"]["name"] async for line in response.aiter_lines() if line]

    watching = asyncio.create_task(watched())  # from the list's resourceVersion: nothing after it is missed
    for name, tier in (("d", "gpu"), ("e", "cpu")):
        await http.post("/api/v1/namespaces/default/configmaps",
                        json={"metadata": {"name": name, "labels": {"tier": tier}}})  # fmt: skip
    assert await watching == ["e"]


# https://kubernetes.io/docs/concepts/architecture/garbage-collection/#background-deletion (the owner goes at once;
# the garbage collector then deletes dependents whose owners are all gone)
async def test_owner_references_are_garbage_collected_in_the_background(http: httpx.AsyncClient) -> None:
    owner = (await http.post("/api/v1/namespaces/default/configmaps", json={"metadata": {"name": "owner"}})).json()
    other = (await http.post("/api/v1/namespaces/default/configmaps", json={"metadata": {"name": "other"}})).json()

    def ref(obj: dict[str, Any]) -> dict[str, Any]:
        return {"apiVersion": "v1", "kind": "ConfigMap", "name": obj["metadata"]["name"], "uid": obj["metadata"]["uid"]}

    await http.post("/api/v1/namespaces/default/configmaps",
                    json={"metadata": {"name": "child", "ownerReferences": [ref(owner)]}})  # fmt: skip
    await http.post("/api/v1/namespaces/default/configmaps",
                    json={"metadata": {"name": "shared", "ownerReferences": [ref(owner), ref(other)]}})  # fmt: skip
    deleted = await http.request("DELETE", "/api/v1/namespaces/default/configmaps/owner",
                                 json={"propagationPolicy": "Background"})  # fmt: skip
    assert deleted.status_code == 200

    async def gone() -> bool:
        return (await http.get("/api/v1/namespaces/default/configmaps/child")).status_code == 404

    await eventually(gone, within=5)
    assert (await http.get("/api/v1/namespaces/default/configmaps/shared")).status_code == 200  # one owner is left


# https://kubernetes.io/docs/reference/using-api/api-concepts/#receiving-resources-as-tables and
# https://kubernetes.io/docs/tasks/extend-kubernetes/custom-resources/custom-resource-definitions/#additional-printer-columns
async def test_tables_print_a_crds_columns(http: httpx.AsyncClient) -> None:
    from tests.operator.conftest import install_crds

    await install_crds(http)
    route = {"apiVersion": "interlock.dev/v1alpha1", "kind": "Route", "metadata": {"name": "chat"},
             "spec": {"model": "chat", "targets": [{"backend": "b", "model": "m"}]}}  # fmt: skip
    await http.post("/apis/interlock.dev/v1alpha1/namespaces/default/routes", json=route)
    await http.patch("/apis/interlock.dev/v1alpha1/namespaces/default/routes/chat/status",
                     json={"status": {"conditions": [{"type": "Ready", "status": "False", "reason": "Why"}]}},
                     headers={"Content-Type": MERGE})  # fmt: skip
    table = (await http.get("/apis/interlock.dev/v1alpha1/namespaces/default/routes",
                            headers={"Accept": "application/json;as=Table;v=v1;g=meta.k8s.io"})).json()  # fmt: skip
    assert table["kind"] == "Table"
    assert [c["name"] for c in table["columnDefinitions"]] == ["Name", "Model", "Gateway", "Ready", "Reason", "Age"]
    assert table["rows"][0]["cells"][:5] == ["chat", "chat", None, "False", "Why"]
