"""Two ``interlock operator`` processes, one active: the one holding the Lease reconciles; killed (SIGKILL, no
goodbye), the other takes the Lease over once it expires and reconciles a change within 30 s."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import sys
import time
from pathlib import Path

from interlock.operator.naming import CONFIG_KEY
from tests.operator.conftest import ROOT, Api, backend_manifest, backends_path, condition, route_manifest, routes_path
from tests.support import eventually

LEASE = "/apis/coordination.k8s.io/v1/namespaces/default/leases/interlock-operator"


async def start_operator(name: str, kubeconfig: Path) -> asyncio.subprocess.Process:
    env = {**os.environ, "KUBECONFIG": str(kubeconfig), "POD_NAME": name,
           "INTERLOCK_OPERATOR_LEADER_ELECTION": "true", "INTERLOCK_OPERATOR_LEASE_NAMESPACE": "default",
           "INTERLOCK_OPERATOR_LEASE_DURATION_S": "5", "INTERLOCK_OPERATOR_LEASE_RENEW_DEADLINE_S": "3",
           "INTERLOCK_OPERATOR_LEASE_RETRY_PERIOD_S": "1"}  # fmt: skip
    env.pop("KUBERNETES_SERVICE_HOST", None)
    return await asyncio.create_subprocess_exec(
        sys.executable, "-m", "interlock", "--log-level", "WARNING", "operator", "--all-namespaces",
        cwd=ROOT, env=env, stdout=asyncio.subprocess.DEVNULL, stderr=asyncio.subprocess.PIPE,
    )  # fmt: skip


async def test_the_standby_takes_over_when_the_active_operator_dies(api: Api, tmp_path: Path) -> None:
    kubeconfig = api.emu.write_kubeconfig(tmp_path / "kubeconfig")
    first = await start_operator("op-a", kubeconfig)
    second: asyncio.subprocess.Process | None = None
    try:

        async def holder() -> str:
            response = await api.http.get(LEASE)
            return str((response.json().get("spec") or {}).get("holderIdentity") or "") if response.is_success else ""

        await eventually(lambda: holder(), within=20, interval=0.1, what="a leader")
        assert (await holder()).startswith("op-a-")
        second = await start_operator("op-b", kubeconfig)
        await api.create(backends_path(), backend_manifest("mock"))
        await api.create(routes_path(), route_manifest("chat", ("mock", "m1")))
        await eventually(lambda: (condition(api.route("chat")) or {}).get("status") == "True", within=20)
        assert (await holder()).startswith("op-a-")  # the standby did not take over while the leader lives

        first.send_signal(signal.SIGKILL)
        await first.wait()
        killed = time.monotonic()
        await api.patch(
            f"{routes_path()}/chat", {"spec": {"targets": [{"backend": "mock", "model": "m1", "weight": 7}]}}
        )

        def reconciled() -> bool:
            cm = api.obj("v1", "configmaps", "interlock-gateway-default") or {}
            config = json.loads((cm.get("data") or {}).get(CONFIG_KEY) or "{}")
            return bool(config) and config["routes"]["chat"]["targets"][0]["weight"] == 7

        await eventually(reconciled, within=30, interval=0.2, what="the standby reconciled the change")
        assert time.monotonic() - killed < 30
        assert (await holder()).startswith("op-b-")
    finally:
        for proc in (first, second):
            if proc is not None and proc.returncode is None:
                proc.send_signal(signal.SIGTERM)
        if second is not None:
            async with asyncio.timeout(30):
                _, err = await second.communicate()
            assert second.returncode == 0, err.decode(errors="replace")[-2000:]
            assert b"Traceback" not in err, err.decode(errors="replace")[-2000:]
    # A clean stop hands the Lease back at once.
    assert (await holder()) == ""
