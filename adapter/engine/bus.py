"""In-process fan-out of job snapshots to watchers (SSE streams, webhooks, waiters)."""

from __future__ import annotations

import asyncio
from collections import defaultdict
from collections.abc import Callable

from adapter.domain.jobs import Job

JobListener = Callable[[Job], None]


class JobBus:
    def __init__(self) -> None:
        self._subs: dict[str, set[asyncio.Queue[Job | None]]] = defaultdict(set)
        self._listeners: list[JobListener] = []
        self.closed = False

    def subscribe(self, job_id: str) -> asyncio.Queue[Job | None]:
        """A queue of the job's snapshots; None in it means the service is shutting down."""
        q: asyncio.Queue[Job | None] = asyncio.Queue()
        if self.closed:
            q.put_nowait(None)
        self._subs[job_id].add(q)
        return q

    def close_watchers(self) -> None:
        """Tell every watcher (now and later) that no more snapshots will come from here."""
        self.closed = True
        for subs in self._subs.values():
            for q in subs:
                q.put_nowait(None)

    def unsubscribe(self, job_id: str, q: asyncio.Queue[Job | None]) -> None:
        subs = self._subs.get(job_id)
        if subs is not None:
            subs.discard(q)
            if not subs:
                del self._subs[job_id]

    def add_listener(self, listener: JobListener) -> None:
        """Called with every published snapshot (metrics, webhooks)."""
        self._listeners.append(listener)

    def publish(self, job: Job) -> None:
        for q in self._subs.get(job.id, ()):
            q.put_nowait(job)
        for listener in self._listeners:
            listener(job)
