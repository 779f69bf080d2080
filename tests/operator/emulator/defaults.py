"""What the API server fills in or rewrites on every write, for the kinds the operator creates.

Defaulting mirrors the ``SetDefaults_*`` functions of the Kubernetes API (Deployment, its pod template, Service,
PersistentVolumeClaim, Secret, NetworkPolicy); quantities (container resources, claim sizes, ``emptyDir``
``sizeLimit``) are stored in canonical form, as ``resource.Quantity`` serialises them. Defaulted fields belong to
no manager. Other kinds are stored as written.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable
from typing import Any

from interlock.operator.quantity import QuantityError, canonical_quantity

__all__ = ["apply_defaults"]

Obj = dict[str, Any]

_PROBES = ("livenessProbe", "readinessProbe", "startupProbe")


def _quantities(mapping: Any) -> None:
    if not isinstance(mapping, dict):
        return
    for name, value in list(mapping.items()):
        with contextlib.suppress(QuantityError):  # a real server would reject it; the emulator keeps it
            mapping[name] = canonical_quantity(value)


def _probe(probe: Obj) -> None:
    for key, value in (("timeoutSeconds", 1), ("periodSeconds", 10), ("successThreshold", 1), ("failureThreshold", 3)):
        probe.setdefault(key, value)
    if isinstance(probe.get("httpGet"), dict):
        probe["httpGet"].setdefault("scheme", "HTTP")


def _container(container: Obj) -> None:
    image = str(container.get("image", ""))
    tag = image.rsplit("/", 1)[-1]
    latest = "@" not in image and (":" not in tag or tag.endswith(":latest"))
    container.setdefault("imagePullPolicy", "Always" if latest else "IfNotPresent")
    container.setdefault("terminationMessagePath", "/dev/termination-log")
    container.setdefault("terminationMessagePolicy", "File")
    container.setdefault("resources", {})
    for key in ("limits", "requests"):
        _quantities(container["resources"].get(key))
    for port in container.get("ports") or []:
        port.setdefault("protocol", "TCP")
    for probe in _PROBES:
        if isinstance(container.get(probe), dict):
            _probe(container[probe])
    for env in container.get("env") or []:
        field_ref = (env.get("valueFrom") or {}).get("fieldRef")
        if isinstance(field_ref, dict):
            field_ref.setdefault("apiVersion", "v1")


def _pod_spec(spec: Obj) -> None:
    spec.setdefault("restartPolicy", "Always")
    spec.setdefault("terminationGracePeriodSeconds", 30)
    spec.setdefault("dnsPolicy", "ClusterFirst")
    spec.setdefault("securityContext", {})
    spec.setdefault("schedulerName", "default-scheduler")
    spec.setdefault("enableServiceLinks", True)
    for container in [*(spec.get("initContainers") or []), *(spec.get("containers") or [])]:
        _container(container)
    for volume in spec.get("volumes") or []:
        for source in ("secret", "configMap"):
            if isinstance(volume.get(source), dict):
                volume[source].setdefault("defaultMode", 0o644)
        if isinstance(volume.get("emptyDir"), dict) and "sizeLimit" in volume["emptyDir"]:
            _quantities(volume["emptyDir"])


def _deployment(obj: Obj) -> None:
    spec = obj.setdefault("spec", {})
    spec.setdefault("replicas", 1)
    strategy = spec.setdefault("strategy", {})
    strategy.setdefault("type", "RollingUpdate")
    if strategy["type"] == "RollingUpdate":
        rolling = strategy.setdefault("rollingUpdate", {})
        rolling.setdefault("maxUnavailable", "25%")
        rolling.setdefault("maxSurge", "25%")
    spec.setdefault("revisionHistoryLimit", 10)
    spec.setdefault("progressDeadlineSeconds", 600)
    template = spec.setdefault("template", {})
    _pod_spec(template.setdefault("spec", {}))


def _service(obj: Obj) -> None:
    spec = obj.setdefault("spec", {})
    spec.setdefault("type", "ClusterIP")
    spec.setdefault("sessionAffinity", "None")
    if spec["type"] in ("ClusterIP", "NodePort", "LoadBalancer"):
        spec.setdefault("internalTrafficPolicy", "Cluster")
        spec.setdefault("ipFamilies", ["IPv4"])
        spec.setdefault("ipFamilyPolicy", "SingleStack")
    for port in spec.get("ports") or []:
        port.setdefault("protocol", "TCP")
        port.setdefault("targetPort", port.get("port"))


def _claim(obj: Obj) -> None:
    spec = obj.setdefault("spec", {})
    spec.setdefault("volumeMode", "Filesystem")
    for key in ("requests", "limits"):
        _quantities((spec.get("resources") or {}).get(key))


def _secret(obj: Obj) -> None:
    obj.setdefault("type", "Opaque")


def _network_policy(obj: Obj) -> None:
    spec = obj.setdefault("spec", {})
    if "policyTypes" not in spec:
        spec["policyTypes"] = ["Ingress", *(["Egress"] if spec.get("egress") else [])]
    for rule in [*(spec.get("ingress") or []), *(spec.get("egress") or [])]:
        for port in rule.get("ports") or []:
            port.setdefault("protocol", "TCP")


def _pod(obj: Obj) -> None:
    _pod_spec(obj.setdefault("spec", {}))


_BY_KIND: dict[tuple[str, str], Callable[[Obj], None]] = {
    ("apps", "deployments"): _deployment,
    ("", "services"): _service,
    ("", "persistentvolumeclaims"): _claim,
    ("", "secrets"): _secret,
    ("", "pods"): _pod,
    ("networking.k8s.io", "networkpolicies"): _network_policy,
}


def apply_defaults(key: tuple[str, str], obj: Obj) -> None:
    """Fill in the API server's defaults of ``obj`` (a resource of ``key`` = (group, plural)) in place."""
    default = _BY_KIND.get(key)
    if default is not None:
        default(obj)
