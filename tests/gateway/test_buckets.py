"""Token buckets: in memory (with a test clock) and in the real Redis on 127.0.0.1:6379 (own key prefix)."""

from __future__ import annotations

import asyncio
import socket
import uuid
from collections.abc import AsyncIterator

import pytest
import pytest_asyncio

from interlock.gateway.tenancy.ratelimit import MemoryBuckets, Slot
from interlock.gateway.tenancy.redisbuckets import RedisBuckets
from interlock.gateway.tenancy.redisclient import RedisClient, RedisError, RedisUnavailable

REDIS_URL = "redis://127.0.0.1:6379/0"


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def test_request_bucket_admits_its_capacity_then_refills_at_limit_per_minute():
    clock = Clock()
    buckets = MemoryBuckets(clock)
    caps = (3, 0, 0, 0)
    decisions = [buckets.take("t", "r", caps) for _ in range(4)]
    assert [d.allowed for d in decisions] == [True, True, True, False]
    assert [d.remaining[0] for d in decisions[:3]] == [2, 1, 0]
    refused = decisions[3]
    assert refused.refused == Slot.TENANT_REQUESTS
    assert refused.retry_after_s == pytest.approx(20.0)  # one request per 20 s at 3/min
    clock.now += 19.9
    assert not buckets.take("t", "r", caps).allowed
    clock.now += 0.2
    assert buckets.take("t", "r", caps).allowed


def test_token_bucket_admits_while_positive_and_is_charged_afterwards():
    clock = Clock()
    buckets = MemoryBuckets(clock)
    caps = (0, 100, 0, 0)
    assert buckets.take("t", "r", caps).allowed
    buckets.debit("t", "r", caps, 160)  # the answer was bigger than what was left
    refused = buckets.take("t", "r", caps)
    assert not refused.allowed
    assert refused.refused == Slot.TENANT_TOKENS
    assert refused.retry_after_s == pytest.approx(60 * 60 / 100, rel=1e-3)  # 60 tokens short at 100/min
    clock.now += 36.1
    assert buckets.take("t", "r", caps).allowed
    buckets.debit("t", "r", caps, 0)  # nothing to charge


def test_all_or_nothing_and_the_slowest_bucket_names_the_refusal():
    clock = Clock()
    buckets = MemoryBuckets(clock)
    caps = (10, 0, 1, 0)
    assert buckets.take("t", "chat", caps).allowed
    refused = buckets.take("t", "chat", caps)
    assert not refused.allowed
    assert refused.refused == Slot.ROUTE_REQUESTS
    assert refused.remaining[0] == 9, "the tenant bucket gave nothing for a refused request"
    assert buckets.take("t", "other", caps).allowed, "route buckets are per route"
    assert buckets.take("u", "chat", caps).allowed, "and per tenant"
    assert "on model 'chat'" in Slot.ROUTE_REQUESTS.describe("chat")


def test_full_buckets_are_swept():
    clock = Clock()
    buckets = MemoryBuckets(clock)
    for tenant in range(100):
        buckets.take(f"t{tenant}", "r", (5, 0, 0, 0))
    assert len(buckets) == 100
    clock.now += 60
    buckets._ops = buckets._SWEEP_EVERY - 1
    buckets.take("x", "r", (5, 0, 0, 0))
    assert len(buckets) == 1


@pytest_asyncio.fixture
async def redis_buckets() -> AsyncIterator[RedisBuckets]:
    client = RedisClient(REDIS_URL)
    try:
        assert await client.call("PING") == "PONG"
    except RedisUnavailable as exc:
        pytest.fail(f"these tests need Redis on 127.0.0.1:6379: {exc}")
    finally:
        await client.close()
    buckets = RedisBuckets(REDIS_URL, prefix=f"interlock-test:{uuid.uuid4().hex}:")
    yield buckets
    keys = await buckets.client.call("KEYS", buckets.prefix + b"*")
    if keys:
        await buckets.client.call("DEL", *keys)
    await buckets.close()


async def test_redis_buckets_decide_like_the_memory_ones(redis_buckets):
    caps = (3, 50, 0, 0)
    decisions = [await redis_buckets.acquire("t", "r", caps) for _ in range(4)]
    assert [d.allowed for d in decisions] == [True, True, True, False]
    assert [d.remaining[0] for d in decisions[:3]] == [2, 1, 0]
    assert decisions[0].remaining[1] == 50
    assert decisions[3].refused == Slot.TENANT_REQUESTS
    assert 19.0 < decisions[3].retry_after_s <= 20.0

    tokens = (0, 50, 0, 0)
    assert (await redis_buckets.acquire("u", "r", tokens)).allowed
    redis_buckets.debit("u", "r", tokens, 80)
    refused = await redis_buckets.acquire("u", "r", tokens)  # same connection: sees the debit
    assert not refused.allowed
    assert refused.refused == Slot.TENANT_TOKENS
    assert refused.retry_after_s == pytest.approx(30 * 60 / 50, rel=0.01)
    ttl = await redis_buckets.client.call("PTTL", redis_buckets.prefix + b"{u}:tok")
    assert 0 < ttl <= 96_000 + 1000, "an idle bucket expires once it would be full again"


async def test_redis_is_exact_under_concurrency(redis_buckets):
    caps = (100, 0, 0, 0)
    decisions = await asyncio.gather(*(redis_buckets.acquire("t", "chat", caps) for _ in range(300)))
    assert sum(d.allowed for d in decisions) == 100


async def test_redis_down_falls_back_to_memory_and_recovers(redis_buckets):
    with socket.socket() as sock:  # a port nothing listens on
        sock.bind(("127.0.0.1", 0))
        dead = sock.getsockname()[1]
    down = RedisBuckets(f"redis://127.0.0.1:{dead}/0", prefix="x:", timeout_s=0.1)
    try:
        decisions = [await down.acquire("t", "r", (2, 0, 0, 0)) for _ in range(3)]
        assert [d.allowed for d in decisions] == [True, True, False], "the per-replica buckets decide meanwhile"
        assert down.status["healthy"] is False
        assert "cannot connect" in str(down.status["last_error"])
    finally:
        await down.close()
    assert redis_buckets.status == {"store": "redis", "healthy": True, "last_error": None}


async def test_redis_client_replies_and_errors(redis_buckets):
    client = redis_buckets.client
    key = redis_buckets.prefix + b"plain"
    assert await client.call("SET", key, "v") == "OK"
    assert await client.call("GET", key) == b"v"
    assert await client.call("INCR", redis_buckets.prefix + b"n") == 1
    with pytest.raises(RedisError):
        await client.call("INCR", key)
    await client.call("DEL", redis_buckets.prefix + b"n")
    assert await client.call("GET", redis_buckets.prefix + b"missing") is None
