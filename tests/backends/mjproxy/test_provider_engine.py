"""The provider account under the real engine: the upstream task id is stored with the job's
first event, so a restart finds the task again instead of submitting it twice."""

from __future__ import annotations

import asyncio
import sys
from pathlib import Path

from adapter.backends.mjproxy.account import ProviderAccount, ProviderAccountOptions
from adapter.domain.actions import Mode
from adapter.domain.banned import build_banned_words
from adapter.domain.jobs import JobStatus
from adapter.engine.results import ResultIngester
from adapter.engine.scheduler import Scheduler
from adapter.engine.service import JobService
from adapter.engine.specs import RequestMeta, SubmitSpec
from adapter.media.fetch import FetchPolicy, ImageFetcher
from adapter.media.store import LocalImageStore
from adapter.stores.sqlite import SqliteJobStore

_HERE = str(Path(__file__).parent)
if _HERE not in sys.path:
    sys.path.insert(0, _HERE)
from fake_provider import FakeProvider  # noqa: E402


async def test_a_restart_reattaches_to_the_upstream_task(tmp_path: Path) -> None:
    provider = FakeProvider()
    store = SqliteJobStore(tmp_path / "jobs.db")
    await store.open()
    fetcher = ImageFetcher(FetchPolicy(allow_hosts=("127.0.0.1",)))

    def service() -> tuple[JobService, ProviderAccount]:
        acct = ProviderAccount(ProviderAccountOptions(id="prov", base_url=provider.base, poll_initial_seconds=0.01, poll_interval_seconds=0.05))
        svc = JobService(
            store=store,
            scheduler=Scheduler([acct]),
            ingester=ResultIngester(fetcher, LocalImageStore(tmp_path)),
            banned=build_banned_words(),
        )
        return svc, acct

    try:
        provider.script("t1", {"status": "IN_PROGRESS", "progress": "20%"})
        first, acct = service()
        await acct.start()
        await first.start()
        job = await first.submit(SubmitSpec(meta=RequestMeta(owner="k"), prompt="a long job", mode=Mode.RELAX))
        async with asyncio.timeout(10):
            while (stored := await store.get(job.id)) is None or stored.progress_message_id != "t1" or stored.progress < 20:
                await asyncio.sleep(0.01)
        # the process goes away mid-job
        await first.close()
        await acct.close()
        assert (await store.get(job.id)).status is JobStatus.IN_PROGRESS  # type: ignore[union-attr]

        provider.script("t1", {"status": "IN_PROGRESS", "progress": "90%"}, {"status": "SUCCESS", "progress": "100%", "prompt": "a long job", "properties": {"finalPrompt": "a long job --relax"}})
        second, acct2 = service()
        await acct2.start()
        await second.start()
        try:
            final = await second.wait(job.id, timeout=10)
        finally:
            await second.close()
            await acct2.close()
        assert final.status is JobStatus.SUCCESS and final.message_id == "t1" and final.final_prompt == "a long job --relax"
        assert len(provider.submits()) == 1  # never submitted again
        assert provider.submits()[0].path == "/mj-relax/mj/submit/imagine"
    finally:
        await fetcher.aclose()
        await store.close()
        provider.stop()
