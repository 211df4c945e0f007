"""JobService as one replica among several (in process, with a stand-in for the other replicas):
a lease acquired adopts the account's jobs from the store, a lease lost stops following them
without ending them, a job placed on another replica's account is handed over once it is stored,
a job ends once however many replicas try, and nothing is sent without the lease."""

from __future__ import annotations

import asyncio
import sys
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).parent))
from fake_account import FakeAccount  # noqa: E402

from adapter.backends.base import JobOutput, RecoveryProbe  # noqa: E402
from adapter.domain.actions import Action  # noqa: E402
from adapter.domain.banned import build_banned_words  # noqa: E402
from adapter.domain.errors import ErrorCategory  # noqa: E402
from adapter.domain.jobs import Job, JobStatus, now_ms  # noqa: E402
from adapter.engine.peers import PeerOp  # noqa: E402
from adapter.engine.results import ResultIngester  # noqa: E402
from adapter.engine.scheduler import Scheduler  # noqa: E402
from adapter.engine.service import JobService  # noqa: E402
from adapter.engine.specs import RequestMeta, SubmitSpec  # noqa: E402
from adapter.media.fetch import FetchPolicy, ImageFetcher  # noqa: E402
from adapter.media.store import LocalImageStore  # noqa: E402
from adapter.stores.sqlite import SqliteJobStore  # noqa: E402

WAIT = 10.0


class OtherReplicas:
    """What the service asks of the cluster: a lease per account, hand-overs, requests."""

    def __init__(self) -> None:
        self.leased: set[str] = set()
        self.handed: list[tuple[str, str]] = []
        self.asked: list[tuple[str, PeerOp, str]] = []
        self.stored_when_handed: list[bool] = []
        self.store: SqliteJobStore | None = None

    def may_send(self, account_id: str) -> bool:
        return account_id in self.leased

    async def hand_over(self, account_id: str, job_id: str) -> None:
        assert self.store is not None
        self.stored_when_handed.append(await self.store.get(job_id) is not None)
        self.handed.append((account_id, job_id))

    async def ask(self, account_id: str, op: PeerOp, job_id: str = "", reason: str = "") -> None:
        self.asked.append((account_id, op, job_id))


@pytest.fixture
async def replica(tmp_path: Path) -> AsyncIterator[tuple[JobService, FakeAccount, FakeAccount, OtherReplicas]]:
    store = SqliteJobStore(tmp_path / "jobs.db")
    await store.open()
    peers = OtherReplicas()
    peers.store = store
    here, there = FakeAccount("here"), FakeAccount("there")
    scheduler = Scheduler()
    service = JobService(
        store=store,
        scheduler=scheduler,
        ingester=ResultIngester(ImageFetcher(FetchPolicy()), LocalImageStore(tmp_path)),
        banned=build_banned_words(),
        sweep_interval_seconds=0.05,
        peers=peers,
    )
    scheduler.add_remote(here)
    scheduler.add_remote(there)
    await service.start()
    try:
        yield service, here, there, peers
    finally:
        await service.close()
        await store.close()


def acquire(service: JobService, peers: OtherReplicas, account: FakeAccount) -> None:
    peers.leased.add(account.id)
    service.scheduler.add_account(account)


async def test_a_lease_acquired_adopts_the_accounts_jobs(replica) -> None:
    service, here, _, peers = replica
    queued = Job(id="j_cluster_queued_00001", owner="k1", action=Action.IMAGINE, prompt="queued before", account_id="here")
    running = Job(
        id="j_cluster_running_0001", owner="k1", action=Action.IMAGINE, prompt="running before", account_id="here",
        status=JobStatus.IN_PROGRESS, nonce="n-1", attempts=1, started_at=now_ms(), progress_message_id="p-1",
    )
    elsewhere = Job(id="j_cluster_elsewhere_01", owner="k1", action=Action.IMAGINE, prompt="not ours", account_id="there")
    for job in (queued, running, elsewhere):
        await service.store.insert(job)

    def found(probe: RecoveryProbe) -> JobOutput:
        return here.output(probe.operation)

    here.recover_result = found
    acquire(service, peers, here)
    await service.adopt("here")
    assert (await service.wait(queued.id, timeout=WAIT)).status is JobStatus.SUCCESS
    done = await service.wait(running.id, timeout=WAIT)
    assert done.status is JobStatus.SUCCESS and [p.nonce for p in here.recovered] == ["n-1"]
    assert [op.prompt for op in here.sent] == ["queued before"]  # the running one is never sent again
    assert (await service.get(elsewhere.id)).status is JobStatus.NOT_START  # its holder's to run


async def test_jobs_on_another_replicas_account_are_handed_over_once_stored(replica) -> None:
    service, _, _, peers = replica
    job = await service.submit(SubmitSpec(meta=RequestMeta(owner="k1"), prompt="for the other replica"))
    for _ in range(100):
        if peers.handed:
            break
        await asyncio.sleep(0.01)
    assert peers.handed == [(job.account_id, job.id)] and peers.stored_when_handed == [True]
    assert (await service.get(job.id)).status is JobStatus.NOT_START


async def test_a_lost_lease_stops_following_without_ending_and_fences_sends(replica) -> None:
    service, here, _, peers = replica
    acquire(service, peers, here)
    here.gate = asyncio.Event()
    job = await service.submit(SubmitSpec(meta=RequestMeta(owner="k1"), prompt="interrupted"))
    await asyncio.wait_for(here.started.wait(), WAIT)
    # the lease goes: the job is left as it is for the new holder to reconcile
    peers.leased.discard("here")
    service.scheduler.add_remote(FakeAccount("here"))
    await service.release_account("here")
    assert not (await service.get(job.id)).status.finished

    # a queued job whose send comes after the lease is gone is not sent
    acquire(service, peers, here := FakeAccount("here"))
    peers.leased.discard("here")
    fenced = await service.submit(SubmitSpec(meta=RequestMeta(owner="k1"), prompt="fenced"))
    await asyncio.sleep(0.3)
    assert here.sent == [] and not (await service.get(fenced.id)).status.finished


async def test_a_job_ends_once_and_orphans_of_unconfigured_accounts_end_honestly(replica) -> None:
    service, _, _, _ = replica
    running = Job(
        id="j_cluster_orphan_00001", owner="k1", action=Action.IMAGINE, prompt="orphan", account_id="retired",
        status=JobStatus.SUBMITTED, nonce="n-2", attempts=1, started_at=now_ms(),
    )
    await service.store.insert(running)
    ended = await service.wait(running.id, timeout=WAIT)
    assert ended.status is JobStatus.FAILURE and ended.error_category is ErrorCategory.OUTCOME_UNKNOWN
    # a second replica's ending of the same job does not land
    late = await service.store.get(running.id)
    assert late is not None
    await service._finish(late, JobStatus.SUCCESS)
    assert (await service.get(running.id)).status is JobStatus.FAILURE


async def test_cancel_and_seed_are_asked_of_the_holder(replica) -> None:
    service, _, _, peers = replica
    running = Job(
        id="j_cluster_remote_00001", owner="k1", action=Action.IMAGINE, prompt="remote", account_id="there",
        status=JobStatus.IN_PROGRESS, nonce="n-3", attempts=1, started_at=now_ms(), progress_message_id="p-3",
    )
    await service.store.insert(running)
    service.cancel_wait_seconds = 0.2
    cancelled = await service.cancel(running.id, "k1")
    assert ("there", "cancel", running.id) in peers.asked
    assert cancelled.status is JobStatus.CANCEL
