"""Watchers attaching to one job together share one store read (SharedReads, JobService.watch)."""

from __future__ import annotations

import asyncio
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).parent))
from fake_account import FakeAccount  # noqa: E402
from test_engine_service import WAIT, imagine, make  # noqa: E402,F401

from adapter.domain.jobs import JobStatus  # noqa: E402
from adapter.engine.errors import JobNotFound  # noqa: E402
from adapter.engine.shared_reads import SharedReads  # noqa: E402


class Source:
    """A read that waits for the test to let it finish; counts reads and says what each saw."""

    def __init__(self) -> None:
        self.value = 0
        self.reads = 0
        self.gate = asyncio.Event()
        self.gate.set()
        self.fail: Exception | None = None

    async def read(self, key: str) -> int:
        self.reads += 1
        seen = self.value  # the value when the read started
        await self.gate.wait()
        if self.fail:
            raise self.fail
        return seen


async def test_concurrent_callers_share_one_read() -> None:
    src = Source()
    shared = SharedReads(src.read)
    results = await asyncio.gather(*(shared.get("j") for _ in range(500)))
    assert results == [0] * 500
    assert src.reads == 1
    # later, another read
    src.value = 1
    assert await shared.get("j") == 1
    assert src.reads == 2


async def test_a_caller_during_a_read_gets_a_read_started_after_it() -> None:
    src = Source()
    src.gate.clear()
    shared = SharedReads(src.read)
    first = [asyncio.create_task(shared.get("j")) for _ in range(3)]
    await asyncio.sleep(0)
    await asyncio.sleep(0)
    assert src.reads == 1  # started; from now on callers wait for the next read
    src.value = 7  # published after the first read began
    later = [asyncio.create_task(shared.get("j")) for _ in range(3)]
    await asyncio.sleep(0)
    assert src.reads == 1  # the next read waits for the running one
    src.gate.set()
    assert await asyncio.gather(*first) == [0, 0, 0]
    assert await asyncio.gather(*later) == [7, 7, 7]
    assert src.reads == 2


async def test_keys_are_apart_errors_reach_every_caller_and_a_leaver_cancels_nothing() -> None:
    src = Source()
    src.gate.clear()
    shared = SharedReads(src.read)
    a = [asyncio.create_task(shared.get("a")) for _ in range(2)]
    b = asyncio.create_task(shared.get("b"))
    await asyncio.sleep(0)
    await asyncio.sleep(0)
    assert src.reads == 2
    a[0].cancel()  # one caller goes away: the read goes on for the other
    await asyncio.sleep(0)
    src.gate.set()
    assert await a[1] == 0 and await b == 0
    src.fail = RuntimeError("store down")
    got = await asyncio.gather(shared.get("a"), shared.get("a"), return_exceptions=True)
    assert all(isinstance(e, RuntimeError) for e in got)
    src.fail = None
    assert await shared.get("a") == 0  # a failed read is not kept


async def test_n_concurrent_watchers_cause_one_store_read(make, monkeypatch: pytest.MonkeyPatch) -> None:
    acct = FakeAccount()
    acct.gate = asyncio.Event()
    svc = await make([acct])
    job = await svc.submit(imagine())
    await asyncio.wait_for(acct.started.wait(), WAIT)

    reads: list[str] = []
    real_get = svc.store.get

    async def counting_get(job_id: str):  # type: ignore[no-untyped-def]
        reads.append(job_id)
        return await real_get(job_id)

    monkeypatch.setattr(svc.store, "get", counting_get)
    n = 200
    firsts: list[object] = []
    lasts: list[JobStatus] = []
    attached = asyncio.Event()

    async def watcher() -> None:
        last = None
        async for snap in svc.watch(job.id, "k1"):
            if last is None:
                firsts.append(snap)
                if len(firsts) == n:
                    attached.set()
            last = snap
        assert last is not None
        lasts.append(last.status)

    tasks = [asyncio.create_task(watcher()) for _ in range(n)]
    # another key's watcher is refused, even when it shares the read
    async def stranger() -> None:
        async for _ in svc.watch(job.id, "someone-else"):
            pass

    refused = asyncio.create_task(stranger())
    await asyncio.wait_for(attached.wait(), WAIT)
    with pytest.raises(JobNotFound):
        await asyncio.wait_for(refused, WAIT)
    assert reads == [job.id]  # one store read for all n + 1 attaching watchers
    assert len({id(s) for s in firsts}) == 1  # and one decoded copy
    acct.gate.set()
    await asyncio.wait_for(asyncio.gather(*tasks), WAIT)
    assert lasts == [JobStatus.SUCCESS] * n
