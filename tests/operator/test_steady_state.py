"""Nothing changed, nothing written: three resyncs of 50 backends (10 self-hosted, with integer and non-canonical
quantities) and their routes send no PATCH, no create, no update and no delete, counted from the emulator's request
log (kopf's requests and the operator's)."""

from __future__ import annotations

import time
from collections import Counter
from typing import Any

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

BACKENDS = 50
WRITES = ("create", "update", "patch", "delete", "deletecollection")


def backend(i: int) -> dict[str, Any]:
    if i % 5 == 0:
        serving = {"model": f"org/m{i}", "gpus": 1, "replicas": 1, "modelCache": {"size": "1024Gi"},
                   "resources": {"requests": {"cpu": 4, "memory": "32768Mi"}, "limits": {"memory": 65536}}}  # fmt: skip
        return backend_manifest(f"b{i}", provider="vllm", serving=serving)
    return backend_manifest(
        f"b{i}", provider="openai", url=f"https://provider-{i}.example/v1",
        credentialsSecretRef={"name": "keys", "key": f"k{i}"},
    )  # fmt: skip


async def test_three_resyncs_of_fifty_backends_write_nothing(api: Api) -> None:
    api.emu.store.controller.default = "ready"
    keys = {f"k{i}": f"sk-{i}" for i in range(BACKENDS)}
    await api.create("/api/v1/namespaces/default/secrets", {"metadata": {"name": "keys"}, "stringData": keys})
    async with running_operator(OperatorSettings(resync_interval_s=1.0)):
        for i in range(BACKENDS):
            await api.create(backends_path(), backend(i))
            await api.create(routes_path(), route_manifest(f"r{i}", (f"b{i}", "m1")))

        def converged() -> bool:
            objs = [api.backend(f"b{i}") for i in range(BACKENDS)] + [api.route(f"r{i}") for i in range(BACKENDS)]
            return all((condition(o) or {}).get("status") == "True" for o in objs)

        await eventually(converged, within=60, interval=0.2, what="50 backends and 50 routes Ready")
        # Ready is written by the handler; kopf's own bookkeeping (its annotation patch, the handler's event) follows
        # it by a moment. The resyncs are counted from when writing has stopped, for half a resync interval.
        settled = {"writes": -1, "since": 0.0}

        def quiet() -> bool:
            writes = sum(r.verb in WRITES for r in api.emu.requests)
            now = time.monotonic()
            if writes != settled["writes"]:
                settled.update(writes=writes, since=now)
            return now - settled["since"] >= 0.5

        await eventually(quiet, within=30, interval=0.05, what="no write for half a resync interval")
        mark = len(api.emu.requests)

        def resyncs() -> Counter[str]:
            return Counter(r.name for r in api.emu.requests[mark:] if r.user_agent.startswith("interlock-operator")
                           and r.resource == "llmbackends" and r.verb == "get")  # fmt: skip

        await eventually(lambda: len(resyncs()) == BACKENDS and min(resyncs().values()) >= 3, within=60,
                         interval=0.2, what="three resyncs of every backend")  # fmt: skip
        calls = [r for r in api.emu.requests[mark:] if r.user_agent.startswith(("kopf", "interlock-operator"))]
    writes = [(r.verb, r.resource, r.subresource, r.name) for r in calls if r.verb in WRITES]
    assert writes == []
    assert sum(r.resource == "configmaps" for r in calls) > 0  # the routes' gateway was resynced too
