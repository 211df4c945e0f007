"""Progress writes are coalesced (issue 13, a lighter store path): watchers hear every event at
once, the store gets the latest state at most every PROGRESS_WRITE_EVERY seconds, and what
recovery and cancel read is durable before it is published."""

from __future__ import annotations

import asyncio
import sys
from collections.abc import AsyncIterator
from pathlib import Path

import msgspec
import pytest

sys.path.insert(0, str(Path(__file__).parent))
from fake_account import FakeAccount, data_url, grid_png  # noqa: E402

from adapter.backends.base import BeforeSend, EventSink, JobEvent, JobOutput, Operation  # noqa: E402
from adapter.domain.actions import Mode  # noqa: E402
from adapter.domain.banned import build_banned_words  # noqa: E402
from adapter.domain.jobs import Job, JobStatus  # noqa: E402
from adapter.engine import service as service_module  # noqa: E402
from adapter.engine.results import ResultIngester  # noqa: E402
from adapter.engine.scheduler import Scheduler  # noqa: E402
from adapter.engine.service import JobService  # noqa: E402
from adapter.engine.specs import RequestMeta, SubmitSpec  # noqa: E402
from adapter.media.fetch import FetchPolicy, ImageFetcher  # noqa: E402
from adapter.media.store import LocalImageStore  # noqa: E402
from adapter.stores.base import ExpectStatus  # noqa: E402
from adapter.stores.sqlite import SqliteJobStore  # noqa: E402

WAIT = 10.0
STEPS = 30


class CountingStore(SqliteJobStore):
    def __init__(self, path: Path) -> None:
        super().__init__(path)
        self.updates: list[Job] = []

    async def update(self, job: Job, *, expect_status: ExpectStatus = None) -> bool:
        self.updates.append(msgspec.structs.replace(job))
        return await super().update(job, expect_status=expect_status)


class SteppingAccount(FakeAccount):
    """Many progress steps (each with a preview), the progress message moving once midway, then
    a gate before the result. After a change that recovery reads it waits until the store has
    it (so the steps that follow are plain progress), as Midjourney's seconds between events
    would."""

    def __init__(self) -> None:
        super().__init__()
        self.gate = asyncio.Event()
        self.stepped = asyncio.Event()
        self.store: SqliteJobStore | None = None
        self.job_id = ""

    async def stored(self, job_id: str, status: JobStatus, message_id: str) -> None:
        assert self.store is not None
        while True:
            job = await self.store.get(job_id)
            if job is not None and job.status is status and job.progress_message_id == message_id:
                return
            await asyncio.sleep(0.01)

    async def run(self, op: Operation, mode: Mode, emit: EventSink, *, before_send: BeforeSend | None = None) -> JobOutput:
        assert before_send is not None
        await before_send("nonce-step")
        self.sent.append(op)
        while not self.job_id:  # set by the test once submit has answered
            await asyncio.sleep(0.001)
        job_id = self.job_id
        emit(JobEvent(kind="waiting", message_id="progress-1", interaction_ids=("i-1",)))
        await self.stored(job_id, JobStatus.SUBMITTED, "progress-1")
        for step in range(1, STEPS + 1):
            moved = "progress-2" if step == STEPS // 2 else None
            emit(JobEvent(kind="progress", progress=step, message_id=moved, preview_url=data_url(grid_png((16 + step, 16)))))
            if step == 1:
                await self.stored(job_id, JobStatus.IN_PROGRESS, "progress-1")
            elif moved:
                await self.stored(job_id, JobStatus.IN_PROGRESS, moved)
            await asyncio.sleep(0)
        self.stepped.set()
        assert self.gate is not None
        await self.gate.wait()
        return self.output(op)


@pytest.fixture
async def harness(tmp_path: Path) -> AsyncIterator[tuple[JobService, CountingStore, SteppingAccount]]:
    store = CountingStore(tmp_path / "jobs.db")
    await store.open()
    acct = SteppingAccount()
    acct.store = store
    svc = JobService(
        store=store,
        scheduler=Scheduler([acct]),
        ingester=ResultIngester(ImageFetcher(FetchPolicy()), LocalImageStore(tmp_path)),
        banned=build_banned_words(),
        sweep_interval_seconds=0.05,
    )
    await svc.start()
    try:
        yield svc, store, acct
    finally:
        assert acct.gate is not None
        acct.gate.set()
        await svc.close()
        await store.close()


async def submit(svc: JobService, acct: SteppingAccount) -> Job:
    job = await svc.submit(SubmitSpec(meta=RequestMeta(owner="k1"), prompt="a lighthouse"))
    acct.job_id = job.id
    return job


async def test_watchers_hear_every_step_while_the_store_gets_few_writes(harness, monkeypatch) -> None:
    monkeypatch.setattr(service_module, "PROGRESS_WRITE_EVERY", 3600.0)  # no timed write in this test
    svc, store, acct = harness
    job = await submit(svc, acct)
    events = svc.bus.subscribe(job.id)
    try:
        await asyncio.wait_for(acct.stepped.wait(), WAIT)
        # every progress step was published at once, in order
        heard: list[int] = []
        while not events.empty():
            ev = events.get_nowait()
            assert ev is not None
            if ev.status is JobStatus.IN_PROGRESS:
                heard.append(ev.progress)
        assert sorted(set(heard)) == list(range(1, STEPS + 1))
        assert heard == sorted(heard)
        # the store: the send, SUBMITTED with its progress message, the first IN_PROGRESS, the
        # moved progress message (each maybe once more, when a preview landed while it was being
        # written) - and none of the other steps: 60 writes (steps + previews) without coalescing
        running = [u for u in store.updates if u.id == job.id]
        assert len(running) <= 8, [(u.status, u.progress, u.progress_message_id) for u in running]
        stored = await store.get(job.id)
        assert stored is not None and stored.status is JobStatus.IN_PROGRESS
        assert stored.nonce == "nonce-step" and stored.extra["interaction_ids"] == "i-1"
        assert stored.progress_message_id == "progress-2"
        assert stored.progress < STEPS
    finally:
        svc.bus.unsubscribe(job.id, events)
    assert acct.gate is not None
    acct.gate.set()
    done = await svc.wait(job.id, timeout=WAIT)
    assert done.status is JobStatus.SUCCESS and done.progress == 100
    stored = await store.get(job.id)
    assert stored is not None and stored.status is JobStatus.SUCCESS and stored.preview_image is not None


async def test_coalesced_progress_reaches_the_store(harness, monkeypatch) -> None:
    monkeypatch.setattr(service_module, "PROGRESS_WRITE_EVERY", 0.05)
    svc, store, acct = harness
    job = await submit(svc, acct)
    await asyncio.wait_for(acct.stepped.wait(), WAIT)

    async def latest_written() -> None:
        while True:
            stored = await store.get(job.id)
            assert stored is not None
            if stored.progress == STEPS and stored.preview_image is not None:
                return
            await asyncio.sleep(0.02)

    await asyncio.wait_for(latest_written(), WAIT)
    assert acct.gate is not None
    acct.gate.set()
    assert (await svc.wait(job.id, timeout=WAIT)).status is JobStatus.SUCCESS


async def test_what_recovery_reads_is_stored_before_it_is_published(harness, monkeypatch) -> None:
    monkeypatch.setattr(service_module, "PROGRESS_WRITE_EVERY", 3600.0)
    svc, store, acct = harness
    job = await submit(svc, acct)
    events = svc.bus.subscribe(job.id)
    messages = [None, "progress-1", "progress-2"]
    statuses = [JobStatus.NOT_START, JobStatus.SUBMITTED, JobStatus.IN_PROGRESS]
    checked: list[tuple[JobStatus, str | None]] = []
    try:
        while not checked or checked[-1] != (JobStatus.IN_PROGRESS, "progress-2"):
            ev = await asyncio.wait_for(events.get(), WAIT)
            assert ev is not None
            if ev.status is JobStatus.NOT_START or (ev.status, ev.progress_message_id) in checked:
                continue
            # the store runs its calls in order: this read follows the write made before the
            # publish (the store may be further on by now, never behind)
            stored = await store.get(job.id)
            assert stored is not None
            assert stored.nonce == ev.nonce == "nonce-step"
            assert statuses.index(stored.status) >= statuses.index(ev.status)
            assert messages.index(stored.progress_message_id) >= messages.index(ev.progress_message_id)
            if ev.progress_message_id:
                assert stored.extra["interaction_ids"] == "i-1"
            checked.append((ev.status, ev.progress_message_id))
    finally:
        svc.bus.unsubscribe(job.id, events)
    assert (JobStatus.IN_PROGRESS, "progress-1") in checked
