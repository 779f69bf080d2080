"""The controllers a cluster runs for Deployments, played by the emulator: the Deployment and ReplicaSet
controllers and, for the Pods they would create, the scheduler and the kubelet.

After every change of a Deployment's spec the controller writes its status the way the real one does: with
``observedGeneration`` (so a client can tell a status that describes the current spec from a stale one),
``replicas``, ``readyReplicas``, ``availableReplicas`` and the ``Available`` and ``Progressing`` conditions, and
replaces the Deployment's Pods (named ``<deployment>-<hash>-<n>``, labelled from the template, on ``127.0.0.1``).
What the pods do is chosen per Deployment (``set_mode``): ``ready``, ``pending`` (scheduled, not ready yet),
``unschedulable`` (no node fits: the scheduler's condition and message) or ``stuck`` (the progress deadline
passed). ``ports`` replaces a named container port of the Pods (a test's fake server listens there).
"""

from __future__ import annotations

import copy
import hashlib
import json
from collections.abc import Callable
from typing import TYPE_CHECKING, Any, Literal

if TYPE_CHECKING:
    from tests.operator.emulator.store import Store

__all__ = ["DeploymentController", "Mode"]

Obj = dict[str, Any]
Mode = Literal["ready", "pending", "unschedulable", "stuck"]
MANAGER = "kube-controller-manager"
UNSCHEDULABLE = "0/3 nodes are available: 3 Insufficient nvidia.com/gpu. preemption: 0/3 nodes are available."


class DeploymentController:
    def __init__(self, store: Store, *, default: Mode = "pending") -> None:
        self.store = store
        self.default: Mode = default
        self.modes: dict[tuple[str, str], Mode] = {}
        self.ports: dict[tuple[str, str, str], int] = {}
        self.enabled = True
        self.hooks: list[Callable[[Obj], Mode | None]] = []
        """Called with each Deployment before its pods are made: a test's stand-in may pick their mode (and set
        ``ports``)."""

    def set_mode(self, namespace: str, name: str, mode: Mode) -> None:
        """Change what the pods of one Deployment do, and act on it now."""
        self.modes[(namespace, name)] = mode
        deployment = self.store.find(self.store.resolve("apps", "v1", "deployments"), namespace, name)
        if deployment is not None:
            self.sync(deployment, force=True)

    def _status(self, deployment: Obj, mode: Mode, replicas: int) -> Obj:
        ready = replicas if mode == "ready" else 0
        now = deployment["metadata"]["creationTimestamp"]
        if mode == "stuck":
            progressing = ("False", "ProgressDeadlineExceeded", f'ReplicaSet "{deployment["metadata"]["name"]}" has '
                           "timed out progressing.")  # fmt: skip
        elif ready == replicas:
            progressing = ("True", "NewReplicaSetAvailable", "ReplicaSet has successfully progressed.")
        else:
            progressing = ("True", "ReplicaSetUpdated", "ReplicaSet is progressing.")
        available = (
            ("True", "MinimumReplicasAvailable") if ready or replicas == 0 else ("False", "MinimumReplicasUnavailable")
        )
        return {
            "observedGeneration": deployment["metadata"]["generation"],
            "replicas": replicas,
            "updatedReplicas": replicas,
            "readyReplicas": ready,
            "availableReplicas": ready,
            "unavailableReplicas": replicas - ready,
            "conditions": [
                {"type": "Available", "status": available[0], "reason": available[1], "message": "",
                 "lastUpdateTime": now, "lastTransitionTime": now},
                {"type": "Progressing", "status": progressing[0], "reason": progressing[1], "message": progressing[2],
                 "lastUpdateTime": now, "lastTransitionTime": now},
            ],
        }  # fmt: skip

    def _pod(self, deployment: Obj, mode: Mode, index: int, pod_hash: str) -> Obj:
        meta, template = deployment["metadata"], deployment["spec"].get("template") or {}
        spec = copy.deepcopy(template.get("spec") or {})
        for container in spec.get("containers") or []:
            for port in container.get("ports") or []:
                override = self.ports.get((meta["namespace"], meta["name"], str(port.get("name"))))
                if override is not None:
                    port["containerPort"] = override
        scheduled = mode != "unschedulable"
        ready = mode == "ready"
        conditions = [{"type": "PodScheduled", "status": "True" if scheduled else "False",
                       **({} if scheduled else {"reason": "Unschedulable", "message": UNSCHEDULABLE})}]  # fmt: skip
        if scheduled:
            conditions.append({"type": "Ready", "status": "True" if ready else "False"})
        status: Obj = {"phase": "Running" if ready else "Pending", "conditions": conditions}
        if scheduled:
            status["podIP"] = "127.0.0.1"
        labels = {**((template.get("metadata") or {}).get("labels") or {}), "pod-template-hash": pod_hash}
        return {
            "apiVersion": "v1",
            "kind": "Pod",
            "metadata": {
                "name": f"{meta['name']}-{pod_hash}-{index}",
                "namespace": meta["namespace"],
                "labels": labels,
            },
            "spec": spec,
            "status": status,
        }

    def sync(self, deployment: Obj, *, force: bool = False) -> None:
        """Act on a Deployment write (nothing when only its status or metadata changed, unless ``force``)."""
        if not self.enabled:
            return
        meta = deployment["metadata"]
        observed = (deployment.get("status") or {}).get("observedGeneration")
        if observed == meta.get("generation") and not force:
            return
        ns, name = meta["namespace"], meta["name"]
        hooked = None
        for hook in self.hooks:
            hooked = hook(deployment) or hooked
        mode = self.modes.get((ns, name)) or hooked or self.default
        replicas = int(deployment["spec"].get("replicas", 1))
        template = json.dumps(deployment["spec"].get("template"), sort_keys=True)
        pod_hash = hashlib.sha256(template.encode()).hexdigest()[:10]
        pods = self.store.resolve("", "v1", "pods")
        selector = (deployment["spec"].get("selector") or {}).get("matchLabels") or {}
        for pod in self.store.list(pods, ns, lambda o: all(
                ((o.get("metadata") or {}).get("labels") or {}).get(k) == v for k, v in selector.items())):  # fmt: skip
            self.store.delete(pods, ns, pod["metadata"]["name"])
        for index in range(replicas):
            pod = self._pod(deployment, mode, index, pod_hash)
            created = self.store.create(pods, ns, pod, manager=MANAGER)
            self.store.update(pods, ns, created["metadata"]["name"], patch_type="merge",
                              body={"status": pod["status"]}, subresource="status", manager="kubelet")  # fmt: skip
        rt = self.store.resolve("apps", "v1", "deployments")
        self.store.update(rt, ns, name, patch_type="merge", body={"status": self._status(deployment, mode, replicas)},
                          subresource="status", manager=MANAGER)  # fmt: skip
