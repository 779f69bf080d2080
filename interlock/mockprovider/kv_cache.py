"""A paged KV cache with prefix reuse, as vLLM's automatic prefix caching keeps it: blocks, chain hashes, LRU.

A prompt is cut into blocks of ``block_size`` tokens; each full block is named by the hash of its tokens and of
the block before it (``block_hashes``), so two prompts share a block only when they share everything up to it.
A running request holds its blocks (a reference each); a finished request's full prompt blocks stay in the cache,
unreferenced, and the next prompt that starts the same way reuses them instead of computing them again (a prefix
hit). Unreferenced blocks are evicted least recently used first when new blocks are needed. Partial blocks and the
blocks an answer grows into are not reusable (vLLM caches full generated blocks too; the mock's answers are not
worth reusing, so it does not).

Usage is the fraction of blocks held by running requests, vLLM's ``kv_cache_usage_perc``: cached but unreferenced
blocks are free memory that happens to hold something useful.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Sequence
from dataclasses import dataclass

__all__ = ["Allocation", "KVCache", "block_hashes"]


def block_hashes(tokens: Sequence[int], block_size: int) -> list[int]:
    """The chain hash of each full block of ``tokens``; the last, partial block has none."""
    hashes: list[int] = []
    parent = 0
    for start in range(0, len(tokens) - block_size + 1, block_size):
        parent = hash((parent, tuple(tokens[start : start + block_size])))
        hashes.append(parent)
    return hashes


@dataclass(slots=True)
class Allocation:
    """What one running request holds: its reused and new hashed blocks, and its private blocks."""

    hashed: list[int]
    private: int
    hit_blocks: int


class KVCache:
    """``blocks`` blocks of ``block_size`` tokens. Not thread-safe; one event loop drives it."""

    def __init__(self, blocks: int, block_size: int) -> None:
        self.blocks = max(1, blocks)
        self.block_size = block_size
        self._refs: dict[int, int] = {}  # every cached hashed block -> running requests holding it
        self._lru: OrderedDict[int, None] = OrderedDict()  # cached blocks no one holds, oldest first
        self._private = 0  # blocks held that have no hash (partial prompt blocks, answers)

    @property
    def used(self) -> int:
        """Blocks held by running requests."""
        return len(self._refs) - len(self._lru) + self._private

    @property
    def usage(self) -> float:
        return min(1.0, self.used / self.blocks)

    def cached_prefix(self, hashes: Sequence[int]) -> int:
        """How many leading blocks of ``hashes`` the cache holds (in use or not)."""
        hits = 0
        for h in hashes:
            if h not in self._refs:
                break
            hits += 1
        return hits

    def fits(self, hashes: Sequence[int], private: int) -> bool:
        """Whether the blocks a request needs beyond its prefix hit can be had now, evicting if need be."""
        hits = self.cached_prefix(hashes)
        reused_idle = sum(1 for h in hashes[:hits] if h in self._lru)
        free = self.blocks - len(self._refs) - self._private + len(self._lru) - reused_idle
        return len(hashes) - hits + private <= free

    def allocate(self, hashes: Sequence[int], private: int) -> Allocation:
        """Take the request's blocks: references on its cached prefix, new blocks (evicting LRU) for the rest.

        May go over capacity when the caller admits a request larger than the cache alone; usage is capped at 1.
        """
        hits = self.cached_prefix(hashes)
        for h in hashes[:hits]:
            if self._refs[h] == 0:
                del self._lru[h]
            self._refs[h] += 1
        new = list(hashes[hits:])
        self._evict(len(new) + private)
        for h in new:
            self._refs[h] = self._refs.get(h, 0) + 1
        self._private += private
        return Allocation(list(hashes), private, hits)

    def release(self, allocation: Allocation) -> None:
        """The request finished: its hashed blocks stay cached (now most recently used), its private ones free.

        The prompt's last blocks go into the LRU order first, so eviction eats a prefix from its tail, as vLLM's.
        """
        for h in reversed(allocation.hashed):
            refs = self._refs[h] - 1
            self._refs[h] = refs
            if refs == 0:
                self._lru[h] = None
        self._private -= allocation.private
        allocation.hashed, allocation.private = [], 0

    def _evict(self, needed: int) -> None:
        empty = self.blocks - len(self._refs) - self._private  # blocks holding nothing
        while empty < needed and self._lru:
            h, _ = self._lru.popitem(last=False)
            del self._refs[h]
            empty += 1
