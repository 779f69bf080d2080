"""A gateway that starts while its control plane is down, with an empty spool, starts from the snapshot the operator
mirrored for its gateway (the mounted seed file) and authenticates the keys in it; the control plane's own answer
replaces the seed as soon as it is reachable."""

from __future__ import annotations

import hashlib
import socket
import time
from pathlib import Path

from interlock.contract import KEY_PREFIX
from interlock.gateway.controlplane.link import ControlPlaneLink
from interlock.gateway.settings import GatewaySettings
from tests.gateway.contract_server import TOKEN, ContractServer


def closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


async def test_a_new_gateway_starts_from_the_mirrored_snapshot_while_the_control_plane_is_down(tmp_path: Path) -> None:
    state = ContractServer()
    tenant = state.add_tenant("acme")
    _, key = state.add_key(tenant)
    seed = tmp_path / "snapshot" / "snapshot.json"
    seed.parent.mkdir()
    seed.write_bytes(state.snapshot("ns/default/interlock-operator").model_dump_json().encode())

    settings = GatewaySettings(
        control_plane_url=f"http://127.0.0.1:{closed_port()}", control_plane_token=TOKEN, gateway_id="ns/default/pod-1",
        spool_path=tmp_path / "spool.sqlite", snapshot_seed_file=seed,
    )  # fmt: skip
    link = ControlPlaneLink(settings)
    await link.start()
    try:
        assert link.ready
        assert link.source.status.source == "seed"
        policy = link.source.policy
        assert policy is not None
        prefix = key[len(KEY_PREFIX) : len(KEY_PREFIX) + 8]
        principal = policy.find(prefix, hashlib.sha256(key.encode()).digest(), time.time())
        assert principal is not None
        assert principal.tenant_id == tenant
    finally:
        await link.stop()

    # Without a seed (or with a broken one) the gateway waits for the control plane, as before.
    seed.write_text("{not json")
    unseeded = ControlPlaneLink(settings.model_copy(update={"spool_path": tmp_path / "other.sqlite"}))
    await unseeded.start()
    try:
        assert not unseeded.ready
    finally:
        await unseeded.stop()
