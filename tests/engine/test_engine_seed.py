"""JobService.seed: asks the account that ran the job once, keeps the answer on the job, and
refuses jobs that have no seed (unfinished, text results, another key's)."""

from __future__ import annotations

import asyncio
import sys
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).parent))
from fake_account import FakeAccount  # noqa: E402
from test_engine_service import WAIT, Harness, imagine  # noqa: E402

from adapter.backends.base import BackendError, JobFailed, ResultRef  # noqa: E402
from adapter.domain.errors import ErrorCategory  # noqa: E402
from adapter.domain.jobs import JobStatus  # noqa: E402
from adapter.engine.errors import ActionNotAvailable, JobNotFound, SeedUnavailable  # noqa: E402
from adapter.engine.service import JobService  # noqa: E402


class SeedAccount(FakeAccount):
    def __init__(self, *args: object, **kw: object) -> None:
        super().__init__(*args, **kw)  # type: ignore[arg-type]
        self.asked: list[ResultRef] = []
        self.seed_error: BackendError | None = None

    async def seed(self, result: ResultRef) -> str:
        self.asked.append(result)
        if self.seed_error is not None:
            raise JobFailed(self.seed_error)
        return "1259687673"


@pytest.fixture
async def service(tmp_path: Path) -> AsyncIterator[tuple[JobService, SeedAccount]]:
    acct = SeedAccount()
    h = Harness(tmp_path, [acct])
    yield await h.start(), acct
    await h.stop()
    await asyncio.sleep(0)


async def test_seed_is_asked_once_and_kept(service: tuple[JobService, SeedAccount]) -> None:
    svc, acct = service
    job = await svc.wait((await svc.submit(imagine())).id, timeout=WAIT)
    assert job.status is JobStatus.SUCCESS
    assert await svc.seed(job.id, "k1") == "1259687673"
    assert acct.asked == [ResultRef(message_id=job.message_id or "", job_hash=job.job_hash, message_flags=job.message_flags, bot=job.bot)]
    assert (await svc.get(job.id)).seed == "1259687673"
    assert await svc.seed(job.id, "k1") == "1259687673"
    assert len(acct.asked) == 1  # the second answer came from the job


async def test_seed_refusals(service: tuple[JobService, SeedAccount]) -> None:
    svc, acct = service
    acct.gate = asyncio.Event()
    running = await svc.submit(imagine())
    with pytest.raises(ActionNotAvailable):
        await svc.seed(running.id, "k1")
    acct.gate.set()
    done = await svc.wait(running.id, timeout=WAIT)
    with pytest.raises(JobNotFound):
        await svc.seed(done.id, "someone else")
    acct.seed_error = BackendError(category=ErrorCategory.TIMEOUT, message="Midjourney did not send the seed within 60 s.")
    with pytest.raises(SeedUnavailable) as info:
        await svc.seed(done.id, "k1")
    assert info.value.category is ErrorCategory.TIMEOUT and "did not send" in info.value.message
    assert (await svc.get(done.id)).seed is None
