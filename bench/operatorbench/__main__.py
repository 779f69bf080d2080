"""Operator benchmark: ``bench/operatorbench/run [--backends 50] [--routes 200] [--gateways 1] [--self-hosted 10]``.

Starts the project's Kubernetes API emulator (tests/operator/emulator) in this process, with its Deployment
controller reporting pods ready and stand-ins answering the gateway pods' ``/readyz`` with the config they were
given, and ``interlock operator --all-namespaces`` as a separate process; creates the backends and routes at once
over HTTP, and measures:

- time to converge: from the first create until every object is Ready for its current generation (a Route only
  once a gateway pod reports a config with it) and every gateway ConfigMap holds exactly ``compile_config`` of the
  objects;
- API calls the operator made meanwhile (the emulator records each request with its user agent: kopf's own
  watching and bookkeeping, and the operator's reads and writes), by verb and by resource;
- one Route edit: time until the gateway's ConfigMap has it, and the calls it cost;
- idle resyncs: the calls made over ``--idle-resyncs`` resync periods with nothing to change (the target is no
  write at all), per resync.
"""

from __future__ import annotations

import argparse
import asyncio
import collections
import json
import os
import signal
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import httpx
import yaml

from bench.operatorbench.args import parser
from interlock.gatewayconfig import GatewayConfig, compile_config
from interlock.resources import LLMBackend, Route
from tests.operator.emulator import Emulator
from tests.operator.emulator.gateways import FakeGateways

ROOT = Path(__file__).resolve().parents[2]
NS = "bench"
GV = "/apis/interlock.dev/v1alpha1"


def backend(i: int, self_hosted: bool) -> dict[str, Any]:
    spec: dict[str, Any] = {"models": [{"name": f"m{i}a"}, {"name": f"m{i}b"}]}
    if self_hosted:
        spec |= {"provider": "vllm", "serving": {"model": f"org/model-{i}", "gpus": 1, "replicas": 1}}
    else:
        spec |= {
            "provider": "openai",
            "url": f"https://provider-{i}.example/v1",
            "credentialsSecretRef": {"name": "provider-keys", "key": f"backend-{i}"},
        }
    return {"apiVersion": "interlock.dev/v1alpha1", "kind": "LLMBackend", "metadata": {"name": f"b{i}"}, "spec": spec}


def route(i: int, backends: int, gateways: int) -> dict[str, Any]:
    a, b, c = i % backends, (i + 1) % backends, (i + 2) % backends
    return {
        "apiVersion": "interlock.dev/v1alpha1",
        "kind": "Route",
        "metadata": {"name": f"r{i}"},
        "spec": {
            "model": f"model-{i}",
            "gateway": f"g{i % gateways}",
            "targets": [{"backend": f"b{a}", "model": f"m{a}a", "weight": 3}, {"backend": f"b{b}", "model": f"m{b}b"}],
            "fallbacks": [{"backend": f"b{c}", "model": f"m{c}a"}],
        },
    }


def operator_calls(emu: Emulator, since: int) -> list[Any]:
    return [r for r in emu.requests[since:] if r.user_agent.startswith(("kopf", "interlock-operator"))]


def summarize(calls: list[Any]) -> dict[str, Any]:
    by_verb = collections.Counter(r.verb for r in calls)
    by_resource = collections.Counter(
        f"{r.resource}/{r.subresource}" if r.subresource else r.resource or "(discovery)" for r in calls
    )
    by_client = collections.Counter(r.user_agent.split("/")[0] for r in calls)
    return {
        "total": len(calls),
        "by_client": dict(by_client),
        "by_verb": dict(by_verb.most_common()),
        "by_resource": dict(by_resource.most_common()),
    }


class Bench:
    def __init__(self, emu: Emulator, args: argparse.Namespace) -> None:
        self.emu, self.args = emu, args
        self.http = httpx.AsyncClient(base_url=emu.url, headers={"User-Agent": "bench"}, timeout=30)

    def objects(self, plural: str) -> list[dict[str, Any]]:
        return [o for (ns, _), o in self.emu.store.objects[("interlock.dev", plural)].items() if ns == NS]

    def converged(self) -> bool:
        objs = self.objects("llmbackends") + self.objects("routes")
        if len(objs) != self.args.backends + self.args.routes:
            return False
        for obj in objs:
            conds = {c["type"]: c for c in (obj.get("status") or {}).get("conditions") or []}
            ready = conds.get("Ready")
            if not ready or ready["status"] != "True":
                return False
            if ready.get("observedGeneration") != obj["metadata"]["generation"]:
                return False
        return all(self.config_matches(f"g{g}") for g in range(self.args.gateways))

    def config_matches(self, gateway: str) -> bool:
        cm = self.emu.get("v1", "configmaps", NS, f"interlock-gateway-{gateway}")
        if cm is None:
            return False
        backends = [LLMBackend.model_validate(o) for o in self.objects("llmbackends")]
        routes = [Route.model_validate(o) for o in self.objects("routes")]
        expected = compile_config(backends, routes, namespace=NS, gateway=gateway)
        return GatewayConfig.from_json(cm["data"]["gateway.json"]) == expected

    async def wait(self, check: Any, limit: float) -> float:
        start = time.monotonic()
        while not check():
            if time.monotonic() - start > limit:
                raise TimeoutError("did not converge")
            await asyncio.sleep(0.02)
        return time.monotonic()

    async def run(self) -> dict[str, Any]:
        args = self.args
        for crd in sorted((ROOT / "operator" / "crds").glob("*.yaml")):
            r = await self.http.post(
                "/apis/apiextensions.k8s.io/v1/customresourcedefinitions", json=yaml.safe_load(crd.read_text())
            )
            r.raise_for_status()
        (await self.http.post("/api/v1/namespaces", json={"metadata": {"name": NS}})).raise_for_status()
        keys = {f"backend-{i}": f"sk-{i}" for i in range(args.backends)}
        secret = {"metadata": {"name": "provider-keys"}, "stringData": keys}
        (await self.http.post(f"/api/v1/namespaces/{NS}/secrets", json=secret)).raise_for_status()

        kubeconfig = Path(tempfile.mkdtemp()) / "kubeconfig"
        self.emu.write_kubeconfig(kubeconfig, namespace=NS)
        env = {**os.environ, "KUBECONFIG": str(kubeconfig), "INTERLOCK_OPERATOR_RESYNC_INTERVAL_S": str(args.resync)}
        env.pop("KUBERNETES_SERVICE_HOST", None)
        operator = await asyncio.create_subprocess_exec(
            sys.executable, "-m", "interlock", "--log-level", "WARNING", "operator", "--all-namespaces",
            cwd=ROOT, env=env, stdout=asyncio.subprocess.DEVNULL, stderr=asyncio.subprocess.PIPE,
        )  # fmt: skip
        try:
            # The operator is up once kopf has opened its watches.
            await self.wait(lambda: sum(r.verb == "watch" for r in self.emu.requests) >= 3, limit=30)
            mark = len(self.emu.requests)
            start = time.monotonic()
            sends = [
                *(self.http.post(f"{GV}/namespaces/{NS}/llmbackends", json=backend(i, i < args.self_hosted))
                  for i in range(args.backends)),
                *(self.http.post(f"{GV}/namespaces/{NS}/routes", json=route(i, args.backends, args.gateways))
                  for i in range(args.routes)),
            ]  # fmt: skip
            for response in await asyncio.gather(*sends):
                response.raise_for_status()
            created = time.monotonic()
            end = await self.wait(self.converged, limit=args.timeout)
            converge = {
                "seconds": round(end - start, 2),
                "creating_seconds": round(created - start, 2),
                "api_calls": summarize(operator_calls(self.emu, mark)),
            }

            mark = len(self.emu.requests)
            start = time.monotonic()
            patch = {"spec": {"targets": [{"backend": "b0", "model": "m0a", "weight": 9}]}}
            r = await self.http.patch(
                f"{GV}/namespaces/{NS}/routes/r5", json=patch, headers={"Content-Type": "application/merge-patch+json"}
            )
            r.raise_for_status()
            end = await self.wait(lambda: self.converged() and self._edited(), limit=args.timeout)
            update = {"seconds": round(end - start, 3), "api_calls": summarize(operator_calls(self.emu, mark))}

            await asyncio.sleep(args.resync)  # let the edit's follow-ups settle before the quiet period
            mark = len(self.emu.requests)
            await asyncio.sleep(args.resync * args.idle_resyncs)
            calls = operator_calls(self.emu, mark)
            writes = [r for r in calls if r.verb in ("create", "update", "patch", "delete", "deletecollection")]
            idle = {
                "resyncs": args.idle_resyncs,
                "seconds": args.resync * args.idle_resyncs,
                "api_calls_per_resync": round(len(calls) / args.idle_resyncs, 1),
                "writes": len(writes),
                "written": sorted({f"{r.verb} {r.resource}/{r.subresource}".rstrip("/") for r in writes}),
                "api_calls": summarize(calls),
            }
        finally:
            if operator.returncode is None:
                operator.send_signal(signal.SIGTERM)
            _, err = await asyncio.wait_for(operator.communicate(), 30)
            await self.http.aclose()
        if b"Traceback" in (err or b""):
            print(err.decode(errors="replace"), file=sys.stderr)
        return {
            "objects": {"backends": args.backends, "self_hosted": args.self_hosted, "routes": args.routes,
                        "gateways": args.gateways},
            "resync_interval_s": args.resync,
            "converge": converge,
            "update_one_route": update,
            "idle": idle,
            "operator_exit_code": operator.returncode,
        }  # fmt: skip

    def _edited(self) -> bool:
        cm = self.emu.get("v1", "configmaps", NS, f"interlock-gateway-g{5 % self.args.gateways}")
        if cm is None:
            return False
        config = GatewayConfig.from_json(cm["data"]["gateway.json"])
        return config.routes["model-5"].targets[0].weight == 9


async def main() -> None:
    args = parser().parse_args()
    async with Emulator() as emu:
        emu.store.controller.default = "ready"
        fakes = FakeGateways(emu)
        try:
            result = await Bench(emu, args).run()
        finally:
            await fakes.close()
    text = json.dumps(result, indent=2)
    print(text)
    if args.out:
        args.out.write_text(text + "\n")


if __name__ == "__main__":
    import uvloop

    uvloop.run(main())
