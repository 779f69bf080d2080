"""Per-template expectations of charts/interlock, in the helm-unittest style: "it should ..." over rendered objects."""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import pytest
import yaml

from interlock.gatewayconfig import GatewayConfig
from interlock.operator.builders import gateway_deployment
from interlock.operator.naming import LABEL_COMPONENT, LABEL_MANAGED_BY, LABEL_PART_OF, MANAGED_BY
from interlock.operator.settings import OperatorSettings
from interlock.telemetry.tracing import Sampling
from tests.charts.rendering import CHART, CI_VALUES, REPO, Rendered, ci_values, render
from tests.gateway.harness import backend, config, route

VALUE_SETS = [pytest.param({}, id="default"), *(pytest.param(ci_values(p), id=p.stem) for p in CI_VALUES)]
WORKLOADS = ("Deployment", "StatefulSet", "Job")
ROLE_YAML = REPO / "operator" / "rbac" / "role.yaml"

# --- helpers ----------------------------------------------------------------------------------------------------


def _config() -> GatewayConfig:
    return config(backend("a", "http://upstream:8000/v1"), route("chat", [("a", "m1")]))


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


def _operators(rendered: Rendered, kind: str) -> list[dict[str, Any]]:
    return [o for o in rendered.of_kind(kind) if o["metadata"]["name"].endswith("-operator")]


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
    # The operator's only Role: the leader-election Lease, in the release namespace.
    (lease,) = [r for r in rendered.of_kind("Role") if r["metadata"]["name"].endswith("-operator-leader")]
    assert (lease["metadata"]["namespace"], lease["rules"]) == (
        "interlock",
        [{"apiGroups": ["coordination.k8s.io"], "resources": ["leases"], "verbs": ["get", "create", "update"]}],
    )
    assert _operators(rendered, "Role") == []
    bindings = [b for b in rendered.of_kind("RoleBinding") if b["metadata"]["name"].startswith("il-interlock-operator")]
    assert [b["roleRef"]["name"] for b in bindings] == ["il-interlock-operator-leader"]
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
    roles = _operators(rendered, "Role")
    assert sorted(r["metadata"]["namespace"] for r in roles) == ["team-a", "team-b"]
    assert sorted(b["metadata"]["namespace"] for b in _operators(rendered, "RoleBinding")) == ["team-a", "team-b"]
    for binding in _operators(rendered, "RoleBinding"):
        assert binding["subjects"][0]["namespace"] == "interlock"
    cluster = _rules(rendered.one("ClusterRole", "-operator")["rules"])
    assert {resource for _, resource in cluster} <= {"customresourcedefinitions", "namespaces"}
    assert all(_rules(role["rules"]) for role in roles)
    args = rendered.one("Deployment", "-operator")["spec"]["template"]["spec"]["containers"][0]["args"]
    assert "--namespace=team-a" in args
    assert "--namespace=team-b" in args
    assert "--all-namespaces" not in args


def test_it_should_give_no_kubernetes_api_access_to_the_api_and_the_migration_job() -> None:
    """Only the operator and the secrets hook Job (Secrets of this namespace: tests/charts/test_secrets.py) talk to
    the Kubernetes API."""
    rendered = render(ci_values(CHART / "ci" / "external-db-values.yaml") | {"auth": {}})
    bound = {
        s["name"]
        for b in rendered.of_kind("ClusterRoleBinding") + rendered.of_kind("RoleBinding")
        for s in b["subjects"]
    }
    assert bound == {"il-interlock-operator", "il-interlock-secrets"}
    for obj, pod in _pod_specs(rendered):
        if not obj["metadata"]["name"].endswith(("-operator", "-secrets")):
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
def test_it_should_render_no_secret_at_all(values: dict[str, Any]) -> None:
    """GitOps: no value to hide in the manifests, nothing that changes from render to render (test_secrets.py)."""
    assert render(values).of_kind("Secret") == []


def test_it_should_read_every_credential_from_a_secret() -> None:
    rendered = render(ci_values(CHART / "ci" / "bundled-db-values.yaml"))
    api = rendered.one("Deployment", "-api")["spec"]["template"]["spec"]["containers"][0]
    env = _env(api)
    refs = {name: env[name]["valueFrom"]["secretKeyRef"] for name in env if "valueFrom" in env[name]}
    assert refs == {
        "DATABASE_URL": {"name": "il-interlock-postgresql", "key": "database-url"},
        "INTERLOCK_API_ADMIN_TOKEN": {"name": "il-interlock-auth", "key": "admin-token"},
        "INTERLOCK_API_GATEWAY_SIGNING_KEY": {"name": "il-interlock-auth", "key": "gateway-signing-key"},
    }
    operator = _env(rendered.one("Deployment", "-operator")["spec"]["template"]["spec"]["containers"][0])
    assert operator["INTERLOCK_OPERATOR_GATEWAY_SIGNING_KEY"]["valueFrom"]["secretKeyRef"] == {
        "name": "il-interlock-auth",
        "key": "gateway-signing-key",
    }


def test_it_should_use_an_existing_auth_secret() -> None:
    rendered = render({"auth": {"existingSecret": "my-tokens"}})
    env = _env(rendered.one("Deployment", "-api")["spec"]["template"]["spec"]["containers"][0])
    for name in ("INTERLOCK_API_ADMIN_TOKEN", "INTERLOCK_API_GATEWAY_SIGNING_KEY"):
        assert env[name]["valueFrom"]["secretKeyRef"]["name"] == "my-tokens"


# --- database and migrations ---------------------------------------------------------------------------------------


def test_it_should_bundle_postgres_with_a_volume_and_point_the_api_at_it() -> None:
    rendered = render(ci_values(CHART / "ci" / "bundled-db-values.yaml"))
    sts = rendered.one("StatefulSet", "-postgresql")
    claim = sts["spec"]["volumeClaimTemplates"][0]
    assert claim["spec"]["resources"]["requests"]["storage"] == "2Gi"
    assert claim["spec"]["storageClassName"] == "standard"
    postgres = _env(sts["spec"]["template"]["spec"]["containers"][0])
    password = postgres["POSTGRES_PASSWORD"]["valueFrom"]["secretKeyRef"]
    assert password == {"name": "il-interlock-postgresql", "key": "password"}
    service = rendered.one("Service", "-postgresql")
    assert _matches(service["spec"]["selector"], sts["spec"]["template"]["metadata"]["labels"])


def test_it_should_read_the_external_dsn_from_the_given_secret_and_bundle_nothing() -> None:
    rendered = render(ci_values(CHART / "ci" / "external-db-values.yaml"))
    assert rendered.of_kind("StatefulSet") == []
    assert rendered.of_kind("Job") == [rendered.one("Job", "-migrate")]  # no secrets Job: every Secret is given
    for suffix, kind in (("-api", "Deployment"), ("-migrate", "Job")):
        env = _env(rendered.one(kind, suffix)["spec"]["template"]["spec"]["containers"][0])
        assert env["DATABASE_URL"]["valueFrom"]["secretKeyRef"] == {"name": "interlock-database", "key": "dsn"}


EXTERNAL_DB_GENERATED_TOKENS = {"database": {"mode": "external", "external": {"existingSecret": "db"}}}


def _creates(rendered: Rendered) -> dict[str, tuple[set[str], int]]:
    """The Secrets the secrets hook Job creates, with the Job's hook phases and weight."""
    jobs = [j for j in rendered.of_kind("Job") if j["metadata"]["name"].endswith("-secrets")]
    out = {}
    for job in jobs:
        env = _env(job["spec"]["template"]["spec"]["containers"][0])
        for spec in json.loads(env["INTERLOCK_GENERATED_SECRETS"]["value"]):
            out[spec["name"]] = _hook(job) or pytest.fail("the secrets Job must be a hook")
    return out


@pytest.mark.parametrize("values", [*VALUE_SETS, pytest.param(EXTERNAL_DB_GENERATED_TOKENS, id="external-db-tokens")])
def test_it_should_migrate_before_the_api_serves_and_only_after_what_it_uses_exists(values: dict[str, Any]) -> None:
    """External database: a pre-install/pre-upgrade hook Job, and everything it uses exists before it runs (a hook
    of the same phases with a lower weight, or a Secret the secrets Job, such a hook, creates, or one the user
    gives). Bundled database: an init container of every API pod, so no API pod serves before its migration."""
    rendered = render(values)
    migrate_jobs = [j for j in rendered.of_kind("Job") if j["metadata"]["name"].endswith("-migrate")]
    api = rendered.one("Deployment", "-api")["spec"]["template"]["spec"]
    external = values.get("database", {}).get("mode") == "external"
    if values.get("migrations", {}).get("enabled") is False:
        assert (migrate_jobs, api.get("initContainers")) == ([], None)
        return
    if not external:
        assert migrate_jobs == []
        (init,) = api["initContainers"]
        assert init["command"] == ["interlock", "api", "--migrate-only"]
        assert _env(init)["DATABASE_URL"] == _env(api["containers"][0])["DATABASE_URL"]
        return
    assert "initContainers" not in api
    (job,) = migrate_jobs
    phases, weight = _hook(job) or pytest.fail("the migration Job must be a Helm hook")
    assert phases == {"pre-install", "pre-upgrade"}
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
    created = _creates(rendered)
    for kind, name in used:
        dependency = by_name.get((kind, name))
        hook = _hook(dependency) if dependency is not None else created.get(name)
        if dependency is None and name not in created:
            continue  # given by the user (an existing Secret): it exists before the release
        for phase in phases:
            assert _exists_when(hook, phase, weight), f"{kind} {name} does not exist yet at {phase}"
    api_env = _env(api["containers"][0])
    assert _env(container)["DATABASE_URL"] == api_env["DATABASE_URL"]


def test_it_should_keep_api_pods_unready_until_the_database_is_migrated() -> None:
    container = render().one("Deployment", "-api")["spec"]["template"]["spec"]["containers"][0]
    assert container["readinessProbe"]["httpGet"] == {"path": "/readyz", "port": "http"}  # interlock/api/readiness.py
    assert container["livenessProbe"]["httpGet"] == {"path": "/healthz", "port": "http"}


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
    operator = _env(render().one("Deployment", "-operator")["spec"]["template"]["spec"]["containers"][0])
    assert operator["INTERLOCK_OPERATOR_GATEWAY_DRAIN_SECONDS"]["value"] == "120"
    assert json.loads(operator["INTERLOCK_OPERATOR_IMAGE_PULL_SECRETS"]["value"]) == []
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


def test_it_should_point_gateways_at_the_bundled_redis_with_its_password() -> None:
    values = ci_values(CHART / "ci" / "redis-values.yaml")
    gateway = _gateway_defaults(values)
    env = gateway["env"]
    password = env["INTERLOCK_REDIS_PASSWORD"]["valueFrom"]["secretKeyRef"]
    assert password == {"name": "interlock-redis", "key": "password"}
    assert env["INTERLOCK_GATEWAY_REDIS_URL"]["value"] == (
        "redis://:$(INTERLOCK_REDIS_PASSWORD)@il-interlock-redis.interlock.svc:6379/0"
    )
    names = list(env)  # the kubelet expands $(VAR) only from variables defined before
    assert names.index("INTERLOCK_REDIS_PASSWORD") < names.index("INTERLOCK_GATEWAY_REDIS_URL")
    assert env["OTEL_EXPORTER_OTLP_ENDPOINT"]["value"].startswith("http://otel-collector")
    rendered = render(values)
    redis = rendered.one("Deployment", "-redis")
    assert _matches(
        rendered.one("Service", "-redis")["spec"]["selector"], redis["spec"]["template"]["metadata"]["labels"]
    )
    container = redis["spec"]["template"]["spec"]["containers"][0]
    assert container["args"][-2:] == ["--requirepass", "$(REDIS_PASSWORD)"]
    redis_env = _env(container)
    for name in ("REDIS_PASSWORD", "REDISCLI_AUTH"):
        assert redis_env[name]["valueFrom"]["secretKeyRef"] == {"name": "il-interlock-redis", "key": "password"}


def test_it_should_point_gateways_at_an_external_redis() -> None:
    rendered = render(ci_values(CHART / "ci" / "external-redis-values.yaml"))
    assert rendered.names("Deployment") == {"il-interlock-api", "il-interlock-operator"}  # no Redis of ours
    env = _gateway_defaults(ci_values(CHART / "ci" / "external-redis-values.yaml"))["env"]
    assert env["INTERLOCK_REDIS_PASSWORD"]["valueFrom"]["secretKeyRef"] == {"name": "rate-limit-redis", "key": "secret"}
    assert env["INTERLOCK_GATEWAY_REDIS_URL"]["value"] == (
        "rediss://interlock:$(INTERLOCK_REDIS_PASSWORD)@redis.cache.svc:6380/2"
    )
    no_auth = {"redis": {"mode": "external", "external": {"host": "redis.cache.svc"}, "gatewaySecret": {"name": ""}}}
    env = _gateway_defaults(no_auth)["env"]
    assert env["INTERLOCK_GATEWAY_REDIS_URL"]["value"] == "redis://redis.cache.svc:6379/0"
    assert "INTERLOCK_REDIS_PASSWORD" not in env


def test_it_should_let_the_gateway_image_and_control_plane_be_overridden() -> None:
    defaults = _gateway_defaults(ci_values(CHART / "ci" / "namespaced-values.yaml"))
    assert defaults["image"] == "registry.example.com/mirror/interlock:0.1.1"
    assert defaults["env"]["INTERLOCK_GATEWAY_CONTROL_PLANE_URL"]["value"] == "https://interlock-api.example.com"
    assert "INTERLOCK_GATEWAY_CONTROL_PLANE_TOKEN" not in defaults["env"]  # minted per gateway by the operator
    minimal = _gateway_defaults(ci_values(CHART / "ci" / "minimal-values.yaml"))["env"]
    assert set(minimal) == {"INTERLOCK_GATEWAY_API_KEYS"}
    operator = render(ci_values(CHART / "ci" / "namespaced-values.yaml")).one("Deployment", "-operator")
    env = _env(operator["spec"]["template"]["spec"]["containers"][0])
    assert json.loads(env["INTERLOCK_OPERATOR_IMAGE_PULL_SECRETS"]["value"]) == ["mirror-credentials"]


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
    built = gateway_deployment("team-a", "default", _config(), OperatorSettings())
    gateway_pod = built["spec"]["template"]["metadata"]["labels"]
    pods = {
        o["metadata"]["name"]: o["spec"]["template"]["metadata"]["labels"] for o in rendered if o["kind"] in WORKLOADS
    }

    def admitted(policy_suffix: str) -> list[dict[str, Any]]:
        policy = rendered.one("NetworkPolicy", policy_suffix)
        assert policy["spec"]["policyTypes"] == ["Ingress"]
        return policy["spec"]["ingress"]

    (api_rule,) = admitted("-api")
    gateway_labels = {LABEL_COMPONENT: "gateway", LABEL_PART_OF: "interlock", LABEL_MANAGED_BY: MANAGED_BY}
    # gateways by label AND namespace, never by label alone; then the operator (it mirrors each gateway's snapshot
    # for new pods), in the release namespace
    assert api_rule["from"][0] == {
        "namespaceSelector": {"matchLabels": {"interlock.dev/gateways": "true"}},
        "podSelector": {"matchLabels": gateway_labels},
    }
    assert _matches(api_rule["from"][0]["podSelector"]["matchLabels"], gateway_pod)
    operator = pods["il-interlock-operator"]
    assert [p for p in api_rule["from"][1:] if _matches(p["podSelector"]["matchLabels"], operator)]
    assert all("namespaceSelector" not in p for p in api_rule["from"][1:])
    (redis_rule,) = admitted("-redis")
    assert redis_rule["from"] == api_rule["from"][:1]  # the gateways, as above
    assert redis_rule["ports"][0]["port"] == "redis"
    (pg_rule,) = admitted("-postgresql")
    allowed = [peer["podSelector"]["matchLabels"] for peer in pg_rule["from"]]
    may_connect = sorted(name for name, labels in pods.items() if any(_matches(sel, labels) for sel in allowed))
    assert may_connect == ["il-interlock-api"]  # and its migration init container
    assert admitted("-operator") == []
    extra = render(ci_values(CHART / "ci" / "external-db-values.yaml")).one("NetworkPolicy", "-api")
    assert extra["spec"]["ingress"][0]["from"][-1] == {
        "namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": "ingress-nginx"}}
    }
    listed = {"kubernetes.io/metadata.name": ["team-a", "team-b"]}
    given = {"networkPolicy": {"gatewayNamespaces": ["team-a", "team-b"]}}
    for values in (ci_values(CHART / "ci" / "namespaced-values.yaml"), given):
        (rule,) = render(values).one("NetworkPolicy", "-api")["spec"]["ingress"]
        selector = rule["from"][0]["namespaceSelector"]["matchExpressions"]
        assert {e["key"]: e["values"] for e in selector if e["operator"] == "In"} == listed


def test_it_should_protect_the_api_with_a_disruption_budget() -> None:
    pdb = render().one("PodDisruptionBudget", "-api")
    assert pdb["spec"]["maxUnavailable"] == 1
    assert render({"api": {"podDisruptionBudget": {"enabled": False}}}).of_kind("PodDisruptionBudget") == []


def test_it_should_serve_the_console_through_an_ingress_only_when_asked() -> None:
    assert render().of_kind("Ingress") == []
    rendered = render(ci_values(CHART / "ci" / "console-ingress-values.yaml"))
    ingress = rendered.one("Ingress", "-api")
    service = rendered.one("Service", "-api")
    assert ingress["spec"]["ingressClassName"] == "nginx"
    assert ingress["spec"]["tls"] == [{"secretName": "interlock-console-tls", "hosts": ["interlock.example.com"]}]
    assert ingress["metadata"]["annotations"] == {"cert-manager.io/cluster-issuer": "letsencrypt"}
    (rule,) = ingress["spec"]["rules"]
    assert rule["host"] == "interlock.example.com"
    assert [(p["path"], p["pathType"]) for p in rule["http"]["paths"]] == [("/console", "Prefix")]
    backend = rule["http"]["paths"][0]["backend"]["service"]
    assert backend == {"name": service["metadata"]["name"], "port": {"name": "http"}}
    assert any(port["name"] == "http" for port in service["spec"]["ports"])
    policy = rendered.one("NetworkPolicy", "-api")
    peers = policy["spec"]["ingress"][0]["from"]
    assert {"namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": "ingress-nginx"}}} in peers
    bare = render({"api": {"ingress": {"enabled": True, "paths": ["/console", "/v1"]}}}).one("Ingress", "-api")
    assert "tls" not in bare["spec"]
    assert "ingressClassName" not in bare["spec"]
    assert "host" not in bare["spec"]["rules"][0]
    assert [p["path"] for p in bare["spec"]["rules"][0]["http"]["paths"]] == ["/console", "/v1"]


def test_it_should_refuse_an_ingress_path_that_is_not_absolute() -> None:
    with pytest.raises(Exception, match="paths"):
        render({"api": {"ingress": {"enabled": True, "paths": ["console"]}}})


@pytest.mark.parametrize(
    "values", [{}, ci_values(CHART / "ci" / "monitoring-values.yaml")], ids=["default", "monitoring"]
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
