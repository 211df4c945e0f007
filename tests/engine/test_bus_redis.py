"""RedisJobBus: job snapshots between replicas through one Redis stream, against a real Redis
(each test under its own key prefix): ordering, local-only listeners, no double delivery,
coalescing that never loses a final snapshot, reconnects (CLIENT KILL, and a read gap resumed
from the last id), close, and delivery from another process."""

from __future__ import annotations

import asyncio
import gc
import os
import sys
import textwrap
import time
import uuid
import warnings
from collections.abc import AsyncIterator, Callable
from pathlib import Path

import pytest
import redis.asyncio as aioredis
import redis.exceptions as redis_errors

from adapter.domain.actions import Action
from adapter.domain.jobs import Job, JobStatus
from adapter.engine.bus_redis import RedisJobBus

pytestmark = pytest.mark.timeout(30)

ROOT = Path(__file__).resolve().parents[2]


def snap(job_id: str, progress: int, status: JobStatus = JobStatus.IN_PROGRESS) -> Job:
    return Job(id=job_id, owner="k1", action=Action.IMAGINE, prompt="cat", status=status, progress=progress, created_at=1)


async def next_snapshot(q: asyncio.Queue[Job | None], timeout: float = 1.0) -> Job | None:
    return await asyncio.wait_for(q.get(), timeout)


async def until(cond: Callable[[], bool], timeout: float = 3.0) -> None:
    deadline = time.monotonic() + timeout
    while not cond():
        if time.monotonic() > deadline:
            raise AssertionError("condition not met in time")
        await asyncio.sleep(0.01)


@pytest.fixture
async def clients(redis_url: str) -> AsyncIterator[Callable[..., aioredis.Redis]]:
    made: list[aioredis.Redis] = []

    def new(**kw: object) -> aioredis.Redis:
        c = aioredis.Redis.from_url(redis_url, decode_responses=False, socket_connect_timeout=5, **kw)
        made.append(c)
        return c

    try:
        yield new
    finally:
        for c in made:
            await c.aclose()


@pytest.fixture
async def pair(clients: Callable[..., aioredis.Redis], redis_prefix: str) -> AsyncIterator[tuple[RedisJobBus, RedisJobBus]]:
    a = RedisJobBus(clients(), redis_prefix, "A", block_ms=500)
    b = RedisJobBus(clients(), redis_prefix, "B", block_ms=500)
    await a.start()
    await b.start()
    try:
        yield a, b
    finally:
        await a.close()
        await b.close()


async def test_subscriber_gets_other_replicas_snapshots_in_order(pair: tuple[RedisJobBus, RedisJobBus]) -> None:
    a, b = pair
    q = a.subscribe("j1")
    for p in range(0, 100, 10):
        b.publish(snap("j1", p))
        await asyncio.sleep(0.005)
    b.publish(snap("j1", 100, JobStatus.SUCCESS))
    published = time.monotonic()
    seen: list[Job] = []
    while not seen or not seen[-1].status.finished:
        job = await next_snapshot(q, 1.0)
        assert job is not None
        seen.append(job)
    assert time.monotonic() - published < 1.0
    progress = [j.progress for j in seen]
    assert progress == sorted(set(progress)), progress  # in order, each once
    assert seen[-1] == snap("j1", 100, JobStatus.SUCCESS)
    assert len(seen) >= 2  # spaced-out snapshots really travelled one by one
    a.unsubscribe("j1", q)
    assert "j1" not in a._subs


async def test_listeners_see_local_events_only_and_own_events_come_once(pair: tuple[RedisJobBus, RedisJobBus]) -> None:
    a, b = pair
    heard_a: list[str] = []
    heard_b: list[str] = []
    a.add_listener(lambda j: heard_a.append(j.id))
    b.add_listener(lambda j: heard_b.append(j.id))
    qa_own = a.subscribe("ja")
    qa_remote = a.subscribe("jb")
    qb_remote = b.subscribe("ja")

    a.publish(snap("ja", 50))
    assert qa_own.get_nowait() == snap("ja", 50)  # local delivery is immediate
    await until(lambda: a.sent == 1)
    b.publish(snap("jb", 60))  # its stream entry comes after A's own
    assert await next_snapshot(qa_remote) == snap("jb", 60)  # so A's reader has passed its own entry
    assert await next_snapshot(qb_remote) == snap("ja", 50)
    assert qa_own.empty()  # A's own event was not delivered a second time from Redis
    assert heard_a == ["ja"]
    assert heard_b == ["jb"]
    assert a.received == 1 and b.received == 1


async def test_rapid_snapshots_coalesce_but_final_arrives(pair: tuple[RedisJobBus, RedisJobBus]) -> None:
    a, b = pair
    q = a.subscribe("burst")
    for i in range(999):
        b.publish(snap("burst", i // 10))
    b.publish(snap("burst", 100, JobStatus.SUCCESS))
    seen: list[Job] = []
    while not seen or not seen[-1].status.finished:
        job = await next_snapshot(q, 2.0)
        assert job is not None
        seen.append(job)
    assert seen[-1] == snap("burst", 100, JobStatus.SUCCESS)
    progress = [j.progress for j in seen]
    assert progress == sorted(progress)
    assert len(seen) < 1000  # intermediate ones were coalesced (published faster than sent)
    await asyncio.sleep(0.1)
    assert q.empty()  # nothing after the final one


async def test_pending_queue_is_bounded_and_keeps_final_snapshots(
    clients: Callable[..., aioredis.Redis], redis_prefix: str
) -> None:
    bus = RedisJobBus(clients(), redis_prefix, "X", max_pending=5)  # not started: nothing is sent
    for i in range(10):
        bus.publish(snap(f"done{i}", 100, JobStatus.SUCCESS))
    for i in range(10):
        bus.publish(snap(f"run{i}", 1))
    assert len(bus._pending) == 10 and bus.dropped == 10
    assert all(j.status.finished for j in bus._pending.values())
    # an unfinished snapshot never replaces a pending final one; a newer one replaces an older one
    bus.publish(snap("done0", 5))
    assert bus._pending["done0"].status is JobStatus.SUCCESS
    bus.publish(snap("done1", 100, JobStatus.FAILURE))
    assert bus._pending["done1"].status is JobStatus.FAILURE
    await bus.close()  # never started: nothing to flush or stop


async def test_connection_kill_then_events_still_arrive(
    clients: Callable[..., aioredis.Redis], redis_prefix: str
) -> None:
    name = f"bus-test-{uuid.uuid4().hex[:10]}"
    a_client = clients(client_name=name)
    admin = clients()
    a = RedisJobBus(a_client, redis_prefix, "A", block_ms=300)
    b = RedisJobBus(clients(), redis_prefix, "B", block_ms=300)
    await a.start()
    await b.start()
    try:
        q = a.subscribe("k1")
        b.publish(snap("k1", 10))
        assert await next_snapshot(q) == snap("k1", 10)
        await asyncio.sleep(0.05)  # the reader is back in its blocking XREAD
        killed = 0
        for info in await admin.client_list():
            if info.get("name") == name:
                killed += int(await admin.client_kill_filter(_id=info["id"]))
        assert killed >= 1
        b.publish(snap("k1", 20))
        b.publish(snap("k1", 100, JobStatus.SUCCESS))
        last = None
        while last is None or not last.status.finished:
            last = await next_snapshot(q, 3.0)
            assert last is not None
        assert last == snap("k1", 100, JobStatus.SUCCESS)
        # and A can still send after losing its connections
        qb = b.subscribe("k2")
        a.publish(snap("k2", 1))
        assert await next_snapshot(qb, 3.0) == snap("k2", 1)
    finally:
        await a.close()
        await b.close()


async def test_read_gap_resumes_from_last_id(pair: tuple[RedisJobBus, RedisJobBus], monkeypatch: pytest.MonkeyPatch) -> None:
    """Redis unreachable for A's reader while B publishes: after it comes back, A gets what was
    published during the gap (a reader that restarted from `$` would not)."""
    a, b = pair
    q = a.subscribe("g1")
    b.publish(snap("g1", 1))
    assert await next_snapshot(q) == snap("g1", 1)

    real_xread = a._redis.xread
    down = True

    async def xread(*args: object, **kw: object) -> object:
        if down:
            raise redis_errors.ConnectionError("simulated outage")
        return await real_xread(*args, **kw)

    monkeypatch.setattr(a._redis, "xread", xread)
    await until(lambda: a.reconnects >= 1)  # the in-flight read ended; the next one failed
    before = b.sent
    for p in (20, 40, 60):
        b.publish(snap("g1", p))
        await until(lambda: b.sent > before)
        before = b.sent
    b.publish(snap("g1", 100, JobStatus.SUCCESS))
    await until(lambda: b.sent > before)
    await asyncio.sleep(0.1)
    assert q.empty()  # nothing got through while down
    down = False
    seen: list[Job] = []
    while not seen or not seen[-1].status.finished:
        job = await next_snapshot(q, 3.0)
        assert job is not None
        seen.append(job)
    assert [j.progress for j in seen] == [20, 40, 60, 100]


async def test_trimmed_gap_resyncs_watched_jobs(
    clients: Callable[..., aioredis.Redis], redis_prefix: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A gap longer than the stream keeps: the bus notices and re-reads watched jobs."""
    final = snap("t1", 100, JobStatus.SUCCESS)
    store = {"t1": final}

    async def resync(job_id: str) -> Job | None:
        return store.get(job_id)

    a = RedisJobBus(clients(), redis_prefix, "A", block_ms=200, resync=resync)
    b = RedisJobBus(clients(), redis_prefix, "B", maxlen=10)
    await a.start()
    await b.start()
    try:
        q = a.subscribe("t1")
        b.publish(snap("t1", 1))
        assert await next_snapshot(q) == snap("t1", 1)
        real_xread = a._redis.xread
        down = True

        async def xread(*args: object, **kw: object) -> object:
            if down:
                raise redis_errors.ConnectionError("simulated outage")
            return await real_xread(*args, **kw)

        monkeypatch.setattr(a._redis, "xread", xread)
        await until(lambda: a.reconnects >= 1)
        b.publish(final)
        await until(lambda: b.sent == 2)
        for i in range(600):  # other jobs push t1's final entry out of the trimmed stream
            b.publish(snap(f"other{i}", 1))
        await until(lambda: b.sent == 602)
        kept = await b._redis.xrange(b.stream_key)
        assert len(kept) < 600 and all(f[b"j"] != b"t1" for _, f in kept)  # t1's entries are gone
        down = False
        assert await next_snapshot(q, 3.0) == final
    finally:
        await a.close()
        await b.close()


async def test_close_flushes_stops_tasks_and_closes_watchers(
    clients: Callable[..., aioredis.Redis], redis_prefix: str
) -> None:
    a = RedisJobBus(clients(), redis_prefix, "A", block_ms=2000)
    b = RedisJobBus(clients(), redis_prefix, "B", block_ms=2000)
    await a.start()
    await b.start()
    q = a.subscribe("c1")
    watcher_b = b.subscribe("c1")
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        b.publish(snap("c1", 100, JobStatus.SUCCESS))
        started = time.monotonic()
        await b.close()  # flushes the pending final snapshot before stopping
        assert time.monotonic() - started < 1.5  # did not wait for the blocking read to end
        assert await next_snapshot(q) == snap("c1", 100, JobStatus.SUCCESS)
        await a.close()
        gc.collect()
    assert [str(w.message) for w in caught] == []
    names = {t.get_name() for t in asyncio.all_tasks()}
    assert not any(n.startswith("bus-") for n in names), names
    assert a.closed and b.closed
    assert watcher_b.get_nowait() == snap("c1", 100, JobStatus.SUCCESS)
    assert watcher_b.get_nowait() is None  # told: no more snapshots from here
    assert q.get_nowait() is None
    late = a.subscribe("c2")
    assert late.get_nowait() is None  # like JobBus: subscribing after close gets None at once
    b.publish(snap("c1", 100, JobStatus.SUCCESS))  # publishing after close does not queue anything
    assert not b._pending


_CHILD = textwrap.dedent(
    """
    import asyncio, sys
    import redis.asyncio as aioredis
    from adapter.domain.actions import Action
    from adapter.domain.jobs import Job, JobStatus
    from adapter.engine.bus_redis import RedisJobBus

    async def main(url, prefix):
        client = aioredis.Redis.from_url(url, decode_responses=False)
        bus = RedisJobBus(client, prefix, "child")
        await bus.start()
        for p in (10, 50):
            bus.publish(Job(id="x1", owner="k1", action=Action.IMAGINE, progress=p,
                            status=JobStatus.IN_PROGRESS))
            await asyncio.sleep(0.02)
        bus.publish(Job(id="x1", owner="k1", action=Action.IMAGINE, progress=100,
                        status=JobStatus.SUCCESS, fail_reason="from pid %d" % __import__("os").getpid()))
        await bus.close()
        await client.aclose()

    asyncio.run(main(sys.argv[1], sys.argv[2]))
    """
)


async def test_snapshots_from_another_process(pair: tuple[RedisJobBus, RedisJobBus], redis_url: str, redis_prefix: str) -> None:
    a, _b = pair
    q = a.subscribe("x1")
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-c", _CHILD, redis_url, redis_prefix,
        cwd=ROOT, env={**os.environ, "PYTHONPATH": str(ROOT)},
        stderr=asyncio.subprocess.PIPE,
    )
    try:
        _, err = await asyncio.wait_for(proc.communicate(), 20)
    finally:
        if proc.returncode is None:
            proc.kill()
            await proc.wait()
    assert proc.returncode == 0, err.decode()
    seen: list[Job] = []
    while not seen or not seen[-1].status.finished:
        job = await next_snapshot(q, 3.0)
        assert job is not None
        seen.append(job)
    assert [j.progress for j in seen] == [10, 50, 100]
    assert seen[-1].fail_reason == f"from pid {proc.pid}"
    assert proc.pid != os.getpid()
