"""Prompt-prefix affinity: the request's prefix hashed in blocks, and a bounded index of which endpoint saw which.

An engine with prefix caching answers a prompt faster when it computed the same prefix recently (the same system
prompt, the earlier turns of the same conversation). The gateway cannot see the engines' caches, so it remembers
where it sent each prefix, as llm-d's approximate prefix scorer does.

The prefix is read from the bytes the gateway sends upstream, from the ``"messages"`` key on (so the model name and
any fields before it do not matter), in blocks of ``block_bytes``, up to ``max_blocks``: each block's hash chains
all blocks before it (a CRC-32 continued from block to block; whole blocks for the first 4 KB, a sample of each
later block), so a block matches only when everything before it matched too. Hashing the bytes (not tokens)
costs no tokenizer, and the upstream body is the same serialization for the same conversation: translation is
deterministic, and a pass-through client sends what it sent before.

``PrefixIndex`` keeps block hash -> endpoint bit mask in two generations of at most ``capacity`` entries each: when
the newer one fills up, the older is dropped, so memory is bounded and the least recently seen blocks go first
(a cheap approximation of LRU). A block found in the older generation is copied into the newer.

An engine's cache is much smaller than the index, though: it evicts a prefix long before the gateway forgets
sending it there. An index that never forgets sends a conversation to a pod that evicted it, and, since every pod
an app was ever spilled to stays one of its "homes", the apps spread over more pods than their prompts fit in, and
the hit rate falls the longer the pool runs (bench/routing: 88 % after 20 s, 77 % after 60 s). So, where the
engine's KV capacity is known (``set_limit``, from its metrics), each endpoint also keeps the blocks it was sent in
least-recently-sent order, bounded by that capacity, and the ones beyond it lose the endpoint's bit: the index
guesses the engine's LRU evictions. A request's blocks are touched last-first, so a prefix's head is the most
recent and its tail goes first, as an engine frees them.
"""

from __future__ import annotations

import zlib
from collections import OrderedDict
from collections.abc import Sequence

__all__ = ["PrefixIndex", "prefix_hashes"]

_MESSAGES = b'"messages"'


def prefix_hashes(
    body: bytes, block_bytes: int, max_blocks: int, *, full_bytes: int = 4096, sample_bytes: int = 32
) -> list[int]:
    """Chained hashes of the body's full blocks from its ``"messages"`` key (or its start), at most ``max_blocks``.

    The first ``full_bytes`` are hashed whole; each later block contributes only its last ``sample_bytes``. Hashing
    every byte of a long prompt costs more than the rest of the pick (10 us for 16 KB on the benchmark machine).
    Edits that tell conversations apart near the start (a user's name, a date in the system prompt) are seen
    exactly; further on, two conversations that part ways differ in every later sample (their text, or its
    offsets, differ from there on), so sampling misses only a same-length edit inside one late block, and then the
    guess is only slightly wrong: affinity is a hint.
    """
    start = body.find(_MESSAGES)
    if start < 0:
        start = 0
    end = min(len(body), start + block_bytes * max_blocks)
    view = memoryview(body)
    crc32 = zlib.crc32
    hashes: list[int] = []
    value = 0
    whole = start + full_bytes
    skip = block_bytes - sample_bytes
    for offset in range(start, end - block_bytes + 1, block_bytes):
        # CRC-32 continued over each block (or sample) is the CRC of all of them so far: the chain comes for free,
        # in C, without copying. Its collisions (32 bits) only cost a slightly wrong affinity guess.
        if offset < whole:
            value = crc32(view[offset : offset + block_bytes], value)
        else:
            value = crc32(view[offset + skip : offset + block_bytes], value)
        hashes.append(value)
    return hashes


class PrefixIndex:
    """Which endpoints (as bits) were sent each block; bounded to ``2 * capacity`` blocks, and, per endpoint with a
    limit, to that many blocks."""

    __slots__ = ("_limits", "_new", "_old", "_sent", "capacity")

    def __init__(self, capacity: int) -> None:
        self.capacity = capacity
        self._new: dict[int, int] = {}
        self._old: dict[int, int] = {}
        self._limits: dict[int, int] = {}  # bit -> most blocks the endpoint is believed to hold
        self._sent: dict[int, OrderedDict[int, None]] = {}  # bit -> its blocks, least recently sent first

    def __len__(self) -> int:
        return len(self._new) + len(self._old)

    def match(self, hashes: Sequence[int], candidates: int, depths: dict[int, int]) -> int:
        """For each endpoint bit in ``candidates``, how many leading blocks it has seen, into ``depths`` (by bit
        number, only for bits with at least one); return the mask of bits that matched at least one block."""
        new, old = self._new, self._old
        mask = candidates
        matched = 0
        for depth, h in enumerate(hashes):
            seen = new.get(h)
            if seen is None:
                seen = old.get(h, 0)
            here = seen & mask
            dropped = mask & ~here
            if depth:
                while dropped:
                    low = dropped & -dropped
                    depths[low.bit_length() - 1] = depth
                    dropped ^= low
            mask = here
            if not mask:
                return matched
            matched |= mask
        while mask:
            low = mask & -mask
            depths[low.bit_length() - 1] = len(hashes)
            mask ^= low
        return matched

    def add(self, hashes: Sequence[int], bit: int) -> None:
        """Remember that the endpoint with ``bit`` was sent these blocks."""
        new, old = self._new, self._old
        for h in hashes:
            seen = new.get(h)
            if seen is None:
                new[h] = old.get(h, 0) | bit
            elif not seen & bit:
                new[h] = seen | bit
        if len(new) > self.capacity:
            self._old, self._new = new, {}
        limit = self._limits.get(bit)
        if limit is not None:
            sent = self._sent[bit]
            touch = sent.move_to_end
            for h in reversed(hashes):
                if h in sent:
                    touch(h)
                else:
                    sent[h] = None
            if len(sent) > limit:
                self._trim(sent, limit, bit)

    def set_limit(self, bit: int, blocks: int | None) -> None:
        """Believe the endpoint with ``bit`` holds at most ``blocks`` of the blocks it was sent (None: no bound).
        Off the hot path (after a scrape). Blocks sent before the first limit are not tracked: they age out with
        the generations."""
        if blocks is None:
            self._limits.pop(bit, None)
            self._sent.pop(bit, None)
            return
        self._limits[bit] = max(1, min(blocks, 2 * self.capacity))
        self._trim(self._sent.setdefault(bit, OrderedDict()), self._limits[bit], bit)

    def limit(self, bit: int) -> int | None:
        return self._limits.get(bit)

    def _trim(self, sent: OrderedDict[int, None], limit: int, bit: int) -> None:
        """Drop the least recently sent blocks beyond ``limit``: the endpoint's bit goes from each."""
        tables, keep = (self._new, self._old), ~bit
        pop = sent.popitem
        while len(sent) > limit:
            h = pop(last=False)[0]
            for table in tables:
                seen = table.get(h, 0)
                if seen & bit:
                    if seen & keep:
                        table[h] = seen & keep
                    else:
                        del table[h]

    def forget(self, bit: int) -> None:
        """An endpoint went away: clear its bit (off the hot path, on discovery changes)."""
        self._limits.pop(bit, None)
        self._sent.pop(bit, None)
        keep = ~bit
        for table in (self._new, self._old):
            for h in [h for h, seen in table.items() if seen & bit]:
                left = table[h] & keep
                if left:
                    table[h] = left
                else:
                    del table[h]
