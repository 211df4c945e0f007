"""Images just stored, handed to their first reader instead of read back from the store.

A job's result images are in memory when the ingester stores them, and an answer that carries
their bytes (`b64_json`) asks for them moments later; reading them back costs a file read each (a
disk read: big files are written past the page cache, see store.py) or a GET from a bucket. So
the ingester offers them here, per store, and the reader takes each once.

Bounded, for the answers that never ask (`url` answers, nobody watching): at most `max_bytes`
are held (the oldest dropped first), none for longer than `max_age` seconds, and an image is
held by its first taker only, which keeps it (or not) by its own bounds. Event loop only: offers
and takes come from coroutines of one loop.
"""

from __future__ import annotations

import asyncio
import time
import weakref
from collections import OrderedDict
from collections.abc import Callable
from typing import Any

from adapter.media.store import StoredImage

_BY_STORE: weakref.WeakKeyDictionary[Any, FreshImages] = weakref.WeakKeyDictionary()


class FreshImages:
    def __init__(
        self, *, max_bytes: int = 32 * 1024 * 1024, max_age: float = 5.0, clock: Callable[[], float] = time.monotonic
    ) -> None:
        self.max_bytes = max_bytes
        self.max_age = max_age
        self._clock = clock
        self._held: OrderedDict[str, tuple[StoredImage, float]] = OrderedDict()  # key -> (image, offered at)
        self._size = 0
        self._sweep: tuple[asyncio.AbstractEventLoop, asyncio.TimerHandle] | None = None
        self.taken = 0  # how many reads were spared (tests and metrics)

    @classmethod
    def for_store(cls, store: object) -> FreshImages:
        """The one instance for this image store (created on first use)."""
        fresh = _BY_STORE.get(store)
        if fresh is None:
            fresh = _BY_STORE[store] = cls()
        return fresh

    @property
    def held_bytes(self) -> int:
        return self._size

    def offer(self, key: str, data: bytes, content_type: str) -> None:
        """`data`, just stored under `key`, for whoever asks first within `max_age` seconds."""
        if len(data) > self.max_bytes or key in self._held:
            return
        self._expire(self._clock())
        self._held[key] = (StoredImage(data=data, content_type=content_type), self._clock())
        self._size += len(data)
        while self._size > self.max_bytes:
            self._drop(next(iter(self._held)))
        self._schedule()

    def take(self, key: str) -> StoredImage | None:
        """The image stored under `key`, if it was offered and not yet taken or dropped."""
        self._expire(self._clock())
        held = self._held.pop(key, None)
        if held is None:
            return None
        self._size -= len(held[0].data)
        self.taken += 1
        return held[0]

    def _drop(self, key: str) -> None:
        image, _ = self._held.pop(key)
        self._size -= len(image.data)

    def _expire(self, now: float) -> None:
        while self._held:
            key, (_, offered) = next(iter(self._held.items()))
            if offered + self.max_age > now:
                return
            self._drop(key)

    def _schedule(self) -> None:
        """A sweep when the oldest image's time is up: an idle server keeps nothing past max_age."""
        loop = asyncio.get_running_loop()
        if not self._held or (self._sweep is not None and self._sweep[0] is loop):
            return
        _, offered = next(iter(self._held.values()))
        self._sweep = (loop, loop.call_later(max(0.0, offered + self.max_age - self._clock()), self._on_timer))

    def _on_timer(self) -> None:
        self._sweep = None
        self._expire(self._clock())
        self._schedule()
