"""Sizing an endpoint's share of the prefix index from its engine's metrics (``PoolUpkeep``), reading after reading:
prompt tokens per block sent, over stretches of at least ``MIN_BLOCKS_TO_MEASURE`` blocks, smoothed; an engine
restart (its counter going back) starts over. Over real HTTP: tests/gateway/test_endpoint_pool.py."""

from __future__ import annotations

from typing import Any

from interlock.gateway.pool import EndpointPool
from interlock.gateway.pool.pool import PickerSettings
from interlock.gateway.pool.upkeep import INDEX_SHARE_OF_KV, MIN_BLOCKS_TO_MEASURE, PoolUpkeep


def no_client(url: str) -> Any:
    raise AssertionError("nothing is sent in these tests")


def test_the_limit_follows_prompt_tokens_per_block_sent() -> None:
    pool = EndpointPool("pool", lambda url: object(), PickerSettings())  # type: ignore[arg-type,return-value]
    pool.set_urls(["http://10.0.0.1:8000/v1"])
    upkeep = PoolUpkeep(pool, no_client, fallback_url="http://10.0.0.1:8000/v1")
    endpoint = pool.endpoints[0]
    read = upkeep._bound_prefix_index  # what each scrape does with the engine's two numbers

    read(endpoint, 1000.0, None)  # no cache size: nothing bounded
    assert pool.index.limit(endpoint.bit) is None
    read(endpoint, 1000.0, 8000.0)  # the first reading is the baseline
    endpoint.sent_blocks += MIN_BLOCKS_TO_MEASURE - 1
    read(endpoint, 1000.0 + 100 * (MIN_BLOCKS_TO_MEASURE - 1), 8000.0)  # too few blocks to tell yet
    assert pool.index.limit(endpoint.bit) is None
    endpoint.sent_blocks += 1
    read(endpoint, 1000.0 + 100 * MIN_BLOCKS_TO_MEASURE, 8000.0)  # the whole stretch: 100 tokens per block
    assert endpoint.tokens_per_block == 100.0
    assert pool.index.limit(endpoint.bit) == int(8000 * INDEX_SHARE_OF_KV / 100)

    # Another gateway now sends the engine as much again: the tokens per block this gateway sends double, so its
    # share of the cache (and of the index) shrinks, smoothed over readings.
    tokens = 1000.0 + 100 * MIN_BLOCKS_TO_MEASURE
    limits = []
    for _ in range(10):
        endpoint.sent_blocks += 20
        tokens += 20 * 200
        read(endpoint, tokens, 8000.0)
        limits.append(pool.index.limit(endpoint.bit))
    assert limits == sorted(limits, reverse=True)
    assert limits[-1] == int(8000 * INDEX_SHARE_OF_KV / endpoint.tokens_per_block) < 60
    assert 190 < (endpoint.tokens_per_block or 0) < 200

    read(endpoint, 50.0, 8000.0)  # the engine restarted: its counter went back; a new baseline, same limit
    assert endpoint.prompt_tokens_seen == 50.0
    assert endpoint.blocks_seen == endpoint.sent_blocks
    assert pool.index.limit(endpoint.bit) == limits[-1]


def test_a_reading_of_almost_no_tokens_per_block_sizes_nothing() -> None:
    """An engine's counter that barely moves while blocks were sent (broken, or hostile) must not size the index
    (nor overflow the arithmetic): the limit stays as it was."""
    pool = EndpointPool("pool", lambda url: object(), PickerSettings())  # type: ignore[arg-type,return-value]
    pool.set_urls(["http://10.0.0.1:8000/v1"])
    upkeep = PoolUpkeep(pool, no_client, fallback_url="http://10.0.0.1:8000/v1")
    endpoint = pool.endpoints[0]
    upkeep._bound_prefix_index(endpoint, 1000.0, 8000.0)
    endpoint.sent_blocks += 1000
    upkeep._bound_prefix_index(endpoint, 1000.0 + 1e-300, 8000.0)
    assert pool.index.limit(endpoint.bit) is None
    assert endpoint.tokens_per_block is None
