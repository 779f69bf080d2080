"""The pure builders: every manifest validates (strict) against the schemas of a current Kubernetes release, and
the fields the operator promises are there. Golden YAML pins the full output of the main ones (regenerate with
``INTERLOCK_UPDATE_GOLDEN=1``)."""

from __future__ import annotations

import os
from importlib.metadata import version
from pathlib import Path
from typing import Any

import kubernetes_validate
import pytest
import yaml

from interlock.gatewayconfig import compile_config
from interlock.operator.builders import (
    GPU_RESOURCE,
    control_plane_secret,
    engine_key_secret,
    gateway_config_map,
    gateway_deployment,
    gateway_hpa,
    gateway_pdb,
    gateway_service,
    inference_deployment,
    inference_hpa,
    inference_network_policy,
    inference_pods_service,
    inference_scaled_object,
    inference_service,
    model_cache_claim,
)
from interlock.operator.naming import CONFIG_KEY, dns_label, gateway_object_name
from interlock.operator.settings import OperatorSettings
from interlock.resources import LLMBackend, Route, ServingEngine

K8S_VERSION = "1.34.0"  # a current release; kubernetes-validate bundles the schemas up to 1.37
GOLDEN = Path(__file__).parent / "golden"


def backend(name: str = "llama", **serving: Any) -> LLMBackend:
    return LLMBackend.model_validate(
        {
            "metadata": {"name": name, "namespace": "ml"},
            "spec": {
                "provider": "vllm",
                "models": [{"name": "llama-3.1-8b"}],
                "serving": {
                    "model": "meta-llama/Llama-3.1-8B-Instruct",
                    "replicas": 2,
                    "gpus": 2,
                    "nodeSelector": {"nvidia.com/gpu.product": "NVIDIA-A100-SXM4-80GB"},
                    "tolerations": [{"key": "dedicated", "operator": "Equal", "value": "llm", "effect": "NoSchedule"}],
                    "resources": {"requests": {"cpu": "4", "memory": "32Gi"}, "limits": {"memory": "64Gi"}},
                    "env": [{"name": "VLLM_LOGGING_LEVEL", "value": "INFO"}],
                    "modelCache": {"size": "200Gi", "storageClassName": "fast"},
                    "args": ["--max-model-len", "16384"],
                    **serving,
                },
            },
        }
    )


def gateway_objects() -> tuple[LLMBackend, LLMBackend, Route]:
    ext = LLMBackend.model_validate(
        {
            "metadata": {"name": "openai", "namespace": "ml"},
            "spec": {
                "provider": "openai",
                "url": "https://api.openai.com/v1",
                "credentialsSecretRef": {"name": "provider-keys", "key": "openai"},
                "models": [{"name": "gpt-4o-mini"}],
            },
        }
    )
    route = Route.model_validate(
        {
            "metadata": {"name": "chat", "namespace": "ml"},
            "spec": {
                "model": "chat",
                "targets": [
                    {"backend": "llama", "model": "llama-3.1-8b"},
                    {"backend": "openai", "model": "gpt-4o-mini"},
                ],
            },
        }
    )
    return backend(), ext, route


def valid(manifest: dict[str, Any]) -> dict[str, Any]:
    kubernetes_validate.validate(manifest, K8S_VERSION, strict=True)
    return manifest


def golden(name: str, manifest: dict[str, Any]) -> None:
    path = GOLDEN / f"{name}.yaml"
    text = yaml.safe_dump(manifest, sort_keys=False, width=120)
    if os.environ.get("INTERLOCK_UPDATE_GOLDEN"):
        path.parent.mkdir(exist_ok=True)
        path.write_text(text)
    assert path.exists(), f"{path} missing: run with INTERLOCK_UPDATE_GOLDEN=1"
    assert yaml.safe_load(path.read_text()) == manifest, f"{path} differs (INTERLOCK_UPDATE_GOLDEN=1 to accept)"


def test_vllm_deployment() -> None:
    deployment = valid(inference_deployment(backend()))
    golden("vllm-deployment", deployment)
    pod = deployment["spec"]["template"]["spec"]
    (container,) = pod["containers"]
    assert container["command"] == ["vllm", "serve"]
    assert container["args"] == [
        "meta-llama/Llama-3.1-8B-Instruct", "--served-model-name", "llama-3.1-8b", "--host", "0.0.0.0",
        "--port", "8000", "--tensor-parallel-size", "2", "--max-model-len", "16384",
    ]  # fmt: skip
    assert container["resources"] == {
        "requests": {"cpu": "4", "memory": "32Gi"},
        "limits": {"memory": "64Gi", GPU_RESOURCE: "2"},
    }
    assert container["startupProbe"]["failureThreshold"] * container["startupProbe"]["periodSeconds"] == 1800
    assert container["readinessProbe"]["httpGet"]["path"] == "/health"
    # The engine demands the key the operator generates (and the gateways send); it reads HF_TOKEN when given.
    assert {"name": "VLLM_API_KEY", "valueFrom": {"secretKeyRef": {"name": "llama-engine-key", "key": "api-key"}}} in (
        container["env"]
    )
    assert container["securityContext"]["allowPrivilegeEscalation"] is False
    assert container["securityContext"]["capabilities"] == {"drop": ["ALL"]}
    assert {"name": "HF_HOME", "value": "/models"} in container["env"]
    assert pod["nodeSelector"] == {"nvidia.com/gpu.product": "NVIDIA-A100-SXM4-80GB"}
    assert (
        pod["affinity"]["podAntiAffinity"]["preferredDuringSchedulingIgnoredDuringExecution"][0]["podAffinityTerm"][
            "topologyKey"
        ]
        == "kubernetes.io/hostname"
    )
    assert deployment["spec"]["selector"]["matchLabels"] == {
        "interlock.dev/backend": "llama",
        "app.kubernetes.io/component": "inference",
    }
    # Rollouts never take capacity away: a new pod must be ready before an old one goes.
    assert deployment["spec"]["strategy"]["rollingUpdate"] == {"maxSurge": 1, "maxUnavailable": 0}


@pytest.mark.parametrize("engine", list(ServingEngine))
@pytest.mark.parametrize("gpus", [0, 1, 4])
def test_every_engine_validates(engine: ServingEngine, gpus: int) -> None:
    model = "/models/llama.gguf" if engine is ServingEngine.LLAMACPP else "org/model"
    deployment = valid(inference_deployment(backend(engine=engine.value, gpus=gpus, model=model, modelCache=None)))
    (container,) = deployment["spec"]["template"]["spec"]["containers"]
    limits = container["resources"].get("limits", {})
    assert limits.get(GPU_RESOURCE) == (str(gpus) if gpus else None)
    assert "latest" not in container["image"]
    assert container["ports"][0]["name"] == "http"
    tolerations = deployment["spec"]["template"]["spec"].get("tolerations", [])
    assert any(t.get("key") == GPU_RESOURCE for t in tolerations) == bool(gpus)
    volumes = {v["name"]: v for v in deployment["spec"]["template"]["spec"]["volumes"]}
    assert "emptyDir" in volumes["model-cache"]


def test_service_and_claim() -> None:
    service = valid(inference_service(backend()))
    assert service["spec"]["ports"] == [{"name": "http", "port": 8000, "targetPort": "http", "protocol": "TCP"}]
    claim = model_cache_claim(backend())
    assert claim is not None
    valid(claim)
    assert claim["spec"] == {
        "accessModes": ["ReadWriteMany"],
        "resources": {"requests": {"storage": "200Gi"}},
        "volumeMode": "Filesystem",
        "storageClassName": "fast",
    }
    single = model_cache_claim(backend(replicas=1))
    assert single is not None
    assert single["spec"]["accessModes"] == ["ReadWriteOnce"]
    kept = model_cache_claim(backend(replicas=3), access_modes=["ReadWriteOnce"])
    assert kept is not None
    assert kept["spec"]["accessModes"] == ["ReadWriteOnce"]  # immutable once created
    assert model_cache_claim(backend(modelCache=None)) is None


@pytest.mark.parametrize(("engine", "port"), [("vllm", 8000), ("tgi", 80), ("llamacpp", 8080)])
def test_headless_service_names_each_pod_on_the_engines_own_port(engine: str, port: int) -> None:
    llama = backend(engine=engine)
    service = valid(inference_pods_service(llama))
    assert service["metadata"]["name"] == "llama-pods"
    assert service["spec"]["clusterIP"] == "None"  # headless: DNS answers with the ready pods' addresses
    assert service["spec"]["selector"] == inference_service(llama)["spec"]["selector"]
    assert service["spec"]["ports"] == [{"name": "http", "port": port, "targetPort": "http", "protocol": "TCP"}]
    # The gateway's contract names this Service and this port.
    discovery = compile_config([llama], [], namespace="ml").backends["llama"].discovery
    assert (discovery.mode, discovery.host, discovery.port) == ("dns", "llama-pods.ml.svc", port)


def test_gateway_children() -> None:
    llama, ext, route = gateway_objects()
    config = compile_config([llama, ext], [route], namespace="ml")
    settings = OperatorSettings(gateway_replicas=3, gateway_env=[{"name": "OTEL_SERVICE_NAME", "value": "gw"}])
    cm = valid(gateway_config_map("ml", "default", config))
    deployment = valid(gateway_deployment("ml", "default", config, settings))
    valid(gateway_service("ml", "default", settings))
    pdb = valid(gateway_pdb("ml", "default"))
    golden("gateway-deployment", deployment)

    assert cm["data"] == {CONFIG_KEY: config.to_json().decode()}
    assert "provider-keys" in cm["data"][CONFIG_KEY]  # the reference...
    assert deployment["spec"]["replicas"] == 3
    pod = deployment["spec"]["template"]["spec"]
    (container,) = pod["containers"]
    assert container["image"] == settings.gateway_image
    assert {"name": "OTEL_SERVICE_NAME", "value": "gw"} in container["env"]
    volumes = {v["name"]: v for v in pod["volumes"]}
    assert volumes["config"] == {
        "name": "config",
        "configMap": {"name": "interlock-gateway-default", "defaultMode": 0o444},
    }
    assert volumes["secret-provider-keys"]["secret"]["items"] == [{"key": "openai", "path": "openai"}]
    mounts = {m["name"]: m["mountPath"] for m in container["volumeMounts"]}
    assert mounts["secret-provider-keys"] == "/var/run/interlock/secrets/provider-keys"  # <dir>/<secret>/<key>
    # No config hash on the pod template: a config change is hot-reloaded, never a rollout.
    assert "interlock.dev/config-version" not in (deployment["spec"]["template"]["metadata"].get("annotations") or {})
    assert pdb["spec"]["maxUnavailable"] == 1


def test_names_fit_kubernetes_limits() -> None:
    long = "g" * 63
    assert len(gateway_object_name(long)) <= 63
    assert gateway_object_name(long) != gateway_object_name(long[:-1] + "h")
    assert dns_label("a", "", "b") == "a-b"
    valid(gateway_pdb("ml", long))


def test_gateway_pods_drain_report_on_the_ops_port_and_keep_it_off_the_service() -> None:
    llama, ext, route = gateway_objects()
    config = compile_config([llama, ext], [route], namespace="ml")
    settings = OperatorSettings(
        gateway_drain_seconds=120,
        image_pull_secrets=["regcred"],
        gateway_signing_key="k" * 32,
        gateway_env=[{"name": "INTERLOCK_GATEWAY_OPS_PORT", "value": "9999"}, {"name": "EXTRA", "value": "1"}],
    )
    deployment = valid(gateway_deployment("ml", "default", config, settings))
    pod = deployment["spec"]["template"]["spec"]
    (container,) = pod["containers"]
    ports = {p["name"]: p["containerPort"] for p in container["ports"]}
    assert ports == {"http": 8080, "ops": 8090}
    assert container["readinessProbe"]["httpGet"] == {"path": "/readyz", "port": "ops", "scheme": "HTTP"}
    assert container["livenessProbe"]["httpGet"] == {"path": "/healthz", "port": "http", "scheme": "HTTP"}
    assert deployment["spec"]["template"]["metadata"]["annotations"]["prometheus.io/port"] == "8090"
    # Drain: the endpoint goes first (preStop), then in-flight streams get up to the cap.
    assert container["lifecycle"] == {"preStop": {"sleep": {"seconds": 5}}}
    assert pod["terminationGracePeriodSeconds"] == 125
    assert pod["imagePullSecrets"] == [{"name": "regcred"}]
    env = [e["name"] for e in container["env"]]
    assert len(env) == len(set(env))  # the chart's extra env replaces ours by name, never repeats it
    values = {e["name"]: e for e in container["env"]}
    assert values["INTERLOCK_GATEWAY_OPS_PORT"]["value"] == "9999"
    assert env.index("POD_NAME") < env.index("INTERLOCK_GATEWAY_GATEWAY_ID")  # $(POD_NAME) must come first
    assert values["INTERLOCK_GATEWAY_GATEWAY_ID"]["value"] == "ml/default/$(POD_NAME)"
    assert values["INTERLOCK_GATEWAY_CONTROL_PLANE_TOKEN"]["valueFrom"]["secretKeyRef"] == {
        "name": "default-controlplane",
        "key": "token",
    }
    # The engine's generated key is mounted like any credential.
    assert "secret-llama-engine-key" in {v["name"] for v in pod["volumes"]}
    service = valid(gateway_service("ml", "default", settings))
    assert [p["name"] for p in service["spec"]["ports"]] == ["http"]  # the ops port is not for clients
    secret = valid(control_plane_secret("ml", "default", "ilgw1.x.y"))
    assert secret["metadata"]["name"] == "default-controlplane"


def test_default_images_follow_the_package_version() -> None:
    assert OperatorSettings().gateway_image == f"ghcr.io/interlock-dev/interlock:{version('interlock')}"


def test_engines_are_locked_down() -> None:
    settings = OperatorSettings(image_pull_secrets=["regcred"], engine_ingress_from=[{"namespaceSelector": {}}])
    locked = backend(
        runtimeClassName="nvidia",
        imagePullSecrets=["vendor", "regcred"],
        huggingFaceTokenSecretRef={"name": "hf", "key": "token"},
        shmSize="16384Mi",
        resources={"requests": {"cpu": 4, "memory": "1024Mi"}, "limits": {"memory": 0.5}},
    )
    deployment = valid(inference_deployment(locked, settings))
    pod = deployment["spec"]["template"]["spec"]
    (container,) = pod["containers"]
    assert pod["runtimeClassName"] == "nvidia"
    assert pod["imagePullSecrets"] == [{"name": "regcred"}, {"name": "vendor"}]
    assert {"name": "HF_TOKEN", "valueFrom": {"secretKeyRef": {"name": "hf", "key": "token"}}} in container["env"]
    assert {"name": "dshm", "emptyDir": {"medium": "Memory", "sizeLimit": "16Gi"}} in pod["volumes"]
    assert container["resources"]["requests"] == {"cpu": "4", "memory": "1Gi"}  # canonical, as stored
    assert container["resources"]["limits"]["memory"] == "500m"
    assert pod["automountServiceAccountToken"] is False
    policy = valid(inference_network_policy(locked, settings))
    assert policy["spec"]["policyTypes"] == ["Ingress"]
    assert [rule["from"] for rule in policy["spec"]["ingress"]] == [
        [{"podSelector": {"matchLabels": {"app.kubernetes.io/component": "gateway",
                                          "app.kubernetes.io/managed-by": "interlock-operator"}}}],
        [{"namespaceSelector": {}}],
    ]  # fmt: skip
    key = valid(engine_key_secret(locked, "k" * 43))
    assert key["metadata"]["name"] == "llama-engine-key"


@pytest.mark.parametrize(("replicas", "modes", "strategy"), [
    (1, None, "Recreate"), (3, None, "RollingUpdate"), (3, ["ReadWriteOnce"], "Recreate"),
])  # fmt: skip
def test_a_read_write_once_cache_is_never_surged(replicas: int, modes: list[str] | None, strategy: str) -> None:
    deployment = inference_deployment(backend(replicas=replicas), cache_modes=modes)
    assert deployment["spec"]["strategy"]["type"] == strategy
    assert inference_deployment(backend(replicas=1, modelCache=None))["spec"]["strategy"]["type"] == "RollingUpdate"


def test_autoscaled_backends_leave_replicas_to_the_autoscaler() -> None:
    scaled = backend(autoscaling={"minReplicas": 0, "maxReplicas": 4, "metric": "gpu"})
    assert "replicas" not in valid(inference_deployment(scaled))["spec"]
    hpa = valid(inference_hpa(scaled))
    assert (hpa["spec"]["minReplicas"], hpa["spec"]["maxReplicas"]) == (1, 4)  # an HPA cannot scale to 0
    assert hpa["spec"]["metrics"][0]["pods"] == {
        "metric": {"name": "DCGM_FI_DEV_GPU_UTIL"},
        "target": {"type": "AverageValue", "averageValue": "80"},
    }
    keda = inference_scaled_object(scaled, "http://prometheus.monitoring.svc:9090")
    assert keda["spec"]["minReplicaCount"] == 0
    trigger = keda["spec"]["triggers"][0]["metadata"]
    assert trigger["query"] == 'sum(DCGM_FI_DEV_GPU_UTIL{namespace="ml",pod=~"llama-[a-z0-9]+-[a-z0-9]+"}) / 2'
    assert trigger["threshold"] == "80"


def test_gateways_autoscale_when_the_chart_says_so() -> None:
    llama, ext, route = gateway_objects()
    config = compile_config([llama, ext], [route], namespace="ml")
    assert gateway_hpa("ml", "default", OperatorSettings()) is None
    settings = OperatorSettings(gateway_autoscaling={"min_replicas": 3, "max_replicas": 12, "cpu_utilization": 60})
    assert "replicas" not in valid(gateway_deployment("ml", "default", config, settings))["spec"]
    hpa = gateway_hpa("ml", "default", settings)
    assert hpa is not None
    valid(hpa)
    assert hpa["spec"]["scaleTargetRef"]["name"] == "interlock-gateway-default"
    assert (hpa["spec"]["minReplicas"], hpa["spec"]["maxReplicas"]) == (3, 12)
    assert hpa["spec"]["metrics"][0]["resource"]["target"] == {"type": "Utilization", "averageUtilization": 60}
