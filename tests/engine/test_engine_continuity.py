"""The engine when things go wrong around a job: an interaction that provably did not happen,
a graceful shutdown with a backlog, a restart after it, accounts that reconnect or hit their
limits. A job ends SUCCESS, with an honest failure, or is still queued or running: never lost,
never sent twice, never failed with a misleading reason."""

from __future__ import annotations

import asyncio
import sys
import time
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).parent))
from fake_account import FakeAccount  # noqa: E402

from adapter.backends.base import AccountState, JobOutput, RecoveryProbe  # noqa: E402
from adapter.domain.actions import Mode  # noqa: E402
from adapter.domain.banned import build_banned_words  # noqa: E402
from adapter.domain.jobs import Job, JobStatus  # noqa: E402
from adapter.engine.errors import NoAccountAvailable, QueueFull, ServiceClosing  # noqa: E402
from adapter.engine.results import ResultIngester  # noqa: E402
from adapter.engine.scheduler import Scheduler  # noqa: E402
from adapter.engine.service import JobService  # noqa: E402
from adapter.engine.specs import RequestMeta, SubmitSpec  # noqa: E402
from adapter.media.fetch import FetchPolicy, ImageFetcher  # noqa: E402
from adapter.media.store import LocalImageStore  # noqa: E402
from adapter.stores.sqlite import SqliteJobStore  # noqa: E402

WAIT = 10.0


class Engine:
    """A JobService on a SQLite file that can be stopped and started again on the same file."""

    def __init__(self, tmp: Path) -> None:
        self.tmp = tmp
        self.store: SqliteJobStore | None = None
        self.service: JobService | None = None

    async def start(self, accounts: list[FakeAccount]) -> JobService:
        self.store = SqliteJobStore(self.tmp / "jobs.db")
        await self.store.open()
        self.service = JobService(
            store=self.store,
            scheduler=Scheduler(accounts),
            ingester=ResultIngester(ImageFetcher(FetchPolicy()), LocalImageStore(self.tmp)),
            banned=build_banned_words(),
            sweep_interval_seconds=0.05,
        )
        await self.service.start()
        return self.service

    async def stop(self) -> None:
        if self.service is not None:
            await self.service.close()
            self.service = None
        if self.store is not None:
            await self.store.close()
            self.store = None


@pytest.fixture
async def engine(tmp_path: Path) -> AsyncIterator[Engine]:
    e = Engine(tmp_path)
    yield e
    await e.stop()


def imagine(prompt: str, mode: Mode = Mode.FAST) -> SubmitSpec:
    return SubmitSpec(meta=RequestMeta(owner="k1"), prompt=prompt, mode=mode)


async def stop_while_sending(engine: Engine, prompt: str) -> Job:
    """A job marked submitted on an account that never finishes it, then the process stops."""
    acct = FakeAccount("a1")
    acct.gate = asyncio.Event()
    svc = await engine.start([acct])
    job = await svc.submit(imagine(prompt))
    async with asyncio.timeout(WAIT):
        while (await svc.get(job.id)).status is not JobStatus.SUBMITTED:
            await asyncio.sleep(0.01)
    await engine.stop()
    return job


async def test_not_sent_after_submit_is_queued_again_not_stuck(engine: Engine) -> None:
    """The account proves the interaction never happened (e.g. a 5xx with no trace) after the
    job was already marked submitted: it goes back to the queue and runs once."""
    a1, a2 = FakeAccount("a1"), FakeAccount("a2")
    a1.not_sent_after_submit = 1
    a2.state = AccountState.CONNECTING  # a1 takes it first
    svc = await engine.start([a1, a2])
    job = await svc.submit(imagine("bounce once"))
    done = await svc.wait(job.id, timeout=WAIT)
    assert done.status is JobStatus.SUCCESS, done.fail_reason
    assert done.attempts == 2
    assert len(a1.sent) + len(a2.sent) == 1


async def test_not_sent_with_a_single_account_waits_for_it_instead_of_failing(engine: Engine) -> None:
    only = FakeAccount("only")
    only.not_sent_after_submit = 2
    svc = await engine.start([only])
    job = await svc.submit(imagine("same account again"))
    done = await svc.wait(job.id, timeout=WAIT)
    assert done.status is JobStatus.SUCCESS and done.attempts == 3 and len(only.sent) == 1


async def test_sigterm_keeps_the_backlog_queued_and_the_restart_runs_it(engine: Engine) -> None:
    acct = FakeAccount("a1", concurrency=1, queue_size=5)
    acct.gate = asyncio.Event()
    svc = await engine.start([acct])
    jobs = [await svc.submit(imagine(f"backlog {i}")) for i in range(4)]
    async with asyncio.timeout(WAIT):
        while (await svc.get(jobs[0].id)).status is not JobStatus.SUBMITTED:
            await asyncio.sleep(0.01)

    watching = asyncio.create_task(svc.wait(jobs[0].id, timeout=WAIT))
    await asyncio.sleep(0.05)
    svc.begin_shutdown()
    with pytest.raises(ServiceClosing):
        await watching  # the watcher is told, it is not left hanging
    with pytest.raises(ServiceClosing):
        await svc.submit(imagine("too late"))
    await engine.stop()
    assert acct.drained

    store = SqliteJobStore(engine.tmp / "jobs.db")
    await store.open()
    states = {j.id: (await store.get(j.id)).status for j in jobs}  # type: ignore[union-attr]
    await store.close()
    assert states[jobs[0].id] is JobStatus.SUBMITTED  # it reached Midjourney: reconciled later
    assert all(states[j.id] is JobStatus.NOT_START for j in jobs[1:]), states  # queued, not failed

    fresh = FakeAccount("a1", concurrency=2, queue_size=5)
    fresh.recover_result = lambda probe: fresh.output(probe.operation)
    svc2 = await engine.start([fresh])
    finished = [await svc2.wait(j.id, timeout=WAIT) for j in jobs]
    assert [j.status for j in finished] == [JobStatus.SUCCESS] * 4, [j.fail_reason for j in finished]
    assert len(fresh.recovered) == 1 and len(fresh.sent) == 3  # nothing sent twice


async def test_a_reconnecting_account_hands_its_queue_to_a_ready_one(engine: Engine) -> None:
    a1 = FakeAccount("a1", concurrency=1, queue_size=5)
    a1.gate = asyncio.Event()
    a2 = FakeAccount("a2", concurrency=3, queue_size=5)
    a2.state = AccountState.CONNECTING
    svc = await engine.start([a1, a2])
    jobs = [await svc.submit(imagine(f"q{i}")) for i in range(3)]
    await asyncio.wait_for(a1.started.wait(), WAIT)
    a2.set_state(AccountState.READY)
    a1.set_state(AccountState.RECONNECTING, "gateway connection lost; resuming")
    for j in jobs[1:]:
        done = await svc.wait(j.id, timeout=WAIT)
        assert done.status is JobStatus.SUCCESS and done.account_id == "a2"
    a1.set_state(AccountState.READY)
    a1.gate.set()
    assert (await svc.wait(jobs[0].id, timeout=WAIT)).status is JobStatus.SUCCESS


async def test_daily_cap_is_refused_at_once_with_when_it_clears(engine: Engine) -> None:
    acct = FakeAccount("a1")
    svc = await engine.start([acct])
    until = int((time.time() + 3600) * 1000)
    acct.until_ms = until
    acct.set_state(AccountState.COOLING_DOWN, "daily interaction cap (10) reached; it resets at 00:00 UTC")
    with pytest.raises(QueueFull) as err:
        await svc.submit(imagine("over the cap"))
    assert err.value.code == "daily_cap_reached"
    assert 3590 <= err.value.retry_after <= 3601
    assert "daily interaction cap" in err.value.message and "UTC" in err.value.message


async def test_queued_jobs_of_an_account_that_hits_its_cap_fail_with_the_true_reason(engine: Engine) -> None:
    acct = FakeAccount("a1", concurrency=1, queue_size=5)
    acct.gate = asyncio.Event()
    svc = await engine.start([acct])
    jobs = [await svc.submit(imagine(f"capped {i}")) for i in range(3)]
    await asyncio.wait_for(acct.started.wait(), WAIT)
    acct.until_ms = int((time.time() + 600) * 1000)
    acct.set_state(AccountState.COOLING_DOWN, "daily interaction cap (1) reached; it resets at 00:00 UTC")
    for j in jobs[1:]:
        done = await svc.wait(j.id, timeout=WAIT)
        assert done.status is JobStatus.FAILURE
        assert "daily interaction cap" in (done.fail_reason or "")
    acct.gate.set()
    assert (await svc.wait(jobs[0].id, timeout=WAIT)).status is JobStatus.SUCCESS


async def test_every_account_paused_says_why(engine: Engine) -> None:
    a1, a2 = FakeAccount("a1"), FakeAccount("a2")
    svc = await engine.start([a1, a2])
    a1.set_state(AccountState.PAUSED, "Discord asked for a captcha")
    a2.set_state(AccountState.DISABLED, "Discord refused the token (401)")
    with pytest.raises(NoAccountAvailable) as err:
        await svc.submit(imagine("nobody home"))
    assert "captcha" in err.value.message and "401" in err.value.message
    assert err.value.retry_after > 0


async def test_recovered_job_with_no_trace_is_not_failed_as_moderated(engine: Engine) -> None:
    job = await stop_while_sending(engine, "in flight at the crash")

    fresh = FakeAccount("a1")
    seen: list[RecoveryProbe] = []

    def found(probe: RecoveryProbe) -> JobOutput:
        seen.append(probe)
        return fresh.output(probe.operation)

    fresh.recover_result = found
    svc2 = await engine.start([fresh])
    done = await svc2.wait(job.id, timeout=WAIT)
    assert done.status is JobStatus.SUCCESS
    # the probe carries what finds the job again: the prompt as sent and the speed
    assert seen[0].mode is Mode.FAST and seen[0].prompt


async def test_recovered_job_proven_never_sent_is_sent_once_after_the_restart(engine: Engine) -> None:
    from adapter.backends.base import BackendError, NotSent
    from adapter.domain.errors import ErrorCategory

    job = await stop_while_sending(engine, "died before the post")

    fresh = FakeAccount("a1")

    def never_sent(probe: RecoveryProbe) -> JobOutput:
        raise NotSent(BackendError(category=ErrorCategory.RETRYABLE, message="no trace: never sent"))

    fresh.recover_result = never_sent
    svc2 = await engine.start([fresh])
    done = await svc2.wait(job.id, timeout=WAIT)
    assert done.status is JobStatus.SUCCESS, done.fail_reason
    assert len(fresh.sent) == 1 and done.attempts == 2


async def test_a_recovered_job_waits_for_its_slow_account_and_is_found(engine: Engine) -> None:
    job = await stop_while_sending(engine, "account slow to come back")
    fresh = FakeAccount("a1")
    fresh.state = AccountState.CONNECTING
    fresh.recover_result = lambda probe: fresh.output(probe.operation)
    svc = await engine.start([fresh])
    await asyncio.sleep(0.3)
    assert (await svc.get(job.id)).status is JobStatus.SUBMITTED  # not failed while it connects
    fresh.set_state(AccountState.READY)
    assert (await svc.wait(job.id, timeout=WAIT)).status is JobStatus.SUCCESS


async def test_a_recovered_job_whose_account_is_disabled_is_unknown_not_guessed(engine: Engine) -> None:
    from adapter.domain.errors import ErrorCategory

    job = await stop_while_sending(engine, "account gone for good")
    fresh = FakeAccount("a1")
    fresh.state = AccountState.DISABLED
    fresh.reason = "Discord refused the token (401)"
    svc = await engine.start([fresh])
    done = await svc.wait(job.id, timeout=WAIT)
    assert done.status is JobStatus.FAILURE and done.error_category is ErrorCategory.OUTCOME_UNKNOWN
    assert "401" in (done.fail_reason or "") and "unknown" in (done.fail_reason or "")
