"""The policy index, the spend ledger, the usage journal (including ``kill -9`` and torn records) and the sender's
retries and idempotency."""

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
from interlock.gateway.usage.journal import Journal
from interlock.gateway.usage.ledger import SpendLedger
from interlock.gateway.usage.metering import Usage
from interlock.gateway.usage.recorder import encode_event
from interlock.gateway.usage.sender import UsageSender, retry_delay
from interlock.gateway.usage.spool import AsyncSpool
from interlock.gatewayconfig.model import ModelPrice
from tests.gateway.contract_server import TOKEN, ContractServer, gateway_id
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


def _row(
    seq: int, tenant: str = "t1", cost: float = 0.5, gateway: str = "", spilled: bool = False
) -> tuple[int, str, float, bytes]:
    return encode_event(
        gateway or gateway_id("units"),
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
        spilled=spilled,
    )


def test_a_spilled_request_is_marked_on_its_usage_event() -> None:
    assert orjson.loads(_row(1)[3])["spilled_over"] is False
    event = UsageEvent.model_validate_json(_row(2, spilled=True)[3])
    assert event.spilled_over is True


def test_encoded_events_follow_the_contract():
    seq, tenant, cost, body = _row(7)
    event = UsageEvent.model_validate_json(body)
    assert (event.seq, event.tenant_id, event.input_tokens, event.cached_tokens, event.cost_usd) == (7, "t1", 3, 1, 0.5)
    assert (seq, tenant, cost) == (7, "t1", 0.5)
    assert event.started_at.tzinfo is not None
    assert event.trace_id == "t" * 32


async def _spool(path, **options) -> AsyncSpool:
    spool = AsyncSpool(path, **options)
    await spool.open()
    return spool


def _append(spool: AsyncSpool, *rows: tuple[int, str, float, bytes]) -> None:
    for seq, _, _, body in rows:
        spool.append(seq, body)


async def test_journal_keeps_events_until_acknowledged_and_counted(tmp_path):
    spool = await _spool(tmp_path / "s", segment_bytes=1)  # one event per segment
    _append(spool, _row(1), _row(2), _row(3, "t2"))
    assert (spool.pending_events, spool.journal.segments) == (3, 3)
    events, position = await spool.read(2)
    assert [seq for seq, _ in events] == [1, 2]
    await spool.ack(events, position)
    events, position = await spool.read(10)
    assert [seq for seq, _ in events] == [3]
    assert spool.pending_events == 1
    seen: list[tuple[int, str]] = []
    await spool.call(spool.journal.unsettled, 1, lambda seq, body: seen.append((seq, orjson.loads(body)["tenant_id"])))
    assert seen == [(2, "t1"), (3, "t2")], "acknowledged but not yet in a snapshot"
    spool.settle(1)
    assert await spool.call(spool.journal.prune) == 1, "acknowledged and counted"
    assert await spool.call(spool.journal.prune, 10**10) == 1, "acknowledged events expire in any case"
    assert spool.journal.segments == 1
    await spool.ack(events, position)
    await spool.save_snapshot('"v1"', b"{}")
    await spool.save_snapshot('"v2"', b'{"a":1}')
    assert await spool.load_snapshot() == ('"v2"', b'{"a":1}')
    await spool.close()

    again = AsyncSpool(tmp_path / "s")
    replay = await again.open()
    assert (replay.last_seq, replay.acked, replay.pending_events) == (3, 3, 0), "seq continues after a restart"
    assert (await again.read(10))[0] == []
    await again.close()


async def test_the_sender_reads_across_segments_and_a_restart_resumes_after_the_last_ack(tmp_path):
    spool = await _spool(tmp_path / "s", segment_bytes=2000)
    _append(spool, *(_row(seq) for seq in range(1, 31)))
    assert spool.journal.segments > 3
    events, position = await spool.read(12)
    assert [seq for seq, _ in events] == list(range(1, 13))
    await spool.ack(events, position)
    events, _ = await spool.read(100, max_bytes=1500)
    assert [seq for seq, _ in events][:1] == [13], "a byte cap ends a batch early, never before one event"
    await spool.close()  # events 13..30 were sent but never acknowledged

    again = AsyncSpool(tmp_path / "s")
    pending: list[int] = []
    replay = await again.open(lambda seq, body: pending.append(seq))
    assert pending == list(range(13, 31))
    assert (replay.last_seq, replay.pending_events) == (30, 18)
    events, position = await again.read(100)
    assert [seq for seq, _ in events] == list(range(13, 31))
    assert all(UsageEvent.model_validate_json(body).seq == seq for seq, body in events)
    again.append(31, _row(31)[3])
    await again.ack(events, position)
    assert [seq for seq, _ in (await again.read(100))[0]] == [31]
    await again.close()


async def test_a_torn_record_after_a_power_loss_is_dropped_at_start(tmp_path):
    spool = await _spool(tmp_path / "s")
    _append(spool, _row(1), _row(2))
    await spool.close()
    segment = next((tmp_path / "s").glob("*.log"))
    whole = segment.read_bytes()
    segment.write_bytes(whole + whole[: len(whole) // 2 - 5])  # a record cut short, as a crash may leave
    again = AsyncSpool(tmp_path / "s")
    replay = await again.open()
    assert (replay.last_seq, replay.pending_events, replay.truncated_bytes) == (2, 2, len(whole) // 2 - 5)
    assert segment.read_bytes() == whole
    await again.close()


def test_a_gateway_killed_right_after_writing_has_every_event(tmp_path):
    path = tmp_path / "killed"
    script = textwrap.dedent(
        f"""
        import asyncio, os, signal, sys
        sys.path.insert(0, {str(sys.path[0])!r})
        from interlock.gateway.usage.spool import AsyncSpool
        from tests.gateway.test_usage_units import _row

        async def main():
            spool = AsyncSpool({str(path)!r}, sync_interval_s=3600, segment_bytes=64 * 1024)
            await spool.open()
            for seq in range(1, 1001):
                spool.append(seq, _row(seq)[3])  # no sync: only the kernel has them
            print("written", flush=True)
            os.kill(os.getpid(), signal.SIGKILL)

        asyncio.run(main())
        """
    )
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=60, check=False)
    assert done.returncode == -9, done.stderr
    assert done.stdout.strip() == "written"
    journal = Journal(path)
    seqs: list[int] = []
    replay = journal.open(lambda seq, body: seqs.append(seq))
    assert seqs == list(range(1, 1001)), "every written event survived kill -9"
    assert replay.truncated_bytes == 0
    journal.close()


def test_retry_delay_is_bounded_and_grows():
    assert 0.125 <= retry_delay(1, 30) <= 0.25
    assert 1.0 <= retry_delay(4, 30) <= 2.0
    assert 15 <= retry_delay(50, 30) <= 30


async def test_sender_retries_and_a_lost_acknowledgement_is_not_counted_twice(tmp_path):
    cp = ContractServer()
    await cp.start()
    spool = await _spool(tmp_path / "s")
    sender = UsageSender(spool, url=cp.url, token=TOKEN, batch_size=2, retry_max_s=0.05)
    try:
        _append(spool, *(_row(i) for i in range(1, 6)))
        cp.fail_usage_posts = 2
        cp.ack_lost = 1
        sender.start()
        sender.wake()

        async def delivered() -> bool:
            return not (await spool.read(10))[0]

        await eventually(delivered, what="every event acknowledged")
        assert sorted(e.seq for e in cp.events.values()) == [1, 2, 3, 4, 5]
        assert cp.duplicates == 2, "the batch whose acknowledgement was lost came again and was recognised"
        assert cp.posts == 2 + 1 + 3, "two refused, one lost acknowledgement, then three batches"
        assert (sender.sent, sender.duplicates) == (3, 2)
        assert sender.last_error is None
        assert sender.failures == 0

        await cp.stop()  # the control plane goes away: events wait
        _append(spool, _row(6))
        sender.wake()
        await eventually(lambda: sender.last_error is not None, what="the send failed")
        assert [s for s, _ in (await spool.read(10))[0]] == [6]
        await cp.start()
        await eventually(lambda: 6 in {e.seq for e in cp.events.values()}, what="delivered after the outage")
    finally:
        await sender.close()
        await spool.close()
        await cp.stop()


async def test_sender_sends_the_stored_json_unchanged(tmp_path):
    cp = ContractServer()
    await cp.start()
    spool = await _spool(tmp_path / "s")
    sender = UsageSender(spool, url=cp.url, token="wrong", retry_max_s=0.05)
    try:
        _append(spool, _row(1))
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


async def test_events_the_control_plane_rejects_for_good_are_not_sent_again(tmp_path):
    cp = ContractServer()
    await cp.start()
    spool = await _spool(tmp_path / "s")
    sender = UsageSender(spool, url=cp.url, token=TOKEN, batch_size=10, retry_max_s=0.05)
    try:
        _append(spool, _row(1), _row(2, gateway="other/gw/forged"), _row(3))
        assert await sender.drain(5.0)
        assert (cp.posts, cp.rejected, sender.rejected) == (1, 1, 1)
        assert sorted(e.seq for e in cp.events.values()) == [1, 3]
        _append(spool, _row(4))
        assert await sender.drain(5.0)
        assert cp.posts == 2, "the rejected event did not come back"
        assert sorted(e.seq for e in cp.events.values()) == [1, 3, 4]
        assert spool.pending_events == 0
    finally:
        await sender.close()
        await spool.close()
        await cp.stop()
