"""A provider account passes seed requests and cancels on to the upstream's own task API."""

from __future__ import annotations

import sys
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest

from adapter.backends.base import JobFailed, ResultRef
from adapter.backends.mjproxy.account import ProviderAccount, ProviderAccountOptions
from adapter.domain.errors import ErrorCategory

_HERE = str(Path(__file__).parent)
if _HERE not in sys.path:
    sys.path.insert(0, _HERE)
from fake_provider import FakeProvider  # noqa: E402

SECRET = "FAKE-provider-secret-77"


@pytest.fixture
def provider() -> Iterator[FakeProvider]:
    p = FakeProvider()
    yield p
    p.stop()


@pytest.fixture
async def account(provider: FakeProvider) -> AsyncIterator[ProviderAccount]:
    acct = ProviderAccount(ProviderAccountOptions(id="prov", base_url=provider.base, secret=SECRET, reconnect_max_seconds=0.2))
    await acct.start()
    yield acct
    await acct.close()


async def test_seed_comes_from_the_upstream_image_seed(provider: FakeProvider, account: ProviderAccount) -> None:
    provider.answer("image-seed", {"code": 1, "description": "成功", "result": "1259687673"})
    assert await account.seed(ResultRef(message_id="t42", job_hash="h")) == "1259687673"
    req = provider.requests[-1]
    assert (req.method, req.path) == ("GET", "/mj/task/t42/image-seed")
    assert req.headers["mj-api-secret"] == SECRET


@pytest.mark.parametrize(
    ("status", "body", "category"),
    [
        (200, {"code": 9, "description": "timeout, seed not found"}, ErrorCategory.RETRYABLE),
        (400, {"code": 4, "description": "not supported"}, ErrorCategory.INVALID_REQUEST),
        (404, {"code": 3, "description": "no such task"}, ErrorCategory.INVALID_REQUEST),
    ],
)
async def test_seed_refusals(provider: FakeProvider, account: ProviderAccount, status: int, body: dict[str, object], category: ErrorCategory) -> None:
    provider.answer("image-seed", body, status)
    with pytest.raises(JobFailed) as info:
        await account.seed(ResultRef(message_id="t1", job_hash="h"))
    assert info.value.error.category is category


async def test_a_provider_without_image_seed(provider: FakeProvider, account: ProviderAccount) -> None:
    with pytest.raises(JobFailed) as info:
        await account.seed(ResultRef(message_id="t1", job_hash="h"))  # the fake answers 404, no body
    assert info.value.error.category is ErrorCategory.INVALID_REQUEST


async def test_cancel_running_cancels_the_upstream_task(provider: FakeProvider, account: ProviderAccount) -> None:
    provider.answer("cancel", {"code": 1, "description": "ok"})
    assert await account.cancel_running("t7") is True
    assert (provider.requests[-1].method, provider.requests[-1].path) == ("POST", "/mj/task/t7/cancel")
    provider.answer("cancel", {"code": 4, "description": "already finished"})
    assert await account.cancel_running("t7") is False
