"""Discord-style snowflakes: used as interaction nonces and by the simulator for every id."""

from __future__ import annotations

import itertools
import threading
import time

DISCORD_EPOCH_MS = 1420070400000


class SnowflakeGenerator:
    """Monotonic snowflakes (ms timestamp << 22 | worker << 17 | increment).

    Nonces must be unique per interaction even when two are made in the same millisecond,
    so the increment carries across calls and the timestamp never goes backwards.
    """

    def __init__(self, worker: int = 1) -> None:
        self._worker = worker & 0x1F
        self._lock = threading.Lock()
        self._last_ms = 0
        self._last_inc = -1
        self._counter = itertools.count()

    def next(self) -> str:
        with self._lock:
            now = max(int(time.time() * 1000) - DISCORD_EPOCH_MS, self._last_ms)
            inc = next(self._counter) & 0x1FFFF
            if now == self._last_ms and inc <= self._last_inc:
                # the increment wrapped within this millisecond: borrow the next one so the
                # ids keep growing
                now += 1
            self._last_ms, self._last_inc = now, inc
            return str((now << 22) | (self._worker << 17) | inc)


def snowflake_time_ms(snowflake: str | int) -> int:
    return (int(snowflake) >> 22) + DISCORD_EPOCH_MS


_default = SnowflakeGenerator()


def new_snowflake() -> str:
    return _default.next()
