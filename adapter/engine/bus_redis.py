"""Job snapshots across replicas: the in-process `JobBus`, plus one Redis stream between replicas.

With several replicas on one Redis, a job runs on the replica that holds its account, while its
watchers (SSE streams, `/v1/jobs/{id}` waits, chat, /mj polling) may be on any replica.
`RedisJobBus` is a `JobBus` (same `subscribe` / `unsubscribe` / `close_watchers` /
`add_listener` / `publish` / `closed`) whose snapshots also travel through Redis:

    <prefix>:events   stream   one entry per sent snapshot:
                               r = origin replica id, j = job id, d = msgpack Job (stores.codec)

`publish(job)` (synchronous, never blocks, never touches the network):
  * delivers to this replica's subscribers at once and calls the listeners - listeners (metrics,
    webhooks) see local events only, so each event is counted once, on the replica that made it;
  * queues the snapshot for a background sender. The queue holds at most one snapshot per job:
    a newer snapshot replaces a pending older one (newest wins - watchers want state, and
    `JobService.watch` coalesces the same way). A finished snapshot is never replaced by an
    unfinished one and never evicted; when more than `max_pending` jobs wait (Redis slow or
    down) the oldest pending *unfinished* snapshots are dropped. The sender writes batches with
    one pipeline of `XADD ... MAXLEN ~ <maxlen>`; a failed batch is put back (unless a newer
    snapshot of that job is pending) and retried with bounded backoff. `close()` flushes what
    is pending for up to `flush_timeout` seconds.

A reader task reads the stream with `XREAD BLOCK` and hands entries from *other* replicas to the
local subscribers of that job id (entries of jobs nobody here watches are skipped without being
decoded; its own entries are skipped, they were delivered locally). Listeners are not called for
remote events.

Why a stream rather than pub/sub
--------------------------------
Pub/sub is fire-and-forget: a message published while a replica's connection is down (a
restart of Redis, a network blip, a `CLIENT KILL`, the client's own reconnect) is simply gone,
and a watcher waiting for a job's final snapshot would wait for ever. A stream keeps the last
~`maxlen` entries, so the reader resumes with `XREAD` from the last id it has seen and gets
everything published during the gap, in order. It costs one bounded key (approximate trimming
keeps XADD O(1)) and a round trip per `block_ms` while idle.

Guarantees and limits:
  * Replicas that are up get every sent snapshot, in publication order per origin replica (one
    sender per replica, one stream). Intermediate snapshots of one job may be coalesced (on the
    sending side when Redis is slow; on the watching side by `JobService.watch`); a job's final
    snapshot is not dropped by this module.
  * Start: `start()` takes the stream's current last id, so everything published after `start()`
    returns is seen (no `$` race); earlier events are not replayed - watchers read the store
    when they subscribe (`JobService.watch` does).
  * Reconnect: reading resumes after the last id seen. If the gap was so long that the stream
    was trimmed past that id (more than ~`maxlen` events meanwhile), older entries are gone; the
    bus notices (the oldest entry is newer than the last id seen) and, when given `resync` (e.g.
    the store's `get`), re-reads every watched job and delivers it to its watchers.
  * At least once: a batch whose reply was lost is sent again, so a watcher may see the same
    snapshot twice in a row (harmless for state watchers).
  * A process that dies with snapshots still queued loses them (they are in the store, which
    watchers read on subscribe; recovery republishes the jobs it takes over).
  * The client must be made with `decode_responses=False` (the snapshot is binary) and a
    `socket_timeout` (if any) longer than `block_ms`. Redis Cluster is not supported (one key).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable
from typing import Any

import redis.asyncio as aioredis
import redis.exceptions as redis_errors

from adapter.domain.jobs import Job
from adapter.engine.bus import JobBus
from adapter.stores.base import StoreError
from adapter.stores.codec import decode_job, encode_job

log = logging.getLogger(__name__)

Resync = Callable[[str], Awaitable[Job | None]]

# what a lost or refused connection looks like from redis-py (plus the OS underneath it)
_REDIS_ERRORS = (redis_errors.RedisError, OSError)


def _str(value: bytes | str) -> str:
    return value.decode() if isinstance(value, bytes) else value


class RedisJobBus(JobBus):
    def __init__(
        self,
        redis: aioredis.Redis,
        prefix: str,
        replica_id: str,
        *,
        maxlen: int = 10_000,
        max_pending: int = 10_000,
        batch_size: int = 200,
        block_ms: int = 2_000,
        read_count: int = 500,
        backoff_initial: float = 0.05,
        backoff_max: float = 2.0,
        flush_timeout: float = 2.0,
        resync: Resync | None = None,
    ) -> None:
        super().__init__()
        self._redis = redis
        self.replica_id = replica_id
        self._rid = replica_id.encode()
        self.stream_key = f"{prefix}:events"
        self._maxlen = maxlen
        self._max_pending = max_pending
        self._batch_size = batch_size
        self._block_ms = block_ms
        self._read_count = read_count
        self._backoff_initial = backoff_initial
        self._backoff_max = backoff_max
        self._flush_timeout = flush_timeout
        self._resync = resync
        # job id -> newest unsent snapshot (insertion order = send order)
        self._pending: dict[str, Job] = {}
        self._wake = asyncio.Event()
        self._idle = asyncio.Event()  # set while nothing is pending or in flight
        self._idle.set()
        self._last_id: str | None = None  # last stream id read (or the start position)
        self._sender: asyncio.Task[None] | None = None
        self._reader: asyncio.Task[None] | None = None
        self._stopping = False
        # counters, for metrics and tests
        self.sent = 0
        self.dropped = 0
        self.received = 0
        self.reconnects = 0

    # --- lifecycle -----------------------------------------------------------------------------

    async def start(self) -> None:
        if self._sender is not None:
            return
        try:
            self._last_id = await self._stream_end()
        except _REDIS_ERRORS as exc:  # the reader finds the position once Redis answers
            log.warning("event stream %s: cannot read its position yet: %s", self.stream_key, exc)
        self._sender = asyncio.create_task(self._send_loop(), name=f"bus-sender-{self.replica_id}")
        self._reader = asyncio.create_task(self._read_loop(), name=f"bus-reader-{self.replica_id}")

    async def close(self) -> None:
        """Flush what is pending (for up to `flush_timeout` s), stop both tasks and tell the
        watchers no more snapshots will come from here."""
        if self._sender is not None and not self._sender.done() and not self._idle.is_set():
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._idle.wait(), self._flush_timeout)
            if self._pending:
                log.warning("event stream %s: %d snapshot(s) not sent at close", self.stream_key, len(self._pending))
        self._stopping = True
        tasks = [t for t in (self._sender, self._reader) if t is not None]
        # cancel until done: with redis-py 8.1 on Python 3.11 a single cancel of the reader
        # mid-XREAD was seen (rarely, after read errors) to leave it waiting in a new read
        while any(not t.done() for t in tasks):
            for task in tasks:
                task.cancel()
            await asyncio.wait(tasks, timeout=0.2)
        for task in tasks:
            if not task.cancelled() and task.exception() is not None:
                log.error("event stream %s: task failed", self.stream_key, exc_info=task.exception())
        self._sender = self._reader = None
        if not self.closed:
            self.close_watchers()

    # --- publishing ----------------------------------------------------------------------------

    def publish(self, job: Job) -> None:
        super().publish(job)  # local subscribers and listeners, at once
        if self._stopping:
            return
        pending = self._pending
        old = pending.get(job.id)
        if old is not None and old.status.finished and not job.status.finished:
            return  # never let an unfinished snapshot replace a final one
        pending[job.id] = job
        if old is None and len(pending) > self._max_pending:
            self._evict()
        self._idle.clear()
        self._wake.set()

    def _evict(self) -> None:
        excess = len(self._pending) - self._max_pending
        for job_id in [k for k, v in self._pending.items() if not v.status.finished][:excess]:
            del self._pending[job_id]
            self.dropped += 1

    async def _send_loop(self) -> None:
        delay = self._backoff_initial
        while True:
            if not self._pending:
                self._idle.set()
                self._wake.clear()
                await self._wake.wait()
                continue
            batch: list[Job] = []
            for job_id in list(self._pending)[: self._batch_size]:
                batch.append(self._pending.pop(job_id))
            try:
                pipe = self._redis.pipeline(transaction=False)
                for job in batch:
                    pipe.xadd(
                        self.stream_key,
                        {"r": self._rid, "j": job.id.encode(), "d": encode_job(job)},
                        maxlen=self._maxlen,
                        approximate=True,
                    )
                await pipe.execute()
            except _REDIS_ERRORS as exc:
                self._put_back(batch)
                log.warning("event stream %s: send failed (%s); retrying in %.2fs", self.stream_key, exc, delay)
                await asyncio.sleep(delay)
                delay = min(delay * 2, self._backoff_max)
                continue
            self.sent += len(batch)
            delay = self._backoff_initial

    def _put_back(self, batch: list[Job]) -> None:
        """A failed batch goes back to the front, except where a newer snapshot is pending."""
        back = {job.id: job for job in batch if job.id not in self._pending}
        back.update(self._pending)
        self._pending = back

    # --- reading -------------------------------------------------------------------------------

    async def _stream_end(self) -> str:
        last = await self._redis.xrevrange(self.stream_key, count=1)
        return _str(last[0][0]) if last else "0-0"

    async def _read_loop(self) -> None:
        delay = self._backoff_initial
        failed = False
        while True:
            try:
                if self._last_id is None:
                    self._last_id = await self._stream_end()
                elif failed:
                    await self._check_gap()
                failed = False
                reply = await self._redis.xread(
                    {self.stream_key: self._last_id}, count=self._read_count, block=self._block_ms
                )
            except _REDIS_ERRORS as exc:
                if not failed:
                    self.reconnects += 1
                failed = True
                log.warning("event stream %s: read failed (%s); retrying in %.2fs", self.stream_key, exc, delay)
                await asyncio.sleep(delay)
                delay = min(delay * 2, self._backoff_max)
                continue
            delay = self._backoff_initial
            for _key, entries in reply or ():
                for entry_id, fields in entries:
                    self._last_id = _str(entry_id)
                    self._deliver(fields)

    def _deliver(self, fields: dict[Any, Any]) -> None:
        if fields.get(b"r") == self._rid:
            return  # our own: delivered locally when published
        job_id = fields.get(b"j")
        subs = self._subs.get(_str(job_id)) if job_id is not None else None
        if not subs:
            return
        try:
            job = decode_job(fields[b"d"])
        except (StoreError, KeyError) as exc:
            log.warning("event stream %s: unreadable entry skipped: %s", self.stream_key, exc)
            return
        self.received += 1
        for q in list(subs):
            q.put_nowait(job)

    async def _check_gap(self) -> None:
        """After a failed read: were entries after our last id trimmed away meanwhile?"""
        assert self._last_id is not None
        first = await self._redis.xrange(self.stream_key, count=1)
        if not first or self._last_id == "0-0":
            return
        if _id_tuple(_str(first[0][0])) <= _id_tuple(self._last_id):
            return
        log.warning("event stream %s: entries lost while disconnected (trimmed); re-reading watched jobs",
                    self.stream_key)
        if self._resync is None:
            return
        for job_id in list(self._subs):
            try:
                job = await self._resync(job_id)
            except Exception as exc:  # a store hiccup: the next event of that job still comes
                log.warning("event stream %s: resync of %s failed: %s", self.stream_key, job_id, exc)
                continue
            if job is not None:
                for q in list(self._subs.get(job_id, ())):
                    q.put_nowait(job)


def _id_tuple(stream_id: str) -> tuple[int, int]:
    ms, _, seq = stream_id.partition("-")
    return int(ms), int(seq or 0)


__all__ = ["RedisJobBus", "Resync"]

