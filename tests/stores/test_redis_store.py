"""What only the Redis store has: key prefixes, a URL with a password, a server that can be gone."""

from __future__ import annotations

import socket
from collections.abc import AsyncIterator, Callable

import pytest
import redis.asyncio as aioredis

from adapter.domain.actions import Action
from adapter.domain.jobs import Job, JobStatus
from adapter.stores.base import OutboxItem, StoreUnavailable
from adapter.stores.redis import RedisJobStore, redact_url


def _job(job_id: str = "j1", **kw: object) -> Job:
    return Job(id=job_id, owner="o", action=Action.IMAGINE, created_at=1_700_000_000_000, **kw)  # type: ignore[arg-type]


@pytest.fixture
async def raw(redis_url: str) -> AsyncIterator[aioredis.Redis]:
    client = aioredis.Redis.from_url(redis_url)
    yield client
    await client.aclose()


@pytest.fixture
def prefixes(redis_prefix_factory: Callable[[], str]) -> Callable[[], str]:
    """Fresh key prefixes; every key under them is deleted when the test ends, pass or fail."""
    return redis_prefix_factory


def _prefix(prefixes: Callable[[], str]) -> str:
    return prefixes()


async def test_prefixes_isolate_deployments(redis_url: str, prefixes: Callable[[], str]) -> None:
    async with RedisJobStore(redis_url, prefix=_prefix(prefixes)) as a, RedisJobStore(
        redis_url, prefix=_prefix(prefixes)
    ) as b:
        await a.insert(_job(message_id="m", idempotency_key="k"))
        assert await b.get("j1") is None
        assert await b.find_by_message("m") is None
        assert await b.list_jobs() == []
        assert await b.count_by_status() == {}
        await b.insert(_job())  # same id, other prefix: no clash


async def test_every_key_lives_under_the_prefix_and_updates_leave_no_stale_index(
    redis_url: str, raw: aioredis.Redis, prefixes: Callable[[], str]
) -> None:
    prefix = _prefix(prefixes)
    async with RedisJobStore(redis_url, prefix=prefix) as store:
        await store.insert(_job(message_id="m1", job_hash="h1", parent_id="p"))
        await store.update(_job(status=JobStatus.SUCCESS, message_id="m2", job_hash="h1"))
        item = OutboxItem(id="o", job_id="j1", url="u", seq=1, body=b"", created_ms=0, next_attempt_ms=0)
        await store.outbox_add(item)
        keys = sorted(k.decode() for k in [k async for k in raw.scan_iter(match=f"{prefix}:*")])
        assert keys == sorted(
            f"{prefix}:{k}"
            for k in [
                "job:j1",
                "idx:all",
                "idx:owner:o",
                "idx:status:SUCCESS",
                "idx:action:IMAGINE",
                "idx:finished",
                "idx:msg:m2",
                "idx:hash:h1",
                "counts",
                "meta",
                "ob:item:o",
                "ob:due",
                "ob:q:2:j1:u",
                "ob:job:j1",
            ]
        )
        await store.outbox_delete("o")
        assert not [k async for k in raw.scan_iter(match=f"{prefix}:ob:*")]


def test_repr_and_redaction_hide_the_password() -> None:
    store = RedisJobStore("redis://user:s3cret-pw@127.0.0.1:6379/0", prefix="p")
    assert "s3cret-pw" not in repr(store)
    assert redact_url("redis://:s3cret-pw@host:1/2?x=1") == "redis://:***@host:1/2?x=1"
    assert redact_url("redis://host:1/2") == "redis://host:1/2"


async def test_unreachable_server_is_unavailable_without_leaking_password() -> None:
    with socket.socket() as sock:  # a port nobody listens on
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    store = RedisJobStore(f"redis://:s3cret-pw@127.0.0.1:{port}/0", prefix="p")
    with pytest.raises(StoreUnavailable) as err:
        await store.open()
    assert "s3cret-pw" not in str(err.value)
    with pytest.raises(StoreUnavailable):
        await store.get("j1")
    await store.close()


async def test_a_client_handed_in_is_not_closed(redis_url: str, raw: aioredis.Redis, prefixes: Callable[[], str]) -> None:
    async with RedisJobStore(redis_url, prefix=_prefix(prefixes), client=raw) as store:
        await store.insert(_job())
    assert await raw.ping()


async def test_data_from_before_retention_is_indexed_once_on_open(
    redis_url: str, raw: aioredis.Redis, prefixes: Callable[[], str]
) -> None:
    """Jobs and outbox items written by an adapter without retention (no idx:finished, no
    ob:closed / ob:job, items without `s` / `j`) are indexed when a store opens the prefix."""
    import json

    prefix = _prefix(prefixes)
    done = _job("old-done", status=JobStatus.SUCCESS, finished_at=1_700_000_000_500)
    running = _job("old-running", status=JobStatus.IN_PROGRESS)
    dead = OutboxItem(id="ob-dead", job_id="old-done", url="u", seq=1, body=b"", created_ms=5, next_attempt_ms=5, state="dead")
    pending = OutboxItem(id="ob-pending", job_id="old-done", url="u", seq=2, body=b"", created_ms=5, next_attempt_ms=5)
    async with RedisJobStore(redis_url, prefix=prefix) as store:
        for j in (done, running):
            await store.insert(j)
        for it in (dead, pending):
            await store.outbox_add(it)
    # turn it back into what the older adapter wrote
    finished_key = f"{prefix}:idx:finished"
    x = [k for k in json.loads(await raw.hget(f"{prefix}:job:old-done", "x")) if k != finished_key]
    await raw.hset(f"{prefix}:job:old-done", "x", json.dumps(x))
    await raw.delete(finished_key, f"{prefix}:ob:closed", f"{prefix}:ob:job:old-done", f"{prefix}:meta")
    for item_id in ("ob-dead", "ob-pending"):
        await raw.hdel(f"{prefix}:ob:item:{item_id}", "s", "j")

    async with RedisJobStore(redis_url, prefix=prefix) as store:
        assert await raw.hget(f"{prefix}:meta", "retention") == b"1"
        assert await store.list_expired(2**62, 10) == ["old-done"]
        assert await store.get("old-done") == done
        assert await store.count_by_status() == {("SUCCESS", "IMAGINE"): 1, ("IN_PROGRESS", "IMAGINE"): 1}
        assert await store.outbox_purge(6) == 1
        assert await store.outbox_get("ob-pending") == pending
        assert await store.delete_jobs(["old-done"]) == 1
        assert await store.outbox_get("ob-pending") is None
        assert await store.outbox_due(2**62) == []
        assert not [k async for k in raw.scan_iter(match=f"{prefix}:ob:*")]
        assert not [k async for k in raw.scan_iter(match=f"{prefix}:idx:finished")]


async def test_indexing_old_data_pages_through_many_records(
    redis_url: str, raw: aioredis.Redis, prefixes: Callable[[], str]
) -> None:
    import json

    prefix = _prefix(prefixes)
    n = 450  # more than two pages
    async with RedisJobStore(redis_url, prefix=prefix) as store:
        for i in range(n):
            await store.insert(_job(f"old{i:03d}", status=JobStatus.FAILURE, finished_at=1_700_000_000_000 + i))
            await store.outbox_add(
                OutboxItem(id=f"ob{i:03d}", job_id="x", url="u", seq=i, body=b"", created_ms=i, next_attempt_ms=0, state="dead")
            )
    finished_key = f"{prefix}:idx:finished"
    pipe = raw.pipeline(transaction=False)
    for i in range(n):
        x = [k for k in json.loads(await raw.hget(f"{prefix}:job:old{i:03d}", "x")) if k != finished_key]
        pipe.hset(f"{prefix}:job:old{i:03d}", "x", json.dumps(x))
        pipe.hdel(f"{prefix}:ob:item:ob{i:03d}", "s", "j")
    pipe.delete(finished_key, f"{prefix}:ob:closed", f"{prefix}:ob:job:x", f"{prefix}:meta")
    await pipe.execute()

    async with RedisJobStore(redis_url, prefix=prefix) as store:
        assert await store.list_expired(2**62, 1000) == [f"old{i:03d}" for i in range(n)]
        assert await store.outbox_purge(2**62) == n
        assert await store.delete_jobs([f"old{i:03d}" for i in range(n)]) == n
        assert await store.count_by_status() == {}
