"""``kv_cache``: block chain hashes, prefix reuse, reference counts and LRU eviction from a prefix's tail."""

from __future__ import annotations

from interlock.mockprovider.kv_cache import KVCache, block_hashes


def test_block_hashes_chain_full_blocks_only() -> None:
    assert block_hashes(list(range(7)), 4) == block_hashes(list(range(4)), 4)  # the partial block has no hash
    a = block_hashes([1, 2, 3, 4, 5, 6, 7, 8], 4)
    b = block_hashes([9, 9, 9, 9, 5, 6, 7, 8], 4)
    assert len(a) == len(b) == 2
    assert a[1] != b[1]  # the same tokens after a different prefix are a different block
    assert block_hashes([], 4) == []


def test_a_finished_prompt_is_reused_by_the_next_that_starts_the_same_way() -> None:
    cache = KVCache(blocks=10, block_size=4)
    first = block_hashes(list(range(12)), 4)  # 3 blocks
    held = cache.allocate(first, private=1)
    assert (held.hit_blocks, cache.used) == (0, 4)
    shared = cache.allocate(first[:2], private=0)  # a running request's blocks are shared too
    assert (shared.hit_blocks, cache.used) == (2, 4)
    cache.release(shared)
    cache.release(held)
    assert cache.used == 0  # cached, but free
    other = block_hashes([*range(8), 99, 98, 97, 96], 4)
    again = cache.allocate(other, private=0)
    assert again.hit_blocks == 2
    assert cache.usage == 3 / 10


def test_eviction_takes_least_recently_used_blocks_tail_first() -> None:
    cache = KVCache(blocks=4, block_size=2)
    a = block_hashes([1, 1, 2, 2, 3, 3], 2)
    cache.release(cache.allocate(a, private=0))  # 3 cached blocks, 1 empty
    assert cache.fits([], private=4)  # the cached blocks can be evicted
    assert not cache.fits([], private=5)
    b = cache.allocate([], private=2)  # needs one eviction: a's last block goes first
    assert cache.cached_prefix(a) == 2
    cache.release(b)
    c = cache.allocate([], private=3)  # one more eviction: a's middle block
    assert cache.cached_prefix(a) == 1
    assert cache.usage == 3 / 4
    cache.release(c)
    c = cache.allocate([], private=4)  # the whole cache: a's prefix is gone
    assert cache.cached_prefix(a) == 0
    assert cache.usage == 1
    cache.release(c)


def test_held_blocks_are_never_evicted() -> None:
    cache = KVCache(blocks=3, block_size=2)
    a = block_hashes([1, 1, 2, 2], 2)
    held = cache.allocate(a, private=0)
    assert not cache.fits([], private=2)
    assert cache.fits(a, private=1)  # its prefix is held already: only one new block
    cache.release(held)
    assert cache.fits([], private=3)
