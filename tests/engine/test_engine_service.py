"""JobService + Scheduler against scripted accounts, a real SQLite store and a real image store."""

from __future__ import annotations

import asyncio
import sys
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).parent))
from fake_account import FakeAccount  # noqa: E402

from adapter.backends.base import AccountState, BackendError, Imagine, JobOutput, PressButton, RecoveryProbe  # noqa: E402
from adapter.config import Timeouts  # noqa: E402
from adapter.domain import buttons as b  # noqa: E402
from adapter.domain.actions import Action, Mode  # noqa: E402
from adapter.domain.banned import build_banned_words  # noqa: E402
from adapter.domain.errors import ErrorCategory  # noqa: E402
from adapter.domain.jobs import Job, JobStatus, now_ms  # noqa: E402
from adapter.engine.errors import ActionNotAvailable, NoAccountAvailable, PromptRejected, QueueFull  # noqa: E402
from adapter.engine.results import ResultIngester  # noqa: E402
from adapter.engine.scheduler import Scheduler  # noqa: E402
from adapter.engine.service import JobService  # noqa: E402
from adapter.engine.specs import ActSpec, RequestMeta, SubmitSpec  # noqa: E402
from adapter.media.fetch import FetchPolicy, ImageFetcher  # noqa: E402
from adapter.media.store import LocalImageStore  # noqa: E402
from adapter.stores.sqlite import SqliteJobStore  # noqa: E402

WAIT = 10.0


class Harness:
    def __init__(self, tmp: Path, accounts: list[FakeAccount], timeouts: Timeouts | None = None) -> None:
        self.tmp = tmp
        self.accounts = accounts
        self.timeouts = timeouts
        self.store = SqliteJobStore(tmp / "jobs.db")
        self.fetcher = ImageFetcher(FetchPolicy())
        self.service: JobService | None = None

    async def start(self) -> JobService:
        await self.store.open()
        self.service = JobService(
            store=self.store,
            scheduler=Scheduler(self.accounts),
            ingester=ResultIngester(self.fetcher, LocalImageStore(self.tmp)),
            banned=build_banned_words(),
            timeouts=self.timeouts,
            sweep_interval_seconds=0.05,
        )
        await self.service.start()
        return self.service

    async def stop(self) -> None:
        if self.service:
            await self.service.close()
        await self.store.close()


@pytest.fixture
async def make(tmp_path: Path) -> AsyncIterator[object]:
    made: list[Harness] = []

    async def factory(accounts: list[FakeAccount], timeouts: Timeouts | None = None) -> JobService:
        h = Harness(tmp_path, accounts, timeouts)
        made.append(h)
        return await h.start()

    yield factory
    for h in made:
        await h.stop()
    await asyncio.sleep(0)


def imagine(prompt: str = "a lighthouse", owner: str = "k1", mode: Mode = Mode.FAST, **meta: object) -> SubmitSpec:
    return SubmitSpec(meta=RequestMeta(owner=owner, **meta), prompt=prompt, mode=mode)  # type: ignore[arg-type]


async def test_imagine_succeeds_with_four_tiles_and_a_preview(make) -> None:
    acct = FakeAccount()
    svc = await make([acct])
    job = await svc.submit(imagine())
    done = await svc.wait(job.id, timeout=WAIT)
    assert done.status is JobStatus.SUCCESS, done.fail_reason
    assert len(done.images) == 4 and done.image is not None
    assert all(ref.width == 32 and ref.height == 32 for ref in done.images)
    assert done.preview_image is not None
    assert done.attempts == 1 and done.nonce and done.message_id
    assert len(acct.sent) == 1 and isinstance(acct.sent[0], Imagine)


async def test_watch_replays_current_state_then_ends(make) -> None:
    acct = FakeAccount()
    acct.gate = asyncio.Event()
    svc = await make([acct])
    job = await svc.submit(imagine())
    seen: list[JobStatus] = []

    async def consume() -> None:
        async for snap in svc.watch(job.id, "k1"):
            seen.append(snap.status)

    task = asyncio.create_task(consume())
    await asyncio.wait_for(acct.started.wait(), WAIT)
    acct.gate.set()
    await asyncio.wait_for(task, WAIT)
    assert seen[-1] is JobStatus.SUCCESS
    assert seen[0] in (JobStatus.NOT_START, JobStatus.SUBMITTED, JobStatus.IN_PROGRESS)


async def test_banned_prompt_is_refused_before_spending_a_job(make) -> None:
    acct = FakeAccount()
    svc = await make([acct])
    with pytest.raises(PromptRejected) as err:
        await svc.submit(imagine("a NUDE statue"))
    assert err.value.word == "nude"
    job = await svc.submit(imagine("green grass field"))  # no "ass" false positive
    assert (await svc.wait(job.id, timeout=WAIT)).status is JobStatus.SUCCESS
    assert len(acct.sent) == 1


async def test_full_pool_is_refused_with_queue_full_and_nothing_stored(make) -> None:
    acct = FakeAccount(concurrency=1, queue_size=1)
    acct.gate = asyncio.Event()
    svc = await make([acct])
    a = await svc.submit(imagine("one"))
    b_ = await svc.submit(imagine("two"))
    with pytest.raises(QueueFull) as err:
        await svc.submit(imagine("three"))
    assert err.value.retry_after > 0
    assert len(await svc.store.list_jobs()) == 2
    acct.gate.set()
    for j in (a, b_):
        assert (await svc.wait(j.id, timeout=WAIT)).status is JobStatus.SUCCESS
    assert acct.max_running == 1


async def test_no_account_serving_the_mode(make) -> None:
    svc = await make([FakeAccount(modes=(Mode.FAST,))])
    with pytest.raises(NoAccountAvailable):
        await svc.submit(imagine(mode=Mode.RELAX))


async def test_paused_account_moves_its_queue_to_another(make) -> None:
    a1 = FakeAccount("a1", concurrency=1, queue_size=5)
    a1.gate = asyncio.Event()
    a2 = FakeAccount("a2", concurrency=3, queue_size=5)
    a2.state = AccountState.DISABLED  # everything lands on a1 first
    svc = await make([a1, a2])
    jobs = [await svc.submit(imagine(f"p{i}")) for i in range(3)]
    await asyncio.wait_for(a1.started.wait(), WAIT)
    assert {j.account_id for j in jobs} == {"a1"}
    a2.set_state(AccountState.READY)
    a1.set_state(AccountState.PAUSED, "captcha")
    finals = [await svc.wait(j.id, timeout=WAIT) for j in jobs[1:]]
    assert all(f.status is JobStatus.SUCCESS for f in finals)
    assert {f.account_id for f in finals} == {"a2"}
    assert len(a2.sent) == 2 and len(a1.sent) == 1  # the running one was not resent
    a1.gate.set()


async def test_queued_job_fails_clearly_when_no_account_can_take_it(make) -> None:
    a1 = FakeAccount("a1", concurrency=1, queue_size=5)
    a1.gate = asyncio.Event()
    svc = await make([a1])
    first = await svc.submit(imagine("first"))
    queued = await svc.submit(imagine("second"))
    await asyncio.wait_for(a1.started.wait(), WAIT)
    a1.set_state(AccountState.DISABLED, "token revoked")
    failed = await svc.wait(queued.id, timeout=WAIT)
    assert failed.status is JobStatus.FAILURE and failed.error_category is ErrorCategory.ACCOUNT
    assert "token revoked" in (failed.fail_reason or "")
    a1.gate.set()
    await svc.wait(first.id, timeout=WAIT)


async def test_follow_up_runs_on_the_parent_account_with_its_message(make) -> None:
    a1, a2 = FakeAccount("a1"), FakeAccount("a2")
    svc = await make([a1, a2])
    grid = await svc.wait((await svc.submit(imagine())).id, timeout=WAIT)
    u2 = next(x.custom_id for x in grid.buttons if x.custom_id and "upsample::2" in x.custom_id)
    child = await svc.act(ActSpec(meta=RequestMeta(owner="k1"), parent_id=grid.id, custom_id=u2))
    done = await svc.wait(child.id, timeout=WAIT)
    assert done.status is JobStatus.SUCCESS and done.action is Action.UPSCALE and done.index == 2
    assert done.account_id == grid.account_id
    op = (a1.sent + a2.sent)[-1]
    assert isinstance(op, PressButton) and op.message_id == grid.message_id and op.custom_id == u2
    assert len(done.images) == 1  # an upscale is a single image, not a grid


async def test_follow_up_refusals(make) -> None:
    acct = FakeAccount()
    acct.gate = asyncio.Event()
    svc = await make([acct])
    running = await svc.submit(imagine())
    with pytest.raises(ActionNotAvailable):
        await svc.act(ActSpec(meta=RequestMeta(owner="k1"), parent_id=running.id, custom_id=b.upsample(1, "0" * 8 + "-0000-0000-0000-" + "0" * 12)))
    acct.gate.set()
    grid = await svc.wait(running.id, timeout=WAIT)
    with pytest.raises(ActionNotAvailable):
        await svc.act(ActSpec(meta=RequestMeta(owner="k1"), parent_id=grid.id, custom_id="MJ::JOB::upsample::9::nope"))
    from adapter.engine.errors import JobNotFound

    with pytest.raises(JobNotFound):  # another key's job does not exist for you
        await svc.act(ActSpec(meta=RequestMeta(owner="other"), parent_id=grid.id, custom_id=grid.buttons[0].custom_id or ""))


async def test_idempotency_key_and_sdk_retry_attach_to_the_same_job(make) -> None:
    acct = FakeAccount()
    svc = await make([acct])
    first = await svc.submit(imagine(idempotency_key="abc"))
    again = await svc.submit(imagine(idempotency_key="abc"))
    assert again.id == first.id
    other_owner = await svc.submit(imagine(owner="k2", idempotency_key="abc"))
    assert other_owner.id != first.id
    fp1 = await svc.submit(imagine(fingerprint="f1"))
    retry = await svc.submit(imagine(fingerprint="f1", is_retry=True))
    fresh = await svc.submit(imagine(fingerprint="f1"))  # not a retry: a new request
    assert retry.id == fp1.id and fresh.id != fp1.id
    for j in (first, other_owner, fp1, fresh):
        await svc.wait(j.id, timeout=WAIT)
    assert len(acct.sent) == 4


async def test_concurrent_identical_idempotency_keys_spend_one_job(make) -> None:
    acct = FakeAccount(concurrency=5, queue_size=20)
    svc = await make([acct])
    jobs = await asyncio.gather(*(svc.submit(imagine(idempotency_key="same")) for _ in range(8)))
    assert len({j.id for j in jobs}) == 1
    await svc.wait(jobs[0].id, timeout=WAIT)
    assert len(acct.sent) == 1


async def test_midjourney_failure_keeps_its_category(make) -> None:
    acct = FakeAccount()
    acct.fail_with = BackendError(category=ErrorCategory.CONTENT_POLICY, message="Banned prompt detected")
    svc = await make([acct])
    job = await svc.wait((await svc.submit(imagine())).id, timeout=WAIT)
    assert job.status is JobStatus.FAILURE and job.error_category is ErrorCategory.CONTENT_POLICY
    assert job.fail_reason == "Banned prompt detected" and job.finished_at


async def test_watchdog_times_out_a_stuck_job(make) -> None:
    acct = FakeAccount()
    acct.gate = asyncio.Event()
    svc = await make([acct], Timeouts(fast=0.3, relax=60, turbo=60))
    job = await svc.wait((await svc.submit(imagine())).id, timeout=WAIT)
    assert job.status is JobStatus.FAILURE and job.error_category is ErrorCategory.TIMEOUT
    assert "0 s" not in (job.fail_reason or "x") or "fast" in (job.fail_reason or "")
    acct.gate.set()


async def test_cancel_a_running_job(make) -> None:
    acct = FakeAccount()
    acct.gate = asyncio.Event()
    svc = await make([acct])
    job = await svc.submit(imagine())
    await asyncio.wait_for(acct.started.wait(), WAIT)
    cancelled = await svc.cancel(job.id, "k1")
    assert cancelled.status is JobStatus.CANCEL
    assert (await svc.get(job.id)).status is JobStatus.CANCEL


async def test_not_sent_is_placed_again_elsewhere(make) -> None:
    a1, a2 = FakeAccount("a1"), FakeAccount("a2")
    a1.not_sent = True
    a2.state = AccountState.COOLING_DOWN  # a1 is the only READY one at submit time
    svc = await make([a1, a2])
    job = await svc.submit(imagine())
    a2.set_state(AccountState.READY)
    done = await svc.wait(job.id, timeout=WAIT)
    assert done.status is JobStatus.SUCCESS and done.account_id == "a2" and done.attempts == 1


async def test_custom_zoom_waits_for_its_modal(make) -> None:
    acct = FakeAccount()
    svc = await make([acct])
    grid = await svc.wait((await svc.submit(imagine())).id, timeout=WAIT)
    u1 = next(x.custom_id for x in grid.buttons if x.custom_id and "upsample::1" in x.custom_id)
    single = await svc.wait((await svc.act(ActSpec(meta=RequestMeta(owner="k1"), parent_id=grid.id, custom_id=u1 or ""))).id, timeout=WAIT)
    cz = next(x.custom_id for x in single.buttons if x.custom_id and x.custom_id.startswith("MJ::CustomZoom"))
    modal = await svc.act(ActSpec(meta=RequestMeta(owner="k1"), parent_id=single.id, custom_id=cz or "", defer_modal=True))
    assert modal.status is JobStatus.MODAL
    sent_before = len(acct.sent)
    job = await svc.submit_modal(modal.id, "k1", "a wider view --zoom 1.5")
    done = await svc.wait(job.id, timeout=WAIT)
    assert done.status is JobStatus.SUCCESS and done.action is Action.CUSTOM_ZOOM
    op = acct.sent[sent_before]
    assert isinstance(op, PressButton) and op.prompt == "a wider view --zoom 1.5"


async def test_restart_requeues_unsent_and_reconciles_sent_jobs(tmp_path: Path, make) -> None:
    store = SqliteJobStore(tmp_path / "jobs.db")
    await store.open()
    unsent = Job(id="j_aaaaaaaaaaaaaaaaaaaa", owner="k1", action=Action.IMAGINE, prompt="unsent", account_id="a1")
    sent = Job(
        id="j_bbbbbbbbbbbbbbbbbbbb", owner="k1", action=Action.IMAGINE, prompt="sent", account_id="a1",
        status=JobStatus.IN_PROGRESS, nonce="n-123", attempts=1, started_at=now_ms(), progress_message_id="p-1",
    )
    await store.insert(unsent)
    await store.insert(sent)
    await store.close()

    acct = FakeAccount("a1")

    def found(probe: RecoveryProbe) -> JobOutput:
        return acct.output(probe.operation)

    acct.recover_result = found
    svc = await make([acct])
    a = await svc.wait(unsent.id, timeout=WAIT)
    bb = await svc.wait(sent.id, timeout=WAIT)
    assert a.status is JobStatus.SUCCESS and a.attempts == 1
    assert bb.status is JobStatus.SUCCESS and bb.attempts == 1 and len(bb.images) == 4
    assert [p.nonce for p in acct.recovered] == ["n-123"]
    assert [op.prompt for op in acct.sent if isinstance(op, Imagine)] == ["unsent"]  # never resent "sent"
