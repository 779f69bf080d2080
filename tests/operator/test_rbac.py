"""``operator/rbac/role.yaml`` lists exactly what the operator does: every request the emulator recorded from it
(kopf's and its own) is allowed there, and every rule there was used (except the documented, invisible ones)."""

from __future__ import annotations

from pathlib import Path

import yaml

from interlock.operator.settings import OperatorSettings
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

ROLE = Path(__file__).resolve().parents[2] / "operator" / "rbac" / "role.yaml"
NOT_REQUESTS = {"finalizers"}  # documented in role.yaml: admission checks, not API calls
# Documented in role.yaml: `create` is authorized for applies that create (the request is a PATCH), and KEDA
# objects are used only where KEDA is installed.
APPLIED = (
    ("apps", "deployments"),
    ("", "services"),
    ("", "configmaps"),
    ("", "persistentvolumeclaims"),
    ("policy", "poddisruptionbudgets"),
    ("networking.k8s.io", "networkpolicies"),
    ("autoscaling", "horizontalpodautoscalers"),
    ("", "secrets"),
)
NOT_SEEN = {(g, r, "create") for g, r in APPLIED} | {
    ("keda.sh", "scaledobjects", v) for v in ("get", "create", "patch", "delete")
}


def role_permissions() -> set[tuple[str, str, str]]:
    role = yaml.safe_load(ROLE.read_text())
    assert role["kind"] == "ClusterRole"
    allowed = set()
    for rule in role["rules"]:
        for group in rule["apiGroups"]:
            for resource in rule["resources"]:
                for verb in rule["verbs"]:
                    allowed.add((group, resource, verb))
    return allowed


def used(api: Api) -> set[tuple[str, str, str]]:
    out = set()
    for r in api.emu.requests:
        if r.verb == "discovery" or not r.user_agent.startswith(("kopf", "interlock-operator")):
            continue
        resource = f"{r.resource}/{r.subresource}" if r.subresource else r.resource
        out.add((r.group, resource, r.verb))
    return out


async def test_role_lists_exactly_the_requests_the_operator_makes(api: Api) -> None:
    await api.create("/api/v1/namespaces", {"metadata": {"name": "team-a"}})
    await api.create("/api/v1/namespaces/team-a/secrets", {"metadata": {"name": "k"}, "stringData": {"api-key": "x"}})
    serving = {"model": "org/m", "modelCache": {"size": "10Gi"}, "autoscaling": {"maxReplicas": 3}}
    async with running_operator(OperatorSettings(resync_interval_s=60), clusterwide=False, namespaces=["team-*"]):
        ns = "team-a"
        await api.create(backends_path(ns), backend_manifest("gpu", ns, provider="vllm", serving=serving))
        await api.create(
            backends_path(ns),
            backend_manifest(
                "ext", ns, provider="openai", url="https://x.example/v1", credentialsSecretRef={"name": "k"}
            ),
        )
        await api.create(routes_path(ns), route_manifest("a", ("gpu", "m1"), namespace=ns))
        await api.create(routes_path(ns), route_manifest("b", ("ext", "m1"), namespace=ns))
        gateway = "interlock-gateway-default"
        await eventually(lambda: api.obj("v1", "configmaps", gateway, ns), within=10)
        await eventually(lambda: condition(api.route("b", ns)), within=10)
        # Changes that patch every kind of child, then deletes that remove them.
        await api.patch(f"{backends_path(ns)}/gpu", {"spec": {"serving": {"modelCache": {"size": "20Gi"}}}})
        await eventually(
            lambda: (
                api.obj("v1", "persistentvolumeclaims", "gpu-model-cache", ns)["spec"]["resources"]["requests"][  # type: ignore[index]
                    "storage"
                ]
                == "20Gi"
            ),
            within=10,
        )
        await eventually(lambda: api.obj("autoscaling/v2", "horizontalpodautoscalers", "gpu", ns), within=10)
        await api.patch(f"{backends_path(ns)}/gpu", {"spec": {"serving": {"autoscaling": None}}})
        await eventually(lambda: api.obj("autoscaling/v2", "horizontalpodautoscalers", "gpu", ns) is None, within=10)
        await api.delete(f"{routes_path(ns)}/a")
        await eventually(lambda: api.route("a", ns) is None, within=10)
        await api.delete(f"{routes_path(ns)}/b")
        await api.delete(f"{backends_path(ns)}/gpu")
        await eventually(lambda: api.obj("v1", "configmaps", gateway, ns) is None, within=10)
        await eventually(lambda: api.backend("gpu", ns) is None, within=10)
    allowed = {p for p in role_permissions() if p[1].rpartition("/")[2] not in NOT_REQUESTS and p not in NOT_SEEN}
    assert used(api) <= allowed, f"requests the role does not allow: {sorted(used(api) - allowed)}"
    assert allowed <= used(api), f"rules no request needed: {sorted(allowed - used(api))}"
