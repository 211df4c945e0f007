"""Retention: finished jobs older than the configured age go, with their images and webhook records.

Opt-in (`retention_days`); without it nothing is ever deleted. Every `interval_seconds` (the
first pass shortly after start) one pass runs, in bounded batches:

1. the ids of jobs that finished before the cut-off, oldest first;
2. their images, THEN their records: a crash in between leaves a record whose images answer 404,
   never files that no record points to (which nothing would ever delete);
3. done / dead webhook outbox items created before the cut-off.

A failing pass is logged and the loop goes on; `close()` stops it. Several replicas on one Redis
may each run a sweeper: every step is idempotent and a job is deleted (and counted) once.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable, Sequence

import msgspec

from adapter.domain.jobs import now_ms
from adapter.media.store import ImageStore
from adapter.stores.base import JobStore

log = logging.getLogger(__name__)

DAY_SECONDS = 86_400.0
FIRST_PASS_DELAY_SECONDS = 5.0  # after start: let recovery and account connects go first


class RetentionReport(msgspec.Struct, kw_only=True):
    """What one pass did."""

    jobs_deleted: int = 0
    image_failures: int = 0  # jobs kept for the next pass because their images could not go
    outbox_purged: int = 0


class RetentionSweeper:
    def __init__(
        self,
        store: JobStore,
        images: ImageStore,
        *,
        retention_seconds: float,
        interval_seconds: float = 3600.0,
        batch_size: int = 200,
        first_delay_seconds: float | None = None,
        clock: Callable[[], int] = now_ms,
    ) -> None:
        if not retention_seconds > 0 or not interval_seconds > 0 or batch_size < 1:
            raise ValueError("retention_seconds and interval_seconds must be > 0, batch_size >= 1")
        self.store = store
        self.images = images
        self.retention_ms = int(retention_seconds * 1000)
        self.interval = interval_seconds
        self.batch_size = batch_size
        self.first_delay = (
            min(FIRST_PASS_DELAY_SECONDS, interval_seconds) if first_delay_seconds is None else first_delay_seconds
        )
        self._clock = clock
        self._task: asyncio.Task[None] | None = None

    # --- lifecycle ----------------------------------------------------------------------------

    def start(self) -> None:
        if self._task is None:
            self._task = asyncio.create_task(self._loop(), name="retention-sweeper")

    async def close(self) -> None:
        task, self._task = self._task, None
        if task is not None:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task

    async def _loop(self) -> None:
        await asyncio.sleep(self.first_delay)
        while True:
            try:
                await self.sweep()
            except Exception:
                log.exception("retention: pass failed; trying again in %g s", self.interval)
            await asyncio.sleep(self.interval)

    # --- one pass -----------------------------------------------------------------------------

    async def sweep(self) -> RetentionReport:
        """One full pass with the cut-off taken now."""
        cutoff = self._clock() - self.retention_ms
        report = RetentionReport()
        kept: set[str] = set()  # jobs whose images would not go: skipped for the rest of the pass
        while True:
            limit = self.batch_size + len(kept)
            ids = await self.store.list_expired(cutoff, limit)
            batch = [i for i in ids if i not in kept]
            if not batch:
                break
            deleted, failed = await self._delete_batch(batch)
            report.jobs_deleted += deleted
            report.image_failures += len(failed)
            kept.update(failed)
            # Stop when the list is exhausted, or after a batch's worth of failures: then the
            # image store is likely broken, and the next pass tries again (the listing stays
            # bounded by twice the batch size).
            if len(ids) < limit or len(kept) >= self.batch_size:
                break
        report.outbox_purged = await self.store.outbox_purge(cutoff)
        if report.jobs_deleted or report.image_failures or report.outbox_purged:
            log.info(
                "retention: deleted %d jobs (with their images) and %d webhook records older than %g days%s",
                report.jobs_deleted,
                report.outbox_purged,
                self.retention_ms / 1000 / DAY_SECONDS,
                f"; kept {report.image_failures} whose images could not be deleted" if report.image_failures else "",
            )
        else:
            log.debug("retention: nothing to delete")
        return report

    async def _delete_batch(self, ids: Sequence[str]) -> tuple[int, list[str]]:
        gone: list[str] = []
        failed: list[str] = []
        for job_id in ids:
            (gone if await self._delete_images(job_id) else failed).append(job_id)
        deleted = await self.store.delete_jobs(gone) if gone else 0
        # Again, now that no record points at the folder: a request that was still writing a
        # converted copy for one of these jobs a moment ago must not leave it behind.
        for job_id in gone:
            await self._delete_images(job_id)
        return deleted, failed

    async def _delete_images(self, job_id: str) -> bool:
        try:
            await self.images.delete_job(job_id)
        except ValueError:
            return True  # not a key-safe id: the image store never stored anything under it
        except Exception as exc:
            log.warning("retention: cannot delete the images of job %s (kept for the next pass): %s", job_id, exc)
            return False
        return True
