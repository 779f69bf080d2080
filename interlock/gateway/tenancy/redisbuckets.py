"""Token buckets in Redis: the decisions of ``ratelimit.MemoryBuckets``, exact across gateway replicas.

One ``EVALSHA`` per request checks and takes from every bucket the request meets, atomically (Redis runs a script
alone). Time comes from Redis ``TIME`` inside the script, so replicas with skewed clocks agree. A bucket is a hash
``{v: level, t: microseconds}`` whose TTL is the time it takes to refill, so idle buckets vanish by themselves, and
the keys of one tenant share a hash tag (``{tenant}``) so they live on one slot. The usage debit after a response is
one more ``EVALSHA`` whose reply nobody waits for (the difference between the reservation taken at admission and
the real usage, usually a refund); it goes out on the same connection as this replica's next checks, so those see
it.

When Redis is unreachable or slow (``redis_timeout_s``), decisions fall back to in-memory buckets for a second at
a time (limits per replica instead of global), with one log line per outage: an unreachable limiter does not take
the gateway down with it.
"""

from __future__ import annotations

import hashlib
import logging
import time

from interlock.gateway.tenancy.ratelimit import Caps, Decision, MemoryBuckets
from interlock.gateway.tenancy.redisclient import RedisClient, RedisError, RedisUnavailable

__all__ = ["ACQUIRE_SCRIPT", "DEBIT_SCRIPT", "RedisBuckets"]

log = logging.getLogger("interlock.gateway.tenancy.ratelimit")

# KEYS: the request's buckets; ARGV: (capacity, cost) per key: cost 1 for a request bucket (which must hold one),
# -N for a token bucket (which only has to be positive, and gives up the reservation N when the request is admitted).
# Returns {allowed, refusing key index or 0, wait in µs, level of each key...}.
ACQUIRE_SCRIPT = b"""
if redis.replicate_commands then pcall(redis.replicate_commands) end
local clock = redis.call('TIME')
local now = tonumber(clock[1]) * 1000000 + tonumber(clock[2])
local n = #KEYS
local levels = {}
local refused = 0
local wait = 0
for i = 1, n do
  local cap = tonumber(ARGV[2 * i - 1])
  local cost = tonumber(ARGV[2 * i])
  local state = redis.call('HMGET', KEYS[i], 'v', 't')
  local level = cap
  if state[1] then
    level = math.min(cap, tonumber(state[1]) + (now - tonumber(state[2])) * cap / 60000000)
  end
  levels[i] = level
  local short = 0
  if cost > 0 then
    if level < cost then short = cost - level end
  elseif level <= 0 then
    short = 0.000001 - level
  end
  if cost < 0 then cost = -cost end
  if short > 0 then
    local us = math.ceil(short * 60000000 / cap)
    if us >= wait then
      wait = us
      refused = i
    end
  end
end
local out = {0, refused, wait}
if refused == 0 then
  out[1] = 1
  for i = 1, n do
    local cap = tonumber(ARGV[2 * i - 1])
    local cost = math.abs(tonumber(ARGV[2 * i]))
    if cost > 0 then
      local level = levels[i] - cost
      levels[i] = level
      redis.call('HSET', KEYS[i], 'v', string.format('%.17g', level), 't', string.format('%d', now))
      redis.call('PEXPIRE', KEYS[i], math.ceil((cap - level) * 60000 / cap) + 1000)
    end
  end
end
for i = 1, n do out[3 + i] = math.floor(levels[i]) end
return out
"""

# KEYS: token buckets; ARGV: (capacity, tokens) per key: tokens more to charge, or fewer (a negative number: the
# part of a reservation the request did not use), never above the capacity.
DEBIT_SCRIPT = b"""
if redis.replicate_commands then pcall(redis.replicate_commands) end
local clock = redis.call('TIME')
local now = tonumber(clock[1]) * 1000000 + tonumber(clock[2])
for i = 1, #KEYS do
  local cap = tonumber(ARGV[2 * i - 1])
  local used = tonumber(ARGV[2 * i])
  local state = redis.call('HMGET', KEYS[i], 'v', 't')
  local level = cap
  if state[1] then
    level = math.min(cap, tonumber(state[1]) + (now - tonumber(state[2])) * cap / 60000000)
  end
  level = math.min(cap, level - used)
  redis.call('HSET', KEYS[i], 'v', string.format('%.17g', level), 't', string.format('%d', now))
  redis.call('PEXPIRE', KEYS[i], math.ceil((cap - level) * 60000 / cap) + 1000)
end
return 0
"""

# Redis names a script by its SHA-1; no security depends on it.
_ACQUIRE_SHA = hashlib.sha1(ACQUIRE_SCRIPT, usedforsecurity=False).hexdigest().encode()
_DEBIT_SHA = hashlib.sha1(DEBIT_SCRIPT, usedforsecurity=False).hexdigest().encode()
_RETRY_AFTER_OUTAGE_S = 1.0
_SUFFIX = (b":req", b":tok", b":req", b":tok")


def _bulk(data: bytes) -> bytes:
    return b"$%d\r\n%s\r\n" % (len(data), data)


class RedisBuckets:
    """See the module docstring. ``fallback`` decides while Redis cannot."""

    def __init__(self, url: str, *, prefix: str = "interlock:rl:", timeout_s: float = 0.25) -> None:
        self.client = RedisClient(url, timeout_s=timeout_s, connect_timeout_s=max(timeout_s, 0.5))
        self.client.setup = [("SCRIPT", "LOAD", ACQUIRE_SCRIPT), ("SCRIPT", "LOAD", DEBIT_SCRIPT)]
        self.prefix = prefix.encode()
        self.fallback = MemoryBuckets()
        self.last_error: str | None = None
        self._down_until = 0.0
        self._keys: dict[tuple[str, str], tuple[bytes, ...]] = {}

    def _bulk_keys(self, tenant_id: str, route: str) -> tuple[bytes, ...]:
        """The four bucket keys of (tenant, route), RESP-encoded once."""
        keys = self._keys.get((tenant_id, route))
        if keys is None:
            tenant = b"%s{%s}" % (self.prefix, tenant_id.encode())
            routed = b"%s:route:%s" % (tenant, route.encode())
            keys = tuple(_bulk((tenant if slot < 2 else routed) + _SUFFIX[slot]) for slot in range(4))
            if len(self._keys) > 100_000:
                self._keys.clear()
            self._keys[(tenant_id, route)] = keys
        return keys

    def _command(self, sha: bytes, tenant_id: str, route: str, caps: Caps, values: tuple[int, int, int, int]) -> bytes:
        keys = self._bulk_keys(tenant_id, route)
        used = [slot for slot in range(4) if caps[slot]]
        parts = [b"*%d\r\n$7\r\nEVALSHA\r\n$40\r\n%s\r\n" % (3 + 3 * len(used), sha), _bulk(b"%d" % len(used))]
        parts.extend(keys[slot] for slot in used)
        for slot in used:
            parts.append(_bulk(b"%d" % caps[slot]))
            parts.append(_bulk(b"%d" % values[slot]))
        return b"".join(parts)

    async def acquire(self, tenant_id: str, route: str, caps: Caps, tokens: int = 0) -> Decision:
        """Admit or refuse; when admitted, one request and ``tokens`` (the reservation) are taken."""
        if self._down_until and time.monotonic() < self._down_until:
            return self.fallback.take(tenant_id, route, caps, tokens)
        command = self._command(_ACQUIRE_SHA, tenant_id, route, caps, (1, -tokens, 1, -tokens))
        try:
            reply = await self.client.call_raw(command)
        except (RedisUnavailable, RedisError) as exc:
            self._trip(exc)
            return self.fallback.take(tenant_id, route, caps, tokens)
        if self._down_until:
            self._recovered()
        allowed, refused_at, wait_us = reply[0], reply[1], reply[2]
        used = [slot for slot in range(4) if caps[slot]]
        remaining = [0, 0, 0, 0]
        for index, slot in enumerate(used):
            level = reply[3 + index]
            remaining[slot] = level if level > 0 else 0
        refused = used[refused_at - 1] if refused_at else -1
        return Decision(allowed == 1, refused, wait_us / 1_000_000, remaining)

    def debit(self, tenant_id: str, route: str, caps: Caps, tokens: int) -> None:
        """Charge ``tokens`` more (negative: refund) to the token buckets; nobody waits for the reply."""
        if not tokens or not (caps[1] or caps[3]):
            return
        token_caps = (0, caps[1], 0, caps[3])
        if self._down_until and time.monotonic() < self._down_until:
            self.fallback.debit(tenant_id, route, caps, tokens)
            return
        command = self._command(_DEBIT_SHA, tenant_id, route, token_caps, (0, tokens, 0, tokens))
        if not self.client.send_raw(command):
            self.fallback.debit(tenant_id, route, caps, tokens)

    @property
    def healthy(self) -> bool:
        """False while decisions come from memory after a failure (for a second at a time)."""
        return not (self._down_until and time.monotonic() < self._down_until)

    def trip(self, exc: Exception) -> None:
        """Redis failed (here or for the budget): decide from memory for a while."""
        self._trip(exc)

    def _trip(self, exc: Exception) -> None:
        message = f"{type(exc).__name__}: {exc}"
        if "NOSCRIPT" in message:  # the script cache was flushed: a new connection loads the scripts again
            self.client.reset()
        if not self._down_until:
            log.warning("rate limits fall back to per-replica memory buckets: Redis failed: %s", message)
        self.last_error = message
        self._down_until = time.monotonic() + _RETRY_AFTER_OUTAGE_S

    def _recovered(self) -> None:
        log.info("rate limits are back in Redis")
        self._down_until = 0.0
        self.last_error = None

    @property
    def status(self) -> dict[str, object]:
        healthy = not self._down_until
        return {"store": "redis", "healthy": healthy, "last_error": self.last_error}

    async def close(self) -> None:
        await self.client.close()
