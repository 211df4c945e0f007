"""One store read of a job for every watcher that attaches to it at about the same moment.

N streams attach to one job (one Idempotency-Key, a chat UI reopening a conversation): each one
needs the job as it is now, right after it subscribed to the bus. Instead of N reads (and N
decoded copies), the callers that arrive together wait for one read and share its snapshot.

Never older than what the bus has published to a caller: a caller subscribes first, then asks
here, and only joins a read that has not started yet (it starts after the caller subscribed, so
everything published before the read is either in the snapshot or in the caller's queue). A
caller that comes while a read is already under way waits for the next one, which starts as soon
as the current one ends: a burst of arrivals costs at most two reads, whatever its size.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import Generic, TypeVar

T = TypeVar("T")


class _Read(Generic[T]):
    __slots__ = ("future",)

    def __init__(self, future: asyncio.Future[T]) -> None:
        self.future = future


class SharedReads(Generic[T]):
    def __init__(self, read: Callable[[str], Awaitable[T]]) -> None:
        self._read = read
        self._running: dict[str, _Read[T]] = {}  # started, not yet done
        self._next: dict[str, _Read[T]] = {}  # not started yet: joinable

    async def get(self, key: str) -> T:
        """The value read for `key` by a read that starts after this call."""
        pending = self._next.get(key)
        if pending is None:
            pending = _Read(asyncio.get_running_loop().create_future())
            self._next[key] = pending
            if key not in self._running:
                self._start(key)
            # else: started when the running read ends
        # shielded: a caller that goes away does not cancel the read the others wait for
        return await asyncio.shield(pending.future)

    def _start(self, key: str) -> None:
        pending = self._next[key]
        task = asyncio.get_running_loop().create_task(self._run(key, pending), name=f"shared-read-{key}")
        task.add_done_callback(_quiet)

    async def _run(self, key: str, read: _Read[T]) -> None:
        # from here on, callers that come wait for the next read
        if self._next.get(key) is read:
            del self._next[key]
        self._running[key] = read
        try:
            value = await self._read(key)
        except BaseException as exc:  # noqa: BLE001 - handed to every caller
            if not read.future.done():
                if isinstance(exc, asyncio.CancelledError):
                    read.future.cancel()
                else:
                    read.future.set_exception(exc)
                    read.future.exception()  # retrieved even if every caller has gone
            if not isinstance(exc, Exception):
                raise
        else:
            if not read.future.done():
                read.future.set_result(value)
        finally:
            if self._running.get(key) is read:
                del self._running[key]
            if key in self._next:
                self._start(key)


def _quiet(task: asyncio.Task[None]) -> None:
    if not task.cancelled():
        task.exception()
