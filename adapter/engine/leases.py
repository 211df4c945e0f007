"""Account leases on Redis: each Midjourney account is driven by exactly one replica at a time.

Key layout, everything under `<prefix>:` (the same prefix as the Redis job store):

    lease:<account id>         string  "<replica id>|<token>|<since ms>", PX ttl; the holder
                                       renews it with a compare-and-pexpire script
    lease-epoch:<account id>   string  INCR counter: the fencing token of the next acquisition
                                       (strictly increasing per account across the cluster;
                                       never expires)
    replica:<replica id>       string  presence ("<started ms>"), PX ttl, refreshed every loop
                                       period; live replicas are found with SCAN

Every write is one Lua script (acquire = check + INCR epoch + SET PX; renew = compare-and-pexpire;
release = compare-and-delete), so no two replicas can both believe a write of theirs won. Like the
job store, a single Redis (or a primary with replicas) is assumed; Redis Cluster is not supported.

The loop (`start` / `close`), once per `period` (ttl / 3 by default):
  1. refresh this replica's presence key;
  2. renew every held lease in one script; a lease found with another value (or gone) is lost at
     once (`on_lost(account, "taken" | "expired")`);
  3. count live replicas (SCAN of presence keys) and read every lease (MGET);
     fair share = ceil(accounts / live replicas);
  4. rebalance: holding more than the share, or at least two more than the least-loaded other
     replica, releases the excess (newest first, `on_lost(account, "rebalanced")`), then waits
     `cooldown` before acquiring again, so the lease goes to the replica that needs it;
  5. acquire free leases (fresh token) while below the share and not above the least-loaded
     other replica (so a replica that just released does not take the lease straight back).
  A balanced spread (every count ceil or floor of the mean) triggers no release: no flapping.

Fencing: `lease_valid(account, token)` is true only while this replica holds that token AND its
local deadline has not passed. The deadline is the monotonic time at which the last successful
renewal (or the acquisition) was *sent*, plus ttl, minus `safety_margin`: Redis starts the PX
countdown after the command arrives, so the local deadline always falls before the key can expire
on the server, and a replica paused (GC, SIGSTOP) past it answers false on waking, before it has
run a single line of the loop. Limits: a Discord call already in flight when the deadline passes is
not recalled (check right before each call, keep calls short next to ttl); the margin must cover
the Redis server's clock running faster than ours over one ttl (negligible with NTP-slewed clocks);
all replicas must be configured with the same account ids (shares are computed from one's own
list).

Redis errors (refused, timeouts) never escape the loop: it logs, retries with a backoff bounded by
`max_backoff`, and a held lease whose renewal fails simply runs out at its local deadline
(`lease_valid` false, `on_lost(account, "expired")`).

Give the manager a client (connection pool) of its own: its commands then never queue behind the
application's, and a renewal is never late because of them.

Callbacks (`on_acquired(lease)`, `on_lost(account_id, reason)`) are awaited one at a time, in
order, by a dispatcher task of their own, so a slow callback never delays a renewal; an exception
is logged and the dispatcher carries on. `lease_valid` flips before the callback runs.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import math
import random
import re
import time
from collections.abc import Awaitable, Callable, Iterable, Sequence
from typing import Any

import msgspec
import redis.asyncio as aioredis
import redis.exceptions as redis_errors

from adapter.config import default_replica_id

log = logging.getLogger(__name__)

# reasons passed to on_lost
TAKEN = "taken"  # a renewal found another replica's value
EXPIRED = "expired"  # the key was gone, or the local deadline passed without a renewal
REBALANCED = "rebalanced"  # released so a less-loaded replica takes it
RELEASED = "released"  # release_all / close

_ACQUIRE = """
local cur = redis.call('GET', KEYS[1])
local me = ARGV[1] .. '|'
if cur and string.sub(cur, 1, #me) ~= me then
  return false
end
local token = redis.call('INCR', KEYS[2])
local value = me .. token .. '|' .. ARGV[3]
redis.call('SET', KEYS[1], value, 'PX', ARGV[2])
return value
"""
# a value of our own that we no longer hold locally (lost at its local deadline while Redis was
# slow) is taken over with a new token rather than left to run out

_RENEW = """
local out = {}
for i, key in ipairs(KEYS) do
  local cur = redis.call('GET', key)
  if cur == ARGV[i + 1] then
    redis.call('PEXPIRE', key, ARGV[1])
    out[i] = 1
  elseif cur then
    out[i] = cur
  else
    out[i] = 0
  end
end
return out
"""

_RELEASE = """
local n = 0
for i, key in ipairs(KEYS) do
  if redis.call('GET', key) == ARGV[i] then
    redis.call('DEL', key)
    n = n + 1
  end
end
return n
"""


class LeaseView(msgspec.Struct, frozen=True, kw_only=True):
    """One account's lease as stored in Redis."""

    account_id: str
    replica_id: str
    token: int
    since_ms: int  # wall-clock ms epoch of the acquisition


Lease = LeaseView  # what on_acquired receives: a lease this replica now holds


class _Held:
    __slots__ = ("deadline", "lease", "value")

    def __init__(self, lease: LeaseView, value: str, deadline: float) -> None:
        self.lease = lease
        self.value = value
        self.deadline = deadline


def _glob_escape(text: str) -> str:
    # a key prefix is operator-chosen text: keep SCAN's pattern characters literal
    return re.sub(r"([*?\[\]\\])", r"\\\1", text)


def _text(value: Any) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)


def parse_lease(account_id: str, value: bytes | str) -> LeaseView | None:
    """A lease key's value, or None when it is not one of ours."""
    parts = _text(value).split("|")
    if len(parts) != 3:
        return None
    try:
        return LeaseView(account_id=account_id, replica_id=parts[0], token=int(parts[1]), since_ms=int(parts[2]))
    except ValueError:
        return None


OnAcquired = Callable[[LeaseView], Awaitable[Any]]
OnLost = Callable[[str, str], Awaitable[Any]]


async def _ignore_acquired(lease: LeaseView) -> None:
    return None


async def _ignore_lost(account_id: str, reason: str) -> None:
    return None


class LeaseManager:
    """Holds this replica's fair share of account leases; see the module docstring."""

    def __init__(
        self,
        client: aioredis.Redis,
        *,
        prefix: str,
        replica_id: str | None = None,
        ttl_seconds: float = 5.0,
        period_seconds: float | None = None,
        safety_margin: float | None = None,
        cooldown_seconds: float | None = None,
        max_backoff: float | None = None,
        clock: Callable[[], float] = time.monotonic,
        wall_clock: Callable[[], float] = time.time,
    ) -> None:
        if not prefix:
            raise ValueError("redis key prefix must not be empty")
        replica_id = default_replica_id() if replica_id is None else replica_id
        if not replica_id or "|" in replica_id:
            raise ValueError(f"replica id must be non-empty and free of '|': {replica_id!r}")
        if ttl_seconds <= 0:
            raise ValueError("ttl_seconds must be positive")
        self.prefix = prefix
        self.replica_id = replica_id
        self.ttl = float(ttl_seconds)
        self.period = float(period_seconds) if period_seconds is not None else self.ttl / 3
        self.safety_margin = float(safety_margin) if safety_margin is not None else self.ttl / 5
        if not 0 <= self.safety_margin < self.ttl:
            raise ValueError("safety_margin must be in [0, ttl)")
        if not 0 < self.period < self.ttl - self.safety_margin:
            raise ValueError("period must be positive and shorter than ttl - safety_margin")
        self.cooldown = float(cooldown_seconds) if cooldown_seconds is not None else 2 * self.period
        self.max_backoff = float(max_backoff) if max_backoff is not None else max(self.period, self.ttl)
        self._client = client
        self._clock = clock
        self._wall = wall_clock
        self._ttl_ms = max(1, int(self.ttl * 1000))
        self._acquire = client.register_script(_ACQUIRE)
        self._renew = client.register_script(_RENEW)
        self._release = client.register_script(_RELEASE)
        self._accounts: list[str] = []
        self._held: dict[str, _Held] = {}
        self._view: dict[str, LeaseView] = {}
        self._live: set[str] = set()
        self._no_acquire_until = 0.0
        self._failures = 0
        self._task: asyncio.Task[None] | None = None
        self._dispatcher: asyncio.Task[None] | None = None
        self._events: asyncio.Queue[tuple[str, Any] | None] = asyncio.Queue()
        self._on_acquired: OnAcquired = _ignore_acquired
        self._on_lost: OnLost = _ignore_lost
        self._stopping = False
        self._wake = asyncio.Event()  # set by close / release_all: the loop stops sleeping
        self._started_ms = 0
        # counters for /metrics
        self.acquired = 0
        self.renewed = 0
        self.lost = 0
        self.released = 0
        self.handed_over = 0
        self.redis_errors = 0

    def __repr__(self) -> str:
        return f"LeaseManager(prefix={self.prefix!r}, replica_id={self.replica_id!r}, held={sorted(self._held)})"

    # --- keys ---------------------------------------------------------------------------------

    def _k(self, *parts: str) -> str:
        return ":".join((self.prefix, *parts))

    def lease_key(self, account_id: str) -> str:
        return self._k("lease", account_id)

    def epoch_key(self, account_id: str) -> str:
        return self._k("lease-epoch", account_id)

    def presence_key(self, replica_id: str | None = None) -> str:
        return self._k("replica", replica_id or self.replica_id)

    # --- what senders and the admin API ask ---------------------------------------------------

    def lease_valid(self, account_id: str, token: int) -> bool:
        """The check before every Discord interaction on `account_id` with fencing `token`."""
        held = self._held.get(account_id)
        return held is not None and held.lease.token == token and self._clock() < held.deadline

    def held(self) -> dict[str, LeaseView]:
        """The leases this replica holds and may still use (local deadline not passed)."""
        now = self._clock()
        return {a: h.lease for a, h in self._held.items() if now < h.deadline}

    def holders(self) -> dict[str, LeaseView]:
        """Every account's holder as last read from Redis (one loop period old at most while
        Redis answers), with this replica's own leases as it knows them right now."""
        view = {a: v for a, v in self._view.items() if v.replica_id != self.replica_id}
        view.update(self.held())
        return view

    def holder(self, account_id: str) -> LeaseView | None:
        """`holders().get(account_id)`, without building the whole map (asked per placement)."""
        held = self._held.get(account_id)
        if held is not None:
            return held.lease if self._clock() < held.deadline else None
        view = self._view.get(account_id)
        return view if view is not None and view.replica_id != self.replica_id else None

    def live_replicas(self) -> set[str]:
        return set(self._live)

    async def fetch_holders(self, account_ids: Iterable[str] | None = None) -> dict[str, LeaseView]:
        """Every account's holder read from Redis now (raises redis errors)."""
        accounts = list(self._accounts if account_ids is None else account_ids)
        if not accounts:
            return {}
        values = await self._client.mget([self.lease_key(a) for a in accounts])
        out: dict[str, LeaseView] = {}
        for account, value in zip(accounts, values, strict=True):
            if value is not None and (lease := parse_lease(account, value)) is not None:
                out[account] = lease
        return out

    # --- lifecycle ----------------------------------------------------------------------------

    def start(
        self,
        account_ids: Sequence[str],
        on_acquired: OnAcquired | None = None,
        on_lost: OnLost | None = None,
    ) -> None:
        """Start the loop (and the callback dispatcher) on the running event loop."""
        if self._task is not None:
            raise RuntimeError("lease manager already started")
        if len(set(account_ids)) != len(account_ids):
            raise ValueError("duplicate account ids")
        self._accounts = list(account_ids)
        self._on_acquired = on_acquired or _ignore_acquired
        self._on_lost = on_lost or _ignore_lost
        self._stopping = False
        self._started_ms = int(self._wall() * 1000)
        self._dispatcher = asyncio.create_task(self._dispatch(), name=f"leases-callbacks-{self.replica_id}")
        self._task = asyncio.create_task(self._loop(), name=f"leases-{self.replica_id}")

    async def close(self, *, release: bool = True, callback_timeout: float = 5.0) -> None:
        """Stop the loop. With `release` (the SIGTERM path) every held lease is handed back at
        once; without it they are dropped locally and run out by TTL in Redis (as a crash would).
        Pending callbacks get `callback_timeout` seconds to finish."""
        await self._stop_loop()
        if release:
            await self.release_all()
        else:
            for account in list(self._held):
                self._drop(account, RELEASED)
        dispatcher, self._dispatcher = self._dispatcher, None
        if dispatcher is not None:
            self._events.put_nowait(None)
            try:
                await asyncio.wait_for(dispatcher, callback_timeout)
            except (TimeoutError, asyncio.CancelledError):
                dispatcher.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await dispatcher

    async def release_all(self) -> int:
        """Compare-and-delete every held lease (and this replica's presence) so other replicas
        take them on their next loop, without waiting for the TTL. Local validity ends first.
        Stops the loop first (nothing is acquired afterwards; `close` still ends the callback
        dispatcher). Returns how many keys were deleted; never raises on Redis errors (the keys
        then run out by TTL)."""
        await self._stop_loop()
        held = {a: self._held[a].value for a in list(self._held)}
        for account in held:
            self._drop(account, RELEASED)
        deleted = 0
        try:
            async with asyncio.timeout(self.ttl):
                if held:
                    deleted = int(
                        await self._release(
                            keys=[self.lease_key(a) for a in held], args=list(held.values()), client=self._client
                        )
                    )
                await self._client.delete(self.presence_key())
        except (redis_errors.RedisError, OSError, TimeoutError) as exc:
            self.redis_errors += 1
            log.warning("leases: could not release %d lease(s) (they run out by TTL): %s", len(held), exc)
        self.released += len(held)
        return deleted

    async def _stop_loop(self) -> None:
        # Let the current pass finish (it is bounded by its own timeout) rather than cancel it
        # mid-command: redis-py cleans up a cancelled command under its pool lock, and a task
        # cancelled there has been seen to hang. Cancel only if the pass overruns.
        self._stopping = True
        self._wake.set()
        task, self._task = self._task, None
        if task is None or task is asyncio.current_task():
            return
        try:
            await asyncio.wait_for(asyncio.shield(task), self.ttl + 1)
        except TimeoutError:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task

    # --- the loop -----------------------------------------------------------------------------

    async def _loop(self) -> None:
        while not self._stopping:
            ok = await self._step()
            if ok:
                self._failures = 0
                delay = self.period
            else:
                self._failures += 1
                delay = min(self.period * 2 ** (self._failures - 1), self.max_backoff)
            # a little jitter keeps replicas started together from ticking in lockstep
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wake.wait(), delay * random.uniform(0.9, 1.0))

    async def _step(self) -> bool:
        """One pass; False when Redis failed. Never raises (but CancelledError)."""
        self._expire_local()
        try:
            async with asyncio.timeout(max(self.period, self.ttl - self.safety_margin)):
                await self._tick()
            return True
        except (redis_errors.RedisError, OSError, TimeoutError) as exc:
            self.redis_errors += 1
            level = logging.WARNING if self._failures == 0 else logging.DEBUG
            log.log(level, "leases: redis error (retrying, %d failure(s) so far): %r", self._failures + 1, exc)
        except Exception:
            self.redis_errors += 1
            log.exception("leases: unexpected error in the lease loop (retrying)")
        finally:
            self._expire_local()
        return False

    def _expire_local(self) -> None:
        now = self._clock()
        for account, held in list(self._held.items()):
            if now >= held.deadline:
                self.lost += 1
                self._drop(account, EXPIRED)

    async def _tick(self) -> None:
        client = self._client
        # presence first: it then runs out no later than the leases renewed below
        await client.set(self.presence_key(), str(self._started_ms), px=self._ttl_ms)
        await self._renew_held()
        self._live = await self._scan_live()
        self._live.add(self.replica_id)
        self._view = await self.fetch_holders()
        if self._stopping:
            return
        now = self._clock()
        counts = dict.fromkeys(self._live, 0)
        for account, lease in self._view.items():
            if lease.replica_id in counts and lease.replica_id != self.replica_id:
                counts[lease.replica_id] += 1
        counts[self.replica_id] = len(self._held)
        others = [c for r, c in counts.items() if r != self.replica_id]
        min_other = min(others) if others else None
        share = math.ceil(len(self._accounts) / len(self._live)) if self._accounts else 0
        mine = len(self._held)
        excess = 0
        if min_other is not None:
            if mine > share:
                excess = mine - share
            elif mine - min_other >= 2:
                excess = 1
        if excess:
            await self._hand_over(excess)
            self._no_acquire_until = now + self.cooldown
            return
        if now < self._no_acquire_until:
            return
        free = [
            a
            for a in self._accounts
            if a not in self._held and (a not in self._view or self._view[a].replica_id == self.replica_id)
        ]
        random.shuffle(free)
        for account in free:
            if len(self._held) >= share or (min_other is not None and len(self._held) > min_other):
                break
            await self._try_acquire(account)

    async def _renew_held(self) -> None:
        if not self._held:
            return
        accounts = list(self._held)
        values = [self._held[a].value for a in accounts]
        sent = self._clock()
        results = await self._renew(
            keys=[self.lease_key(a) for a in accounts], args=[self._ttl_ms, *values], client=self._client
        )
        deadline = sent + self.ttl - self.safety_margin
        for account, value, result in zip(accounts, values, results, strict=True):
            held = self._held.get(account)
            if held is None or held.value != value:
                continue  # dropped meanwhile (local deadline passed while the call was out)
            if result == 1:
                held.deadline = deadline
                self.renewed += 1
            else:
                self.lost += 1
                self._drop(account, TAKEN if result != 0 else EXPIRED)

    async def _scan_live(self) -> set[str]:
        start = len(self._k("replica", ""))
        pattern = _glob_escape(self._k("replica", "")) + "*"
        live: set[str] = set()
        async for key in self._client.scan_iter(match=pattern, count=1000):
            live.add(_text(key)[start:])
        return live

    async def _try_acquire(self, account: str) -> None:
        since_ms = int(self._wall() * 1000)
        sent = self._clock()
        value = await self._acquire(
            keys=[self.lease_key(account), self.epoch_key(account)],
            args=[self.replica_id, self._ttl_ms, since_ms],
            client=self._client,
        )
        if value is None or self._stopping:
            if value is not None:  # closing meanwhile: give it straight back
                await self._release(keys=[self.lease_key(account)], args=[value], client=self._client)
            return
        value = _text(value)
        lease = parse_lease(account, value)
        assert lease is not None
        self._held[account] = _Held(lease, value, sent + self.ttl - self.safety_margin)
        self._view[account] = lease
        self.acquired += 1
        self._events.put_nowait(("acquired", lease))

    async def _hand_over(self, count: int) -> None:
        # the newest leases go: long-held accounts keep their (warm) sessions
        newest = sorted(self._held, key=lambda a: (self._held[a].lease.since_ms, self._held[a].lease.token))
        victims = {a: self._held[a].value for a in newest[-count:]}
        for account in victims:
            self._drop(account, REBALANCED)  # not valid any more before the key goes
        self.handed_over += len(victims)
        await self._release(keys=[self.lease_key(a) for a in victims], args=list(victims.values()), client=self._client)
        for account in victims:
            self._view.pop(account, None)

    def _drop(self, account: str, reason: str) -> None:
        if self._held.pop(account, None) is not None:
            self._events.put_nowait(("lost", (account, reason)))

    async def _dispatch(self) -> None:
        while True:
            event = await self._events.get()
            if event is None:
                return
            kind, payload = event
            try:
                if kind == "acquired":
                    await self._on_acquired(payload)
                else:
                    await self._on_lost(*payload)
            except asyncio.CancelledError:
                raise
            except Exception:
                log.exception("leases: %s callback failed for %r", kind, payload)
