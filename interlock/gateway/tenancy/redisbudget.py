"""Monthly budgets shared by every gateway replica through Redis: reservations in flight and spend not yet in the
snapshot.

Why: each replica learns what others spent only when the control plane has ingested it and the next snapshot
arrives (seconds). Without a shared view, N replicas each let requests through against the same remaining budget,
and concurrent requests overrun it N-fold. With it, admission is one atomic check across replicas.

Per tenant and month (UTC, ``YYYY-MM``), one hash ``{prefix}{tenant}:budget:<month>`` holds:

- ``total``: a lower bound of the tenant's spend this month: every settled request's real cost, added by the
  replica that served it, and raised (never lowered) to what a replica knows for sure, its ``floor``: the
  snapshot's ``spent_usd`` (every gateway's events the control plane has ingested) plus that replica's own events
  the snapshot does not count yet. Both are lower bounds of the true spend, so their maximum is one too, and the
  floor seeds a new month's key, or one Redis lost, from the control plane's books.
- ``reserved``: the sum of the reservations of requests in flight, each also a field ``r:<id>`` and a member of
  the sorted set ``...:res`` scored by its expiry, so a replica killed mid-request does not hold its tenant's
  budget for ever: a reservation lapses at its request's deadline plus a minute.

``ADMIT`` (one ``EVALSHA``): drop lapsed reservations, raise ``total`` to the floor, and admit when
``total + reserved < budget``, adding the request's reservation (its worst case: input bound and output cap at the
route's highest prices). ``SETTLE`` (nobody waits for the reply): remove the reservation and add the real cost to
``total``. Every admitted request saw the total plus every other reservation in flight under the budget, and a
request costs at most its reservation, so the month's spend ends at most one reservation above the budget (the
request that crossed it), however many replicas and concurrent requests there are. A request whose answer is
longer than its reservation (no ``max_tokens`` and no ``maxOutputTokens`` on its model) can overrun by the
difference: see the README.

When Redis fails, ``Enforcer`` decides from the replica's own view (memory) as before, so an outage costs
precision across replicas, never availability.
"""

from __future__ import annotations

import hashlib
import os
import time
from dataclasses import dataclass

from interlock.gateway.tenancy.redisclient import RedisClient

__all__ = ["ADMIT_SCRIPT", "SETTLE_SCRIPT", "BudgetDecision", "RedisBudget", "month_of"]

# KEYS: budget hash, reservation zset. ARGV: floor, budget, reservation, id, lifetime ms, key ttl ms.
# Returns {admitted 0/1, total as a string, reserved as a string}.
ADMIT_SCRIPT = b"""
if redis.replicate_commands then pcall(redis.replicate_commands) end
local clock = redis.call('TIME')
local now = tonumber(clock[1]) * 1000 + math.floor(tonumber(clock[2]) / 1000)
local lapsed = redis.call('ZRANGEBYSCORE', KEYS[2], '-inf', now)
for _, id in ipairs(lapsed) do
  local amount = redis.call('HGET', KEYS[1], 'r:' .. id)
  if amount then
    redis.call('HDEL', KEYS[1], 'r:' .. id)
    redis.call('HINCRBYFLOAT', KEYS[1], 'reserved', -tonumber(amount))
  end
end
if #lapsed > 0 then redis.call('ZREMRANGEBYSCORE', KEYS[2], '-inf', now) end
local total = tonumber(redis.call('HGET', KEYS[1], 'total') or '0')
local floor = tonumber(ARGV[1])
if floor > total then
  total = floor
  redis.call('HSET', KEYS[1], 'total', ARGV[1])
end
local reserved = tonumber(redis.call('HGET', KEYS[1], 'reserved') or '0')
if reserved < 1e-12 then reserved = 0 end
if total + reserved >= tonumber(ARGV[2]) then
  return {0, string.format('%.17g', total), string.format('%.17g', reserved)}
end
local amount = tonumber(ARGV[3])
if amount > 0 then
  redis.call('HINCRBYFLOAT', KEYS[1], 'reserved', amount)
  redis.call('HSET', KEYS[1], 'r:' .. ARGV[4], ARGV[3])
  redis.call('ZADD', KEYS[2], now + tonumber(ARGV[5]), ARGV[4])
end
redis.call('PEXPIRE', KEYS[1], tonumber(ARGV[6]))
redis.call('PEXPIRE', KEYS[2], tonumber(ARGV[6]))
return {1, string.format('%.17g', total), string.format('%.17g', reserved)}
"""

# KEYS: budget hash, reservation zset. ARGV: id, real cost, key ttl ms.
SETTLE_SCRIPT = b"""
if redis.replicate_commands then pcall(redis.replicate_commands) end
local amount = redis.call('HGET', KEYS[1], 'r:' .. ARGV[1])
if amount then
  redis.call('HDEL', KEYS[1], 'r:' .. ARGV[1])
  redis.call('ZREM', KEYS[2], ARGV[1])
  redis.call('HINCRBYFLOAT', KEYS[1], 'reserved', -tonumber(amount))
end
if tonumber(ARGV[2]) > 0 then
  redis.call('HINCRBYFLOAT', KEYS[1], 'total', ARGV[2])
  redis.call('PEXPIRE', KEYS[1], tonumber(ARGV[3]))
end
return 0
"""

_ADMIT_SHA = hashlib.sha1(ADMIT_SCRIPT, usedforsecurity=False).hexdigest().encode()
_SETTLE_SHA = hashlib.sha1(SETTLE_SCRIPT, usedforsecurity=False).hexdigest().encode()
_KEY_TTL_MS = 40 * 24 * 3600 * 1000  # a month's key outlives the month
_LAPSE_MARGIN_S = 60.0


def month_of(now: float) -> str:
    return time.strftime("%Y-%m", time.gmtime(now))


def _bulk(data: bytes) -> bytes:
    return b"$%d\r\n%s\r\n" % (len(data), data)


def _num(value: float) -> bytes:
    return repr(float(value)).encode()


@dataclass(frozen=True, slots=True)
class BudgetDecision:
    admitted: bool
    total: float
    """The shared spend (lower bound) when decided."""
    reserved: float
    """What other requests in flight had reserved."""


class RedisBudget:
    """See the module docstring. Shares ``client`` (and its connection) with the rate-limit buckets."""

    def __init__(self, client: RedisClient, *, prefix: bytes) -> None:
        self.client = client
        self.client.setup.extend([("SCRIPT", "LOAD", ADMIT_SCRIPT), ("SCRIPT", "LOAD", SETTLE_SCRIPT)])
        self.prefix = prefix
        self._run = os.urandom(6).hex()
        self._next = 0

    def _keys(self, tenant_id: str, month: str) -> tuple[bytes, bytes]:
        base = b"%s{%s}:budget:%s" % (self.prefix, tenant_id.encode(), month.encode())
        return _bulk(base), _bulk(base + b":res")

    def reservation_id(self) -> str:
        self._next += 1
        return f"{self._run}{self._next:x}"

    async def admit(
        self, tenant_id: str, *, floor: float, budget: float, amount: float, ident: str, lifetime_s: float, now: float
    ) -> BudgetDecision:
        """Raises ``RedisUnavailable`` / ``RedisError`` when Redis cannot decide."""
        budget_key, res_key = self._keys(tenant_id, month_of(now))
        lifetime_ms = int((lifetime_s + _LAPSE_MARGIN_S) * 1000)
        command = b"".join(
            [
                b"*11\r\n$7\r\nEVALSHA\r\n$40\r\n%s\r\n$1\r\n2\r\n" % _ADMIT_SHA,
                budget_key,
                res_key,
                _bulk(_num(floor)),
                _bulk(_num(budget)),
                _bulk(_num(amount)),
                _bulk(ident.encode()),
                _bulk(b"%d" % lifetime_ms),
                _bulk(b"%d" % _KEY_TTL_MS),
            ]
        )
        reply = await self.client.call_raw(command)
        return BudgetDecision(reply[0] == 1, float(reply[1]), float(reply[2]))

    def settle(self, tenant_id: str, *, ident: str, cost: float, month: str) -> bool:
        """Release the reservation ``ident`` and add the real cost; False when there is no connection to send on."""
        budget_key, res_key = self._keys(tenant_id, month)
        command = b"".join(
            [
                b"*8\r\n$7\r\nEVALSHA\r\n$40\r\n%s\r\n$1\r\n2\r\n" % _SETTLE_SHA,
                budget_key,
                res_key,
                _bulk(ident.encode()),
                _bulk(_num(max(0.0, cost))),
                _bulk(b"%d" % _KEY_TTL_MS),
            ]
        )
        return self.client.send_raw(command)
