"""Per-template expectations of charts/interlock, in the helm-unittest style: "it should ..." over rendered objects."""

from __future__ import annotations

import base64
import json
from collections.abc import Iterator
from typing import Any

import pytest
import yaml

from interlock.operator.naming import COMPONENT_GATEWAY, LABEL_COMPONENT, LABEL_PART_OF
from interlock.operator.settings import OperatorSettings
from interlock.telemetry.tracing import Sampling
from tests.charts.rendering import CHART, CI_VALUES, REPO, Rendered, ci_values, render

VALUE_SETS = [pytest.param({}, id="default"), *(pytest.param(ci_values(p), id=p.stem) for p in CI_VALUES)]
WORKLOADS = ("Deployment", "StatefulSet", "Job")
ROLE_YAML = REPO / "operator" / "rbac" / "role.yaml"

# --- helpers ----------------------------------------------------------------------------------------------------


def _pod_specs(rendered: Rendered) -> Iterator[tuple[dict[str, Any], dict[str, Any]]]:
    for obj in rendered:
        if obj["kind"] in WORKLOADS:
            yield obj, obj["spec"]["template"]["spec"]


def _containers(pod: dict[str, Any]) -> list[dict[str, Any]]:
    return [*pod.get("initContainers", []), *pod["containers"]]


def _env(container: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {e["name"]: e for e in container.get("env", [])}


def _rules(rules: list[dict[str, Any]]) -> dict[tuple[str, str], set[str]]:
    out: dict[tuple[str, str], set[str]] = {}
    for rule in rules:
        for group in rule.get("apiGroups", []):
            for resource in rule.get("resources", []):
                out.setdefault((group, resource), set()).update(rule["verbs"])
    return out


def _expected_operator_rules() -> dict[tuple[str, str], set[str]]:
    """operator/rbac/role.yaml: the operator's own list, which tests/operator checks against what it does."""
    assert ROLE_YAML.exists(), f"{ROLE_YAML} is missing: the operator's RBAC list is the chart's source"
    rules = []
    for doc in yaml.safe_load_all(ROLE_YAML.read_text()):
        if isinstance(doc, dict) and doc.get("kind") in ("Role", "ClusterRole"):
            rules += doc.get("rules") or []
    return _rules(rules)


def _operator_rules(rendered: Rendered) -> dict[tuple[str, str], set[str]]:
    roles = [
        o for o in rendered if o["kind"] in ("ClusterRole", "Role") and o["metadata"]["name"].endswith("-operator")
    ]
    merged: dict[tuple[str, str], set[str]] = {}
    for role in roles:
        for key, verbs in _rules(role["rules"]).items():
            merged.setdefault(key, set()).update(verbs)
    return merged


def _matches(selector: dict[str, str], labels: dict[str, str]) -> bool:
    return all(labels.get(k) == v for k, v in selector.items())


def _hook(obj: dict[str, Any]) -> tuple[set[str], int] | None:
    annotations = obj["metadata"].get("annotations") or {}
    if "helm.sh/hook" not in annotations:
        return None
    return set(annotations["helm.sh/hook"].split(",")), int(annotations.get("helm.sh/hook-weight", "0"))


_EARLIER = {"post-install": "pre-install", "post-upgrade": "pre-upgrade"}


def _exists_when(hook: tuple[set[str], int] | None, phase: str, weight: int) -> bool:
    """Whether a resource exists when a hook of ``phase`` and ``weight`` runs: ordinary resources exist from the
    install on (not yet at pre-install); hooks once their own phase ran, or earlier in the same phase."""
    if hook is None:
        return phase != "pre-install"
    phases, own_weight = hook
    return (phase in phases and own_weight < weight) or _EARLIER.get(phase) in phases


def _secret_values(rendered: Rendered) -> set[str]:
    values = set()
    for secret in rendered.of_kind("Secret"):
        values |= {base64.b64decode(v).decode() for v in secret.get("data", {}).values()}
        values |= set(secret.get("stringData", {}).values())
    return {v for v in values if len(v) >= 8}


# --- RBAC -------------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("values", [{}, {"operator": {"watchNamespaces": ["team-a", "team-b"]}}], ids=["all", "listed"])
def test_it_should_grant_the_operator_exactly_the_rbac_it_uses(values: dict[str, Any]) -> None:
    rendered = render(values)
    assert _operator_rules(rendered) == _expected_operator_rules(), (
        "the chart's operator RBAC differs from operator/rbac/role.yaml: run scripts/sync-dashboards"
    )
    for role in rendered.of_kind("ClusterRole") + rendered.of_kind("Role"):
        for rule in role["rules"]:
            assert "*" not in {*rule["verbs"], *rule["resources"], *rule["apiGroups"]}, rule


def test_it_should_use_a_cluster_role_when_watching_every_namespace() -> None:
    rendered = render()
    # The only Role: the leader-election Lease, in the release namespace.
    (lease,) = rendered.of_kind("Role")
    assert (lease["metadata"]["namespace"], lease["rules"]) == (
        "interlock",
        [{"apiGroups": ["coordination.k8s.io"], "resources": ["leases"], "verbs": ["get", "create", "update"]}],
    )
    assert [b["roleRef"]["name"] for b in rendered.of_kind("RoleBinding")] == ["il-interlock-operator-leader"]
    binding = rendered.one("ClusterRoleBinding", "-operator")
    assert binding["roleRef"] == {
        "apiGroup": "rbac.authorization.k8s.io",
        "kind": "ClusterRole",
        "name": "il-interlock-operator",
    }
    assert binding["subjects"] == [
        {"kind": "ServiceAccount", "name": "il-interlock-operator", "namespace": "interlock"}
    ]
    args = rendered.one("Deployment", "-operator")["spec"]["template"]["spec"]["containers"][0]["args"]
    assert "--all-namespaces" in args


def test_it_should_use_a_role_per_watched_namespace_and_only_cluster_scoped_rules_cluster_wide() -> None:
    rendered = render({"operator": {"watchNamespaces": ["team-a", "team-b"]}})
    roles = [r for r in rendered.of_kind("Role") if not r["metadata"]["name"].endswith("-leader")]
    assert sorted(r["metadata"]["namespace"] for r in roles) == ["team-a", "team-b"]
    bindings = [b for b in rendered.of_kind("RoleBinding") if not b["metadata"]["name"].endswith("-leader")]
    assert sorted(b["metadata"]["namespace"] for b in bindings) == ["team-a", "team-b"]
    for binding in rendered.of_kind("RoleBinding"):
        assert binding["subjects"][0]["namespace"] == "interlock"
    cluster = _rules(rendered.one("ClusterRole", "-operator")["rules"])
    assert {resource for _, resource in cluster} <= {"customresourcedefinitions", "namespaces"}
    assert all(_rules(role["rules"]) for role in roles)
    args = rendered.one("Deployment", "-operator")["spec"]["template"]["spec"]["containers"][0]["args"]
    assert "--namespace=team-a" in args
    assert "--namespace=team-b" in args
    assert "--all-namespaces" not in args


def test_it_should_give_no_kubernetes_api_access_to_the_api_and_the_migration_job() -> None:
    rendered = render()
    bound = {
        s["name"]
        for b in rendered.of_kind("ClusterRoleBinding") + rendered.of_kind("RoleBinding")
        for s in b["subjects"]
    }
    assert bound == {"il-interlock-operator"}
    for obj, pod in _pod_specs(rendered):
        if not obj["metadata"]["name"].endswith("-operator"):
            assert pod["automountServiceAccountToken"] is False, obj["metadata"]["name"]


# --- security -----------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("values", VALUE_SETS)
def test_it_should_run_every_container_non_root_with_a_read_only_root_filesystem(values: dict[str, Any]) -> None:
    rendered = render(values)
    checked = 0
    for obj, pod in _pod_specs(rendered):
        pod_ctx = pod.get("securityContext", {})
        assert pod_ctx.get("seccompProfile") == {"type": "RuntimeDefault"}, obj["metadata"]["name"]
        for container in _containers(pod):
            ctx = container["securityContext"]
            where = f"{obj['kind']} {obj['metadata']['name']} container {container['name']}"
            assert ctx.get("runAsNonRoot", pod_ctx.get("runAsNonRoot")) is True, where
            assert ctx.get("runAsUser", pod_ctx.get("runAsUser", 0)) != 0, where
            assert ctx["readOnlyRootFilesystem"] is True, where
            assert ctx["allowPrivilegeEscalation"] is False, where
            assert ctx["capabilities"]["drop"] == ["ALL"], where
            assert "add" not in ctx["capabilities"], where
            assert all(container["resources"][kind]["memory"] for kind in ("requests", "limits")), where
            checked += 1
    assert checked >= 3


@pytest.mark.parametrize("values", VALUE_SETS)
def test_it_should_pin_every_image(values: dict[str, Any]) -> None:
    images = [c["image"] for _, pod in _pod_specs(render(values)) for c in _containers(pod)]
    operator = render(values).one("Deployment", "-operator")["spec"]["template"]["spec"]["containers"][0]
    images.append(_env(operator)["INTERLOCK_OPERATOR_GATEWAY_IMAGE"]["value"])
    for image in images:
        name, _, digest = image.partition("@")
        tag = name.rpartition(":")[2] if ":" in name.rpartition("/")[2] else ""
        assert digest.startswith("sha256:") or (tag and tag != "latest"), image


@pytest.mark.parametrize("values", VALUE_SETS)
def test_it_should_put_no_secret_value_in_any_config_map_env_value_or_annotation(values: dict[str, Any]) -> None:
    rendered = render(values)
    secrets = _secret_values(rendered) | {"ci-bundled-password", "ci-admin-token-bundled", "ci-gateway-token-bundled"}
    plain = []
    for obj in rendered:
        if obj["kind"] == "ConfigMap":
            plain += list(obj.get("data", {}).values())
        plain += list(obj["metadata"].get("annotations", {}).values())
    for _, pod in _pod_specs(rendered):
        for container in _containers(pod):
            plain += [e["value"] for e in container.get("env", []) if "value" in e]
            plain += container.get("args", []) + container.get("command", [])
    for text in plain:
        for secret in secrets:
            assert secret not in text


def test_it_should_read_every_credential_from_a_secret() -> None:
    rendered = render(ci_values(CHART / "ci" / "bundled-db-values.yaml"))
    api = rendered.one("Deployment", "-api")["spec"]["template"]["spec"]["containers"][0]
    env = _env(api)
    for name in ("DATABASE_URL", "INTERLOCK_API_ADMIN_TOKEN", "INTERLOCK_API_GATEWAY_TOKEN"):
        assert "secretKeyRef" in env[name]["valueFrom"], name
    auth = rendered.one("Secret", "-auth")
    assert base64.b64decode(auth["data"]["admin-token"]).decode() == "ci-admin-token-bundled"
    assert env["INTERLOCK_API_ADMIN_TOKEN"]["valueFrom"]["secretKeyRef"] == {
        "name": "il-interlock-auth",
        "key": "admin-token",
    }


def test_it_should_generate_tokens_and_passwords_when_none_are_given() -> None:
    rendered = render()
    auth = rendered.one("Secret", "-auth")
    tokens = {k: base64.b64decode(v).decode() for k, v in auth["data"].items()}
    assert set(tokens) == {"admin-token", "gateway-token", "gateway-signing-key"}
    assert all(len(t) == 40 and t.isalnum() for t in tokens.values())
    assert tokens["admin-token"] != tokens["gateway-token"]
    assert len(base64.b64decode(rendered.one("Secret", "-postgresql")["data"]["password"])) == 40


def test_it_should_use_an_existing_auth_secret_without_rendering_one() -> None:
    rendered = render({"auth": {"existingSecret": "my-tokens"}})
    assert rendered.names("Secret") == {"il-interlock-postgresql"}
    env = _env(rendered.one("Deployment", "-api")["spec"]["template"]["spec"]["containers"][0])
    assert env["INTERLOCK_API_ADMIN_TOKEN"]["valueFrom"]["secretKeyRef"]["name"] == "my-tokens"


# --- database and migrations ---------------------------------------------------------------------------------------


def test_it_should_bundle_postgres_with_a_volume_and_point_the_api_at_it() -> None:
    rendered = render(ci_values(CHART / "ci" / "bundled-db-values.yaml"))
    sts = rendered.one("StatefulSet", "-postgresql")
    claim = sts["spec"]["volumeClaimTemplates"][0]
    assert claim["spec"]["resources"]["requests"]["storage"] == "2Gi"
    assert claim["spec"]["storageClassName"] == "standard"
    dsn = base64.b64decode(rendered.one("Secret", "-postgresql")["data"]["database-url"]).decode()
    assert (
        dsn == "postgresql+asyncpg://interlock:ci-bundled-password@il-interlock-postgresql.interlock.svc:5432/interlock"
    )
    service = rendered.one("Service", "-postgresql")
    assert _matches(service["spec"]["selector"], sts["spec"]["template"]["metadata"]["labels"])


def test_it_should_read_the_external_dsn_from_the_given_secret_and_bundle_nothing() -> None:
    rendered = render(ci_values(CHART / "ci" / "external-db-values.yaml"))
    assert rendered.of_kind("StatefulSet") == []
    assert rendered.of_kind("Secret") == []
    for suffix, kind in (("-api", "Deployment"), ("-migrate", "Job")):
        env = _env(rendered.one(kind, suffix)["spec"]["template"]["spec"]["containers"][0])
        assert env["DATABASE_URL"]["valueFrom"]["secretKeyRef"] == {"name": "interlock-database", "key": "dsn"}


EXTERNAL_DB_GENERATED_TOKENS = {"database": {"mode": "external", "external": {"existingSecret": "db"}}}


@pytest.mark.parametrize("values", [*VALUE_SETS, pytest.param(EXTERNAL_DB_GENERATED_TOKENS, id="external-db-tokens")])
def test_it_should_migrate_in_a_hook_only_after_what_the_job_uses_exists(values: dict[str, Any]) -> None:
    """A pre-install hook runs before any ordinary resource of the release exists: everything the Job uses that the
    chart renders must then be a hook of the same phases with a lower weight. Post-install, everything exists."""
    rendered = render(values)
    jobs = rendered.of_kind("Job")
    if values.get("migrations", {}).get("enabled") is False:
        assert jobs == []
        return
    (job,) = jobs
    phases, weight = _hook(job) or pytest.fail("the migration Job must be a Helm hook")
    external = values.get("database", {}).get("mode") == "external"
    assert phases == ({"pre-install", "pre-upgrade"} if external else {"post-install", "pre-upgrade"})
    assert set(job["metadata"]["annotations"]["helm.sh/hook-delete-policy"].split(",")) == {
        "before-hook-creation",
        "hook-succeeded",
    }
    pod = job["spec"]["template"]["spec"]
    container = pod["containers"][0]
    assert container["command"] == ["interlock", "api", "--migrate-only"]
    used = [("ServiceAccount", pod["serviceAccountName"])]
    used += [("Secret", e["valueFrom"]["secretKeyRef"]["name"]) for e in container["env"] if "valueFrom" in e]
    by_name = {(o["kind"], o["metadata"]["name"]): o for o in rendered}
    for kind, name in used:
        dependency = by_name.get((kind, name))
        if dependency is None:
            continue  # given by the user (an existing Secret): it exists before the release
        for phase in phases:
            assert _exists_when(_hook(dependency), phase, weight), f"{kind} {name} does not exist yet at {phase}"
    api_env = _env(rendered.one("Deployment", "-api")["spec"]["template"]["spec"]["containers"][0])
    assert _env(container)["DATABASE_URL"] == api_env["DATABASE_URL"]


# --- what the operator gives the gateways ---------------------------------------------------------------------------


def _gateway_defaults(values: dict[str, Any]) -> dict[str, Any]:
    operator = render(values).one("Deployment", "-operator")["spec"]["template"]["spec"]["containers"][0]
    env = _env(operator)
    return {
        "image": env["INTERLOCK_OPERATOR_GATEWAY_IMAGE"]["value"],
        "replicas": int(env["INTERLOCK_OPERATOR_GATEWAY_REPLICAS"]["value"]),
        "resources": json.loads(env["INTERLOCK_OPERATOR_GATEWAY_RESOURCES"]["value"]),
        "env": {e["name"]: e for e in json.loads(env["INTERLOCK_OPERATOR_GATEWAY_ENV"]["value"])},
    }


def test_it_should_give_the_operator_the_gateway_defaults_and_the_control_plane() -> None:
    defaults = _gateway_defaults({})
    assert defaults["image"] == "ghcr.io/interlock-dev/interlock:0.1.0"
    assert defaults["replicas"] == 2
    assert defaults["resources"] == {"requests": {"cpu": "250m", "memory": "256Mi"}, "limits": {"memory": "1Gi"}}
    env = defaults["env"]
    assert env["INTERLOCK_GATEWAY_CONTROL_PLANE_URL"]["value"] == "http://il-interlock-api.interlock.svc:8081"
    # No shared token to copy into every namespace: the operator mints one credential per gateway.
    assert "INTERLOCK_GATEWAY_CONTROL_PLANE_TOKEN" not in env
    operator = _env(render({}).one("Deployment", "-operator")["spec"]["template"]["spec"]["containers"][0])
    assert operator["INTERLOCK_OPERATOR_GATEWAY_SIGNING_KEY"]["valueFrom"] == {
        "secretKeyRef": {"name": "il-interlock-auth", "key": "gateway-signing-key"}
    }
    assert operator["INTERLOCK_OPERATOR_LEADER_ELECTION"]["value"] == "true"
    assert "INTERLOCK_GATEWAY_REDIS_URL" not in env
    assert not [name for name in env if name.startswith("OTEL_")]  # no traces unless asked for
    service = render().one("Service", "-api")
    assert service["metadata"]["name"] == "il-interlock-api"
    assert service["spec"]["ports"][0]["port"] == 8081


def test_it_should_give_gateways_a_sampled_otlp_exporter_when_tracing_is_on() -> None:
    env = _gateway_defaults({"gateway": {"tracing": {"endpoint": "http://collector.obs.svc:4318"}}})["env"]
    assert env["OTEL_EXPORTER_OTLP_ENDPOINT"]["value"] == "http://collector.obs.svc:4318"
    assert env["OTEL_TRACES_SAMPLER"]["value"] == "parentbased_traceidratio"
    assert env["OTEL_TRACES_SAMPLER_ARG"]["value"] == "0.05"
    # The gateway reads these as the SDK does.
    environ = {name: entry["value"] for name, entry in env.items() if name.startswith("OTEL_")}
    assert Sampling.from_env(environ) == Sampling(0.05, parent_based=True)
    every = {"gateway": {"tracing": {"endpoint": "http://c:4318", "sampleRatio": 1}}}
    assert _gateway_defaults(every)["env"]["OTEL_TRACES_SAMPLER_ARG"]["value"] == "1"


def test_it_should_point_gateways_at_redis_when_enabled() -> None:
    values = ci_values(CHART / "ci" / "redis-values.yaml")
    env = _gateway_defaults(values)["env"]
    assert env["INTERLOCK_GATEWAY_REDIS_URL"]["value"] == "redis://il-interlock-redis.interlock.svc:6379/0"
    assert env["OTEL_EXPORTER_OTLP_ENDPOINT"]["value"].startswith("http://otel-collector")
    rendered = render(values)
    redis = rendered.one("Deployment", "-redis")
    assert _matches(
        rendered.one("Service", "-redis")["spec"]["selector"], redis["spec"]["template"]["metadata"]["labels"]
    )


def test_it_should_let_the_gateway_image_and_control_plane_be_overridden() -> None:
    defaults = _gateway_defaults(ci_values(CHART / "ci" / "namespaced-values.yaml"))
    assert defaults["image"] == "registry.example.com/mirror/interlock:0.1.1"
    assert defaults["env"]["INTERLOCK_GATEWAY_CONTROL_PLANE_URL"]["value"] == "https://interlock-api.example.com"
    assert "INTERLOCK_GATEWAY_CONTROL_PLANE_TOKEN" not in defaults["env"]  # minted per gateway by the operator
    minimal = _gateway_defaults(ci_values(CHART / "ci" / "minimal-values.yaml"))["env"]
    assert set(minimal) == {"INTERLOCK_GATEWAY_API_KEYS"}


# --- wiring: selectors, policies, monitoring, dashboards -------------------------------------------------------------


@pytest.mark.parametrize("values", VALUE_SETS)
def test_it_should_select_pods_that_exist_with_every_service_pdb_and_network_policy(values: dict[str, Any]) -> None:
    rendered = render(values)
    pod_labels = [obj["spec"]["template"]["metadata"]["labels"] for obj in rendered if obj["kind"] in WORKLOADS]
    for obj in rendered:
        if obj["kind"] == "Service":
            selector = obj["spec"]["selector"]
        elif obj["kind"] in ("PodDisruptionBudget", "NetworkPolicy"):
            selector = obj["spec"]["selector" if obj["kind"] == "PodDisruptionBudget" else "podSelector"]["matchLabels"]
        else:
            continue
        assert any(_matches(selector, labels) for labels in pod_labels), (obj["kind"], obj["metadata"]["name"])
    for obj in rendered:
        if obj["kind"] in ("Deployment", "StatefulSet"):
            assert _matches(obj["spec"]["selector"]["matchLabels"], obj["spec"]["template"]["metadata"]["labels"])


def test_it_should_admit_only_the_traffic_each_component_needs() -> None:
    rendered = render(ci_values(CHART / "ci" / "redis-values.yaml"))
    gateway_pod = {LABEL_COMPONENT: COMPONENT_GATEWAY, LABEL_PART_OF: "interlock", "interlock.dev/gateway": "default"}
    pods = {
        o["metadata"]["name"]: o["spec"]["template"]["metadata"]["labels"] for o in rendered if o["kind"] in WORKLOADS
    }

    def admitted(policy_suffix: str) -> list[dict[str, Any]]:
        policy = rendered.one("NetworkPolicy", policy_suffix)
        assert policy["spec"]["policyTypes"] == ["Ingress"]
        return policy["spec"]["ingress"]

    (api_rule,) = admitted("-api")
    gateways_anywhere = {
        "namespaceSelector": {},
        "podSelector": {"matchLabels": {LABEL_COMPONENT: "gateway", LABEL_PART_OF: "interlock"}},
    }
    # The gateways, and the operator (it mirrors each gateway's snapshot for new pods), in the release namespace.
    assert api_rule["from"][0] == gateways_anywhere
    assert _matches(api_rule["from"][0]["podSelector"]["matchLabels"], gateway_pod)
    operator = pods["il-interlock-operator"]
    assert [p for p in api_rule["from"][1:] if _matches(p["podSelector"]["matchLabels"], operator)]
    assert all("namespaceSelector" not in p for p in api_rule["from"][1:])
    (redis_rule,) = admitted("-redis")
    assert redis_rule["from"] == [gateways_anywhere]
    assert redis_rule["ports"][0]["port"] == "redis"
    (pg_rule,) = admitted("-postgresql")
    allowed = [peer["podSelector"]["matchLabels"] for peer in pg_rule["from"]]
    may_connect = sorted(name for name, labels in pods.items() if any(_matches(sel, labels) for sel in allowed))
    assert may_connect == ["il-interlock-api", "il-interlock-migrate"]
    assert admitted("-operator") == []
    extra = render(ci_values(CHART / "ci" / "external-db-values.yaml")).one("NetworkPolicy", "-api")
    assert extra["spec"]["ingress"][0]["from"][-1] == {
        "namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": "ingress-nginx"}}
    }


def test_it_should_protect_the_api_with_a_disruption_budget() -> None:
    pdb = render().one("PodDisruptionBudget", "-api")
    assert pdb["spec"]["maxUnavailable"] == 1
    assert render({"api": {"podDisruptionBudget": {"enabled": False}}}).of_kind("PodDisruptionBudget") == []


def test_it_should_scrape_the_operators_gateways_in_every_namespace_with_a_service_monitor() -> None:
    assert render().of_kind("ServiceMonitor") == []
    monitor = render(ci_values(CHART / "ci" / "servicemonitor-values.yaml")).one("ServiceMonitor", "-gateways")
    assert monitor["metadata"]["labels"]["release"] == "kube-prometheus-stack"
    assert monitor["spec"]["namespaceSelector"] == {"any": True}
    assert monitor["spec"]["selector"]["matchLabels"] == {
        LABEL_COMPONENT: COMPONENT_GATEWAY,
        LABEL_PART_OF: "interlock",
    }
    assert monitor["spec"]["endpoints"] == [
        {"port": "http", "path": "/metrics", "interval": "15s", "scrapeTimeout": "10s"}
    ]


@pytest.mark.parametrize(
    "values", [{}, ci_values(CHART / "ci" / "servicemonitor-values.yaml")], ids=["default", "monitoring"]
)
def test_it_should_ship_each_dashboard_unchanged_in_a_config_map_for_grafanas_sidecar(values: dict[str, Any]) -> None:
    maps = render(values).of_kind("ConfigMap")
    shipped = {}
    for config_map in maps:
        assert config_map["metadata"]["labels"]["grafana_dashboard"] == "1"
        assert config_map["metadata"]["namespace"] == values.get("dashboards", {}).get("namespace", "interlock")
        shipped.update(config_map["data"])
    source = {p.name: p.read_text() for p in (REPO / "dashboards").glob("*.json")}
    assert set(source) == {"cost.json", "latency.json"}
    assert shipped == source
    assert render({"dashboards": {"enabled": False}}).of_kind("ConfigMap") == []


def test_it_should_probe_the_operator_on_its_liveness_endpoint() -> None:
    pod = render({"operator": {"livenessPort": 9000}}).one("Deployment", "-operator")["spec"]["template"]["spec"]
    container = pod["containers"][0]
    assert "--liveness=http://0.0.0.0:9000/healthz" in container["args"]
    assert container["ports"] == [{"name": "health", "containerPort": 9000, "protocol": "TCP"}]
    assert container["livenessProbe"]["httpGet"] == {"path": "/healthz", "port": "health"}
    assert pod["serviceAccountName"] == "il-interlock-operator"


def test_it_should_let_the_operator_autoscale_the_gateways() -> None:
    operator = render({"gateway": {"autoscaling": {"enabled": True, "maxReplicas": 20}}}).one("Deployment", "-operator")
    env = _env(operator["spec"]["template"]["spec"]["containers"][0])
    scaling = json.loads(env["INTERLOCK_OPERATOR_GATEWAY_AUTOSCALING"]["value"])
    assert scaling == {"min_replicas": 2, "max_replicas": 20, "cpu_utilization": 70}
    assert OperatorSettings.model_validate({"gateway_autoscaling": scaling}).gateway_autoscaling is not None
    assert "INTERLOCK_OPERATOR_GATEWAY_AUTOSCALING" not in _env(
        render().one("Deployment", "-operator")["spec"]["template"]["spec"]["containers"][0]
    )
