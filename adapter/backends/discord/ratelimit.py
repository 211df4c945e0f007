"""Discord REST rate limits, learned from response headers.

Discord groups routes into buckets it names in `X-RateLimit-Bucket`; a bucket is further split by
the route's major parameter (the channel, guild or webhook id). Until a route's bucket is known,
the route itself stands in for it. Requests in one bucket are serialized while the bucket is
exhausted, so a burst of callers waits once for the reset instead of racing into 429s. A global
429 blocks every bucket of the limiter. Waits are never shortened: Cloudflare bans IPs that keep
hitting 429s.
"""

from __future__ import annotations

import asyncio
import re
import time
from collections.abc import Awaitable, Callable, Mapping
from typing import Any

import msgspec

from adapter.backends.discord.errors import RateLimitExhausted

_MAJOR_RESOURCES = frozenset({"channels", "guilds", "webhooks"})
_SNOWFLAKE = re.compile(r"^\d{5,}$")


def route_key(method: str, path: str) -> str:
    """`METHOD /path` with the major parameter kept and every other id replaced, so that all
    requests that share a limit share a key (`/channels/1/messages/2` -> `/channels/1/messages/:id`)."""
    parts = path.split("?", 1)[0].strip("/").split("/")
    out: list[str] = []
    for i, part in enumerate(parts):
        if i == 1 and parts[0] in _MAJOR_RESOURCES:
            out.append(part)
        elif i > 0 and parts[i - 1] == "reactions":
            out.append(":emoji")  # every emoji of a message shares the reaction limit
        elif _SNOWFLAKE.match(part):
            out.append(":id")
        else:
            out.append(part)
    return f"{method.upper()} /{'/'.join(out)}"


def _major_param(path: str) -> str:
    parts = path.split("?", 1)[0].strip("/").split("/")
    if len(parts) >= 2 and parts[0] in _MAJOR_RESOURCES:
        return f"{parts[0]}/{parts[1]}"
    return ""


class RateLimitStats(msgspec.Struct, kw_only=True):
    requests: int = 0  # requests let through
    rate_limited: int = 0  # 429 answers seen
    global_limited: int = 0  # of which global
    waits: list[float] = msgspec.field(default_factory=list)  # every sleep applied, seconds


class _Bucket:
    __slots__ = ("limit", "lock", "remaining", "reset_at", "window")

    def __init__(self) -> None:
        self.limit: int | None = None
        self.remaining: int | None = None  # None: unknown, let requests through
        self.reset_at = 0.0
        self.window = 0.0  # longest reset-after seen: a cautious guess of the window length
        self.lock = asyncio.Lock()

    def blocked_until(self, now: float) -> float:
        if self.remaining is not None and self.remaining <= 0 and self.reset_at > now:
            return self.reset_at
        return 0.0

    def take(self, now: float) -> None:
        if self.remaining is None:
            return
        if now >= self.reset_at:
            # A new window began without an answer telling us so: count it locally, so that
            # a burst sent before the next answer arrives still stops at the limit.
            self.remaining = self.limit  # unknown again if no limit was announced
            self.reset_at = now + self.window
        if self.remaining is not None:
            self.remaining -= 1


def _header_float(headers: Mapping[str, str], name: str) -> float | None:
    value = headers.get(name)
    if value is None:
        return None
    try:
        return float(value)
    except ValueError:
        return None


class RateLimiter:
    """Per-bucket and global limits for one token (one limiter per account).

    `clock` and `sleep` are injectable so tests can drive time; `max_wait` bounds how long a
    request may be held before `RateLimitExhausted` is raised instead (the caller decides
    whether to wait longer)."""

    def __init__(
        self,
        *,
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], Awaitable[Any]] = asyncio.sleep,
        max_wait: float = 60.0,
        default_retry_after: float = 1.0,
        min_retry_after: float = 0.05,
    ) -> None:
        self._clock = clock
        self._sleep = sleep
        self._max_wait = max_wait
        self._default_retry_after = default_retry_after
        self._min_retry_after = min_retry_after  # a 0 or missing value must not become a tight loop
        self._route_buckets: dict[str, str] = {}  # route key -> Discord bucket hash
        self._buckets: dict[str, _Bucket] = {}
        self._global_until = 0.0
        self.stats = RateLimitStats()

    def _bucket(self, method: str, path: str) -> _Bucket:
        route = route_key(method, path)
        bucket_hash = self._route_buckets.get(route)
        key = f"{bucket_hash}:{_major_param(path)}" if bucket_hash else route
        bucket = self._buckets.get(key)
        if bucket is None:
            bucket = self._buckets[key] = _Bucket()
        return bucket

    async def acquire(self, method: str, path: str) -> None:
        """Wait until a request to `path` may be sent, and count it against its bucket."""
        bucket = self._bucket(method, path)
        async with bucket.lock:
            while True:
                now = self._clock()
                until = max(self._global_until, bucket.blocked_until(now))
                if until <= now:
                    break
                wait = until - now
                if wait > self._max_wait:
                    raise RateLimitExhausted(
                        429, None, f"rate limited for another {wait:.1f}s", retry_after=wait
                    )
                self.stats.waits.append(wait)
                # Re-checked after the sleep: a timer may fire a hair early, and a global
                # limit may have arrived meanwhile.
                await self._sleep(wait)
            bucket.take(now)
            self.stats.requests += 1

    def update(
        self, method: str, path: str, status: int, headers: Mapping[str, str], body: Any
    ) -> float | None:
        """Learn from a response. Returns the wait Discord asked for when `status` is 429."""
        now = self._clock()
        bucket_hash = headers.get("x-ratelimit-bucket")
        if bucket_hash:
            self._route_buckets[route_key(method, path)] = bucket_hash
        bucket = self._bucket(method, path)
        remaining = _header_float(headers, "x-ratelimit-remaining")
        reset_after = _header_float(headers, "x-ratelimit-reset-after")
        if remaining is not None and reset_after is not None:
            limit = _header_float(headers, "x-ratelimit-limit")
            bucket.limit = int(limit) if limit is not None else bucket.limit
            bucket.remaining = int(remaining)
            bucket.reset_at = now + reset_after
            bucket.window = max(bucket.window, reset_after)
        if status != 429:
            return None

        retry_after: float | None = None
        is_global = False
        if isinstance(body, dict):
            value = body.get("retry_after")
            if isinstance(value, (int, float)):
                retry_after = float(value)
            is_global = body.get("global") is True
        if retry_after is None:
            retry_after = _header_float(headers, "retry-after")
        if retry_after is None:
            retry_after = self._default_retry_after
        retry_after = max(retry_after, self._min_retry_after)
        # A 429 that is not Discord's JSON (no body values, no bucket) comes from Cloudflare in
        # front of the API and applies to the whole IP.
        if not isinstance(body, dict) and not bucket_hash:
            is_global = True
        is_global = is_global or headers.get("x-ratelimit-global", "").lower() == "true"

        self.stats.rate_limited += 1
        if is_global:
            self.stats.global_limited += 1
            self._global_until = max(self._global_until, now + retry_after)
        else:
            bucket.remaining = 0
            bucket.reset_at = max(bucket.reset_at, now + retry_after)
        return retry_after
