"""The retention sweeper on a real SQLite store and a real image directory: what goes, what stays,
in which order, and a loop that outlives its failures and stops on close."""

from __future__ import annotations

import asyncio
import io
import logging
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
from PIL import Image

from adapter.config import ConfigError, load_settings
from adapter.domain.actions import Action
from adapter.domain.jobs import ImageRef, Job, JobStatus
from adapter.engine.retention import DAY_SECONDS, RetentionSweeper
from adapter.media.store import LocalImageStore
from adapter.stores.base import OutboxItem
from adapter.stores.sqlite import SqliteJobStore

NOW = 1_800_000_000_000
DAY_MS = int(DAY_SECONDS * 1000)


def png() -> bytes:
    buf = io.BytesIO()
    Image.new("RGB", (8, 8), (200, 40, 40)).save(buf, "PNG")
    return buf.getvalue()


@pytest.fixture
async def store(tmp_path: Path) -> AsyncIterator[SqliteJobStore]:
    async with SqliteJobStore(tmp_path / "jobs.db") as s:
        yield s


@pytest.fixture
def images(tmp_path: Path) -> LocalImageStore:
    return LocalImageStore(tmp_path / "data")


def sweeper(store: Any, images: Any, **kw: Any) -> RetentionSweeper:
    options: dict[str, Any] = {"retention_seconds": DAY_SECONDS, "interval_seconds": 3600, "clock": lambda: NOW}
    options.update(kw)
    return RetentionSweeper(store, images, **options)


async def add_job(
    store: SqliteJobStore,
    images: LocalImageStore,
    job_id: str,
    *,
    status: JobStatus = JobStatus.SUCCESS,
    finished_ago_ms: int | None = 2 * DAY_MS,
    pictures: int = 2,
) -> tuple[Job, list[ImageRef]]:
    refs = [await images.put(png(), "image/png", job_id=job_id, name=f"{n}.png") for n in range(pictures)]
    finished_at = NOW - finished_ago_ms if finished_ago_ms is not None else None
    job = Job(
        id=job_id,
        owner="o",
        action=Action.IMAGINE,
        status=status,
        created_at=NOW - 10 * DAY_MS,
        finished_at=finished_at,
        image=refs[0] if refs else None,
        images=refs,
    )
    await store.insert(job)
    return job, refs


def outbox(item_id: str, job_id: str, *, state: str = "dead", age_ms: int = 2 * DAY_MS) -> OutboxItem:
    return OutboxItem(
        id=item_id,
        job_id=job_id,
        url="https://hook.invalid/x",
        seq=1,
        body=b"{}",
        created_ms=NOW - age_ms,
        next_attempt_ms=NOW - age_ms,
        state=state,  # type: ignore[arg-type]
    )


def folder(images: LocalImageStore, job_id: str) -> Path:
    return images.root / "images" / job_id


async def test_old_finished_jobs_go_with_their_images_and_the_rest_stays(
    store: SqliteJobStore, images: LocalImageStore, caplog: pytest.LogCaptureFixture
) -> None:
    old = [
        await add_job(store, images, "old-success"),
        await add_job(store, images, "old-failure", status=JobStatus.FAILURE, pictures=1),
        await add_job(store, images, "old-cancel", status=JobStatus.CANCEL, pictures=0),
    ]
    recent, recent_refs = await add_job(store, images, "recent", finished_ago_ms=DAY_MS // 2)
    running, running_refs = await add_job(store, images, "running", status=JobStatus.IN_PROGRESS, finished_ago_ms=None)
    queued, _ = await add_job(store, images, "queued", status=JobStatus.NOT_START, finished_ago_ms=None, pictures=0)
    gone_with_job = outbox("ob-of-old-job", "old-success", state="pending")
    old_dead = outbox("ob-old-dead", "recent")
    old_pending = outbox("ob-old-pending", "recent", state="pending", age_ms=30 * DAY_MS)
    new_dead = outbox("ob-new-dead", "recent", age_ms=DAY_MS // 2)
    for item in (gone_with_job, old_dead, old_pending, new_dead):
        await store.outbox_add(item)
    assert folder(images, "old-success").is_dir()

    with caplog.at_level(logging.INFO, logger="adapter.engine.retention"):
        report = await sweeper(store, images).sweep()

    assert (report.jobs_deleted, report.outbox_purged, report.image_failures) == (3, 1, 0)
    for job, refs in old:
        assert await store.get(job.id) is None
        assert not folder(images, job.id).exists()
        for ref in refs:
            assert await images.get(ref.key) is None
    assert await store.get_many(["recent", "running", "queued"]) == [recent, running, queued]
    for ref in [*recent_refs, *running_refs]:
        assert await images.get(ref.key) is not None
    assert await store.outbox_get("ob-of-old-job") is None
    assert await store.outbox_get("ob-old-dead") is None
    assert await store.outbox_get("ob-old-pending") == old_pending
    assert await store.outbox_get("ob-new-dead") == new_dead
    assert "deleted 3 jobs" in caplog.text and "1 webhook records" in caplog.text

    # a second pass finds nothing more
    again = await sweeper(store, images).sweep()
    assert (again.jobs_deleted, again.outbox_purged) == (0, 0)


async def test_many_jobs_go_in_bounded_batches(store: SqliteJobStore, images: LocalImageStore) -> None:
    for n in range(7):
        await add_job(store, images, f"b{n}", pictures=1, finished_ago_ms=2 * DAY_MS + n)
    calls: list[int] = []

    class CountingStore:
        def __getattr__(self, name: str) -> Any:
            return getattr(store, name)

        async def list_expired(self, before: int, limit: int) -> list[str]:
            calls.append(limit)
            return await store.list_expired(before, limit)

    report = await sweeper(CountingStore(), images, batch_size=3).sweep()
    assert report.jobs_deleted == 7
    assert calls == [3, 3, 3]
    assert await store.list_jobs() == []
    assert not any((images.root / "images").iterdir())


async def test_images_go_before_the_record(store: SqliteJobStore, images: LocalImageStore) -> None:
    await add_job(store, images, "ordered")
    seen: list[tuple[str, bool]] = []

    class WatchingImages:
        async def delete_job(self, job_id: str) -> None:
            seen.append((job_id, await store.get(job_id) is not None))
            await images.delete_job(job_id)

    await sweeper(store, WatchingImages()).sweep()
    # first while the record still exists; once more after it is gone (late writers' leftovers)
    assert seen == [("ordered", True), ("ordered", False)]


async def test_a_job_whose_images_cannot_go_keeps_its_record(store: SqliteJobStore, images: LocalImageStore) -> None:
    for job_id in ("a-stuck", "b-fine", "c-fine"):
        await add_job(store, images, job_id, pictures=1)
    broken = {"a-stuck"}

    class FlakyImages:
        async def delete_job(self, job_id: str) -> None:
            if job_id in broken:
                raise OSError("read-only file system")
            await images.delete_job(job_id)

    # the stuck job heads every listing (oldest first), and must not hide the ones after it
    report = await asyncio.wait_for(sweeper(store, FlakyImages(), batch_size=2).sweep(), 10)
    assert (report.jobs_deleted, report.image_failures) == (2, 1)
    assert [j.id for j in await store.list_jobs()] == ["a-stuck"]
    assert folder(images, "a-stuck").is_dir()

    # an image store failing for everything: a pass gives up after a batch's worth of failures
    for n in range(5):
        await add_job(store, images, f"d-{n}", pictures=0)
    broken.update(f"d-{n}" for n in range(5))
    report = await asyncio.wait_for(sweeper(store, FlakyImages(), batch_size=2).sweep(), 10)
    assert (report.jobs_deleted, report.image_failures) == (0, 2)
    assert len(await store.list_jobs()) == 6

    broken.clear()
    report = await sweeper(store, FlakyImages()).sweep()
    assert report.jobs_deleted == 6 and await store.list_jobs() == []
    assert not folder(images, "a-stuck").exists()


async def test_an_id_the_image_store_refuses_has_no_images_and_its_record_goes(
    store: SqliteJobStore, images: LocalImageStore
) -> None:
    job = Job(id="not/a key", owner="o", action=Action.SHORTEN, status=JobStatus.SUCCESS, finished_at=NOW - 2 * DAY_MS)
    await store.insert(job)
    report = await sweeper(store, images).sweep()
    assert report.jobs_deleted == 1 and await store.get(job.id) is None


async def test_the_loop_survives_a_failing_pass_and_stops_on_close(store: SqliteJobStore, images: LocalImageStore) -> None:
    await add_job(store, images, "eventually")
    calls = 0

    class FailingOnceStore:
        def __getattr__(self, name: str) -> Any:
            return getattr(store, name)

        async def list_expired(self, before: int, limit: int) -> list[str]:
            nonlocal calls
            calls += 1
            if calls == 1:
                raise RuntimeError("database went away for a moment")
            return await store.list_expired(before, limit)

    s = sweeper(FailingOnceStore(), images, interval_seconds=0.01, first_delay_seconds=0)
    s.start()
    try:
        async with asyncio.timeout(10):
            while await store.get("eventually") is not None:
                await asyncio.sleep(0.01)
    finally:
        await s.close()
    assert calls >= 2 and not folder(images, "eventually").exists()
    stopped_at = calls
    await asyncio.sleep(0.05)
    assert calls == stopped_at  # no pass after close
    await s.close()  # idempotent


async def test_first_pass_waits_for_the_first_delay(store: SqliteJobStore, images: LocalImageStore) -> None:
    await add_job(store, images, "later")
    s = sweeper(store, images, interval_seconds=3600)
    assert s.first_delay == 5.0  # shortly after start, not a whole interval
    s.first_delay = 0.05
    s.start()
    try:
        assert await store.get("later") is not None  # not synchronously on start
        async with asyncio.timeout(10):
            while await store.get("later") is not None:
                await asyncio.sleep(0.01)
    finally:
        await s.close()


def test_bad_arguments_are_refused(tmp_path: Path) -> None:
    for bad in ({"retention_seconds": 0}, {"interval_seconds": -1}, {"batch_size": 0}):
        with pytest.raises(ValueError):
            sweeper(None, None, **bad)


# --- settings ---------------------------------------------------------------------------------


def test_retention_is_off_by_default() -> None:
    settings = load_settings(env={})
    assert settings.retention_days is None and settings.retention_interval_seconds == 3600


def test_retention_from_env_and_toml(tmp_path: Path) -> None:
    env = {"MJ_ADAPTER_RETENTION_DAYS": "0.5", "MJ_ADAPTER_RETENTION_INTERVAL_SECONDS": "60"}
    settings = load_settings(env=env)
    assert (settings.retention_days, settings.retention_interval_seconds) == (0.5, 60)
    path = tmp_path / "c.toml"
    path.write_text("retention_days = 30\n")
    assert load_settings(path, env={}).retention_days == 30


@pytest.mark.parametrize(
    "env",
    [
        {"MJ_ADAPTER_RETENTION_DAYS": "0"},
        {"MJ_ADAPTER_RETENTION_DAYS": "-1"},
        {"MJ_ADAPTER_RETENTION_DAYS": "nan"},
        {"MJ_ADAPTER_RETENTION_DAYS": "inf"},
        {"MJ_ADAPTER_RETENTION_DAYS": "soon"},
        {"MJ_ADAPTER_RETENTION_INTERVAL_SECONDS": "0"},
    ],
)
def test_retention_values_must_be_positive(env: dict[str, str]) -> None:
    with pytest.raises(ConfigError, match="retention"):
        load_settings(env=env)
