"""Fixtures shared by the store tests: one behavioural suite, run against every JobStore.

`backend` is parametrized over the implementations; each test gets a fresh SQLite file or a
fresh Redis key prefix from the `redis_prefix` fixture (its keys are deleted afterwards, pass or
fail). `backend.make()` builds another store on the same data, for re-open and two-replica
tests.

Redis comes from the `redis_url` fixture in tests/conftest.py.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from pathlib import Path

import pytest

from adapter.domain.actions import Action, Bot, Mode
from adapter.domain.buttons import Button
from adapter.domain.errors import ErrorCategory
from adapter.domain.jobs import ImageRef, Job, JobStatus
from adapter.stores.base import JobStore
from adapter.stores.redis import RedisJobStore
from adapter.stores.sqlite import SqliteJobStore

class Backend:
    """Makes stores that all see the same data (one SQLite file, or one Redis prefix)."""

    def __init__(self, kind: str, make: Callable[[], JobStore]) -> None:
        self.kind = kind
        self._make = make

    def make(self) -> JobStore:
        return self._make()


@pytest.fixture(params=["sqlite", "redis"])
def backend(request: pytest.FixtureRequest, tmp_path: Path) -> Backend:
    if request.param == "sqlite":
        path = tmp_path / "jobs.db"
        return Backend("sqlite", lambda: SqliteJobStore(path))
    url = request.getfixturevalue("redis_url")
    # deleted with every key under it when the test ends, pass or fail (tests/conftest.py)
    prefix = request.getfixturevalue("redis_prefix")
    return Backend("redis", lambda: RedisJobStore(url, prefix=prefix))


@pytest.fixture
async def store(backend: Backend) -> AsyncIterator[JobStore]:
    s = backend.make()
    await s.open()
    try:
        yield s
    finally:
        await s.close()


@pytest.fixture
def full_job() -> Job:
    """A job with every field set to something other than its default."""
    return Job(
        id="job-full-1",
        owner="key-7",
        action=Action.UPSCALE,
        status=JobStatus.SUCCESS,
        prompt="a red fox in snow --ar 16:9",
        final_prompt="a red fox in snow --ar 16:9 --v 6.1",
        mode=Mode.RELAX,
        bot=Bot.NIJI,
        parent_id="job-parent-0",
        index=2,
        custom_id="MJ::JOB::upsample::2::a1b2c3d4-0000-4000-8000-000000000001",
        modal_prompt="zoomed fox",
        progress=100,
        preview_url="https://example.invalid/preview.webp",
        image=ImageRef(key="img/job-full-1.png", width=2048, height=1152, content_type="image/png"),
        images=[
            ImageRef(key="img/job-full-1-0.png", width=1024, height=576),
            ImageRef(key="img/job-full-1-1.webp", width=1024, height=576, content_type="image/webp"),
        ],
        source_image_url="https://cdn.example.invalid/a.png?ex=1",
        account_id="acct-3",
        message_id="1234567890123456789",
        message_flags=64,
        job_hash="a1b2c3d4-0000-4000-8000-000000000001",
        nonce="1111111111111111111",
        progress_message_id="1234567890123456000",
        buttons=[
            Button(custom_id="MJ::JOB::upsample::1::a1b2c3d4-0000-4000-8000-000000000001", label="U1"),
            Button(custom_id="MJ::JOB::reroll::0::a1b2c3d4-0000-4000-8000-000000000001::SOLO", emoji="🔄", style=1),
            Button(label="Web", style=5, url="https://www.midjourney.com/jobs/x"),
        ],
        result_texts=["one", "two — 二"],
        fail_reason="none really",
        error_category=ErrorCategory.RETRYABLE,
        created_at=1_700_000_000_123,
        started_at=1_700_000_001_000,
        finished_at=1_700_000_060_000,
        webhook_url="https://hooks.example.invalid/mj",
        idempotency_key="idem-abc",
        state="caller-state",
        attempts=1,
        extra={"fingerprint": "fp-123", "note": "x"},
    )
