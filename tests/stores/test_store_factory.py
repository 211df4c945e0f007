"""open_store: one URL picks and configures the store."""

from __future__ import annotations

from pathlib import Path

import pytest

from adapter.domain.actions import Action
from adapter.domain.jobs import Job
from adapter.stores import open_store
from adapter.stores.redis import RedisJobStore
from adapter.stores.sqlite import SqliteJobStore


def test_sqlite_urls() -> None:
    s = open_store("sqlite:///var/lib/mj/jobs.db")
    assert isinstance(s, SqliteJobStore) and s.path == "/var/lib/mj/jobs.db" and s.synchronous == "FULL"
    assert open_store("sqlite://data/jobs.db").path == "data/jobs.db"  # type: ignore[attr-defined]
    assert open_store("sqlite://:memory:").path == ":memory:"  # type: ignore[attr-defined]
    s = open_store("sqlite:///x.db?synchronous=normal&busy_timeout_ms=250")
    assert isinstance(s, SqliteJobStore) and s.synchronous == "NORMAL" and s.busy_timeout_ms == 250


def test_redis_urls() -> None:
    s = open_store("redis://:pw@127.0.0.1:6379/3?prefix=prod&max_connections=7")
    assert isinstance(s, RedisJobStore) and s.prefix == "prod"
    assert s._url == "redis://:pw@127.0.0.1:6379/3?max_connections=7"
    assert open_store("redis://127.0.0.1").prefix == "mj"  # type: ignore[attr-defined]
    assert isinstance(open_store("rediss://h:6380/0"), RedisJobStore)


@pytest.mark.parametrize(
    "url",
    ["postgres://x/y", "jobs.db", "sqlite:///x.db?synchronous=OFF", "sqlite:///x.db?bogus=1", "redis://h/0?prefix="],
)
def test_bad_urls_are_refused(url: str) -> None:
    with pytest.raises(ValueError):
        open_store(url)


async def test_opened_store_from_url_works(tmp_path: Path) -> None:
    async with open_store(f"sqlite://{tmp_path}/a/jobs.db") as store:  # type: ignore[attr-defined]
        await store.insert(Job(id="x", owner="", action=Action.IMAGINE))
        assert (await store.get("x")) is not None
    assert (tmp_path / "a" / "jobs.db").exists()


def test_both_stores_satisfy_the_protocol() -> None:
    from adapter.stores import JobStore

    assert isinstance(open_store("sqlite://:memory:"), JobStore)
    assert isinstance(open_store("redis://127.0.0.1/0"), JobStore)


def test_which_stores_replicas_share() -> None:
    from adapter.stores.factory import is_shared_store

    assert is_shared_store("redis://h:6379/0?prefix=mj") and is_shared_store("rediss://h/0") and is_shared_store("unix:///run/redis.sock")
    assert not is_shared_store("sqlite:///var/lib/mj/jobs.db") and not is_shared_store("sqlite://:memory:")
