"""The policy index, the spend ledger, the spool (including ``kill -9``) and the sender's retries and idempotency."""

from __future__ import annotations

import datetime as dt
import hashlib
import subprocess
import sys
import textwrap

import orjson
import pytest

from interlock.contract.controlplane import KeyRecord, PriceRecord, QuotaRecord, Snapshot, TenantRecord, UsageEvent
from interlock.gateway.controlplane.snapshot import StaticPolicySource
from interlock.gateway.errors import AuthenticationError, ServiceUnavailableError
from interlock.gateway.tenancy.auth import SnapshotAuthenticator, StaticKeyAuthenticator
from interlock.gateway.tenancy.policy import Policy, seconds_to_month_end
from interlock.gateway.usage.ledger import SpendLedger
from interlock.gateway.usage.metering import Usage
from interlock.gateway.usage.recorder import encode_event
from interlock.gateway.usage.sender import UsageSender, retry_delay
from interlock.gateway.usage.spool import AsyncSpool, Spool
from interlock.gatewayconfig.model import ModelPrice
from tests.gateway.contract_server import TOKEN, ContractServer
from tests.support import eventually

KEY = "sk-il-" + "abcdefgh" + "x" * 35


def snapshot(*, expires_at: dt.datetime | None = None, ingested_seq: int = 0) -> Snapshot:
    return Snapshot(
        version="v1",
        generated_at=dt.datetime.now(dt.UTC),
        tenants=[TenantRecord(id="t1", name="acme", quota=QuotaRecord(requests_per_minute=5, monthly_budget_usd=2))],
        keys=[
            KeyRecord(
                id="k1",
                tenant_id="t1",
                prefix="abcdefgh",
                sha256=hashlib.sha256(KEY.encode()).hexdigest(),
                expires_at=expires_at,
            ),
            KeyRecord(id="k2", tenant_id="gone", prefix="zzzzzzzz", sha256="00" * 32),
        ],
        prices=[PriceRecord(backend="a", model="m1", input_per_million=3, output_per_million=4)],
        ingested_seq=ingested_seq,
    )


def test_policy_finds_keys_by_prefix_and_digest_and_honours_expiry():
    policy = Policy.from_snapshot(snapshot(expires_at=dt.datetime.now(dt.UTC) + dt.timedelta(hours=1)))
    digest = hashlib.sha256(KEY.encode()).digest()
    principal = policy.find("abcdefgh", digest, now=dt.datetime.now(dt.UTC).timestamp())
    assert principal is not None
    assert (principal.tenant, principal.tenant_id, principal.key_id) == ("acme", "t1", "k1")
    assert principal.limits.requests_per_minute == 5
    assert principal.limits.monthly_budget_usd == 2
    assert policy.find("abcdefgh", hashlib.sha256(b"other").digest(), now=0) is None
    assert policy.find("abcdefgh", digest, now=dt.datetime.now(dt.UTC).timestamp() + 7200) is None, "expired"
    assert "zzzzzzzz" not in policy.keys, "a key of a tenant the snapshot lacks is not valid"
    compiled = ModelPrice(input_per_million=1, output_per_million=1, cached_input_per_million=1)
    override = policy.price("a", "m1", compiled)
    assert override is not None
    assert (override.input_per_million, override.cached_input_per_million) == (3, 3), "cached defaults to input"
    assert policy.price("b", "m1", compiled) is compiled


def test_snapshot_authenticator_with_a_break_glass_fallback():
    source = StaticPolicySource()
    auth = SnapshotAuthenticator(source, fallback=StaticKeyAuthenticator(["break-glass"]))
    with pytest.raises(ServiceUnavailableError):
        auth.authenticate(f"Bearer {KEY}".encode(), None)
    assert auth.authenticate(b"Bearer break-glass", None).tenant == "default"
    source.set(snapshot())
    assert auth.authenticate(None, KEY.encode()).key_id == "k1"
    with pytest.raises(AuthenticationError):
        auth.authenticate(b"Bearer sk-il-abcdefghWRONG", None)


def test_seconds_to_month_end():
    end_of_year = dt.datetime(2025, 12, 31, 23, 59, 0, tzinfo=dt.UTC).timestamp()
    assert seconds_to_month_end(end_of_year) == 60


def test_ledger_counts_only_what_the_snapshot_does_not():
    ledger = SpendLedger()
    for seq, tenant, cost in [(1, "a", 0.5), (2, "b", 1.0), (3, "a", 0.25), (4, "a", 0.0)]:
        ledger.add(seq, tenant, cost)
    assert (ledger.spent("a"), ledger.spent("b"), len(ledger)) == (0.75, 1.0, 3)
    ledger.settle(2)
    assert (ledger.spent("a"), ledger.spent("b")) == (0.25, 0.0)
    ledger.settle(1)  # an older snapshot changes nothing
    assert ledger.spent("a") == 0.25
    ledger.add(2, "a", 9.0)  # already in the snapshot
    assert ledger.spent("a") == 0.25
    ledger.settle(10)
    assert (ledger.spent("a"), len(ledger)) == (0.0, 0)


def _row(seq: int, tenant: str = "t1", cost: float = 0.5) -> tuple[int, str, float, bytes]:
    return encode_event(
        "gw",
        (
            seq,
            f"run{seq:013d}",
            tenant,
            "k1",
            "chat",
            "a",
            "m1",
            200,
            Usage(3, 4, 1),
            cost,
            1.7e9,
            0.01,
            None,
            (),
            "t" * 32,
        ),
    )


def test_encoded_events_follow_the_contract():
    seq, tenant, cost, body = _row(7)
    event = UsageEvent.model_validate_json(body)
    assert (event.seq, event.tenant_id, event.input_tokens, event.cached_tokens, event.cost_usd) == (7, "t1", 3, 1, 0.5)
    assert (seq, tenant, cost) == (7, "t1", 0.5)
    assert event.started_at.tzinfo is not None
    assert event.trace_id == "t" * 32


def test_spool_keeps_events_until_acknowledged_and_counted(tmp_path):
    spool = Spool(tmp_path / "s.sqlite")
    spool.append([_row(1), _row(2), _row(3, "t2")])
    assert [seq for seq, _ in spool.pending(2)] == [1, 2]
    spool.ack([1, 2])
    assert [seq for seq, _ in spool.pending(10)] == [3]
    assert spool.counts() == (1, 2)
    assert spool.unsettled(1) == [(2, "t1", 0.5), (3, "t2", 0.5)], "acknowledged but not yet in a snapshot"
    assert spool.prune(ingested_seq=1) == 1
    assert spool.prune(ingested_seq=1, now=10**10) == 1, "acknowledged events expire in any case"
    assert spool.counts() == (1, 0)
    spool.ack([3])
    spool.prune(ingested_seq=3)
    assert spool.counts() == (0, 0)
    assert spool.last_seq() == 3, "seq continues after every event is gone"
    spool.save_snapshot('"v1"', b"{}")
    spool.save_snapshot('"v2"', b'{"a":1}')
    assert spool.load_snapshot() == ('"v2"', b'{"a":1}')
    spool.close()


def test_a_spool_killed_mid_write_still_holds_every_committed_group(tmp_path):
    path = tmp_path / "killed.sqlite"
    script = textwrap.dedent(
        f"""
        import asyncio, os, signal, sys
        sys.path.insert(0, {str(sys.path[0])!r})
        from interlock.gateway.usage.spool import AsyncSpool
        from tests.gateway.test_usage_units import _row

        async def main():
            spool = AsyncSpool({str(path)!r})
            await spool.open()
            for group in range(20):
                await spool.call(spool.spool.append, [_row(group * 50 + i + 1) for i in range(50)])
            print("committed", flush=True)
            pending = asyncio.ensure_future(spool.call(spool.spool.append, [_row(1001 + i) for i in range(5000)]))
            os.kill(os.getpid(), signal.SIGKILL)

        asyncio.run(main())
        """
    )
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=60, check=False)
    assert done.returncode == -9, done.stderr
    assert done.stdout.strip() == "committed"
    spool = Spool(path)
    seqs = [seq for seq, _ in spool.pending(10_000)]
    assert seqs[:1000] == list(range(1, 1001)), "every committed group survived"
    assert len(seqs) in (1000, 6000), "the group in flight is all there or not at all"
    assert all(UsageEvent.model_validate_json(body).seq == seq for seq, body in spool.pending(10_000))
    spool.close()


def test_retry_delay_is_bounded_and_grows():
    assert 0.125 <= retry_delay(1, 30) <= 0.25
    assert 1.0 <= retry_delay(4, 30) <= 2.0
    assert 15 <= retry_delay(50, 30) <= 30


async def test_sender_retries_and_a_lost_acknowledgement_is_not_counted_twice(tmp_path):
    cp = ContractServer()
    await cp.start()
    spool = AsyncSpool(tmp_path / "s.sqlite")
    await spool.open()
    sender = UsageSender(spool, url=cp.url, token=TOKEN, batch_size=2, retry_max_s=0.05)
    try:
        await spool.call(spool.spool.append, [_row(i) for i in range(1, 6)])
        cp.fail_usage_posts = 2
        cp.ack_lost = 1
        sender.start()
        sender.wake()

        async def delivered() -> bool:
            return not await spool.call(spool.spool.pending, 10)

        await eventually(delivered, what="every event acknowledged")
        assert sorted(e.seq for e in cp.events.values()) == [1, 2, 3, 4, 5]
        assert cp.duplicates == 2, "the batch whose acknowledgement was lost came again and was recognised"
        assert cp.posts == 2 + 1 + 3, "two refused, one lost acknowledgement, then three batches"
        assert (sender.sent, sender.duplicates) == (3, 2)
        assert sender.last_error is None
        assert sender.failures == 0

        await cp.stop()  # the control plane goes away: events wait
        await spool.call(spool.spool.append, [_row(6)])
        sender.wake()
        await eventually(lambda: sender.last_error is not None, what="the send failed")
        assert [s for s, _ in await spool.call(spool.spool.pending, 10)] == [6]
        await cp.start()
        await eventually(lambda: 6 in {e.seq for e in cp.events.values()}, what="delivered after the outage")
    finally:
        await sender.close()
        await spool.close()
        await cp.stop()


async def test_sender_sends_the_stored_json_unchanged(tmp_path):
    cp = ContractServer()
    await cp.start()
    spool = AsyncSpool(tmp_path / "s.sqlite")
    await spool.open()
    sender = UsageSender(spool, url=cp.url, token="wrong", retry_max_s=0.05)
    try:
        await spool.call(spool.spool.append, [_row(1)])
        with pytest.raises(Exception, match="HTTP 401"):
            await sender.send_batch()
        sender._client.headers["authorization"] = f"Bearer {TOKEN}"
        assert await sender.send_batch() == 1
        event = cp.events["run0000000000001"]
        assert orjson.loads(event.model_dump_json())["route"] == "chat"
        assert await sender.drain(1.0)
    finally:
        await sender.close()
        await spool.close()
        await cp.stop()
