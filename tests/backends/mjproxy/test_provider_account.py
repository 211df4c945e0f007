"""The midjourney-proxy provider account against a scripted provider on loopback: what it
submits where, how it follows a task, and how it maps the provider's answers."""

from __future__ import annotations

import asyncio
import base64
import sys
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest

from adapter.backends.base import (
    AccountState,
    Blend,
    Describe,
    ImageInput,
    Imagine,
    JobEvent,
    JobFailed,
    NotSent,
    PressButton,
    RecoveryProbe,
    Shorten,
)
from adapter.backends.mjproxy.account import ProviderAccount, ProviderAccountOptions
from adapter.domain.actions import Bot, Mode
from adapter.domain.errors import ErrorCategory

_HERE = str(Path(__file__).parent)
if _HERE not in sys.path:
    sys.path.insert(0, _HERE)
from fake_provider import FakeProvider  # noqa: E402

SECRET = "FAKE-provider-secret-77"
HASH = "0f1e2d3c-4b5a-6978-8796-a5b4c3d2e1f0"
BUTTONS = [
    {"customId": f"MJ::JOB::upsample::{i}::{HASH}", "emoji": "", "label": f"U{i}", "type": 2, "style": 2} for i in range(1, 5)
] + [{"customId": f"MJ::JOB::reroll::0::{HASH}::SOLO", "emoji": "🔄", "label": "", "type": 2, "style": 2}]
PNG = ImageInput("a.png", "image/png", b"\x89PNG fake bytes")


@pytest.fixture
def provider() -> Iterator[FakeProvider]:
    p = FakeProvider()
    yield p
    p.stop()


def options(provider: FakeProvider, **over: object) -> ProviderAccountOptions:
    base: dict[str, object] = {
        "id": "prov",
        "base_url": provider.base + "/mj/",
        "secret": SECRET,
        "modes": (Mode.FAST, Mode.RELAX),
        "poll_initial_seconds": 0.01,
        "poll_interval_seconds": 0.05,
        "reconnect_max_seconds": 0.2,
    }
    base.update(over)
    return ProviderAccountOptions(**base)  # type: ignore[arg-type]


@pytest.fixture
async def account(provider: FakeProvider) -> AsyncIterator[ProviderAccount]:
    acct = ProviderAccount(options(provider))
    await acct.start()
    yield acct
    await acct.close()


def success(**over: object) -> dict[str, object]:
    snap: dict[str, object] = {
        "status": "SUCCESS",
        "progress": "100%",
        "imageUrl": "/images/grid.png",
        "prompt": "a cat",
        "buttons": BUTTONS,
        "properties": {"finalPrompt": "a cat --relax", "messageHash": HASH, "flags": 0},
    }
    snap.update(over)
    return snap


async def test_imagine_is_submitted_once_and_followed_to_its_result(provider: FakeProvider, account: ProviderAccount) -> None:
    provider.script(
        "t1",
        {"status": "NOT_START", "progress": "0%"},
        {"status": "IN_PROGRESS", "progress": "31%", "imageUrl": "/images/p1.webp"},
        {"status": "IN_PROGRESS", "progress": "31%", "imageUrl": "/images/p1.webp"},
        {"status": "IN_PROGRESS", "progress": "78%", "imageUrl": "https://cdn.example/p2.webp"},
        success(),
    )
    events: list[JobEvent] = []
    nonces: list[str] = []

    async def before_send(nonce: str) -> None:
        assert provider.submits() == []  # persisted before anything reaches the provider
        nonces.append(nonce)

    out = await account.run(Imagine(prompt="a cat", images=(PNG,), bot=Bot.NIJI), Mode.RELAX, events.append, before_send=before_send)

    [req] = provider.submits()
    assert req.path == "/mj-relax/mj/submit/imagine" and req.headers["mj-api-secret"] == SECRET
    assert req.body["prompt"] == "a cat" and req.body["botType"] == "NIJI_JOURNEY"
    assert req.body["base64Array"] == ["data:image/png;base64," + base64.b64encode(PNG.data).decode()]
    # the task id is reported first (the engine keeps it for recovery), then each new state once
    assert events[0].kind == "submitted" and events[0].nonce == nonces[0] and events[0].message_id == "t1"
    progress = [(e.progress, e.preview_url) for e in events if e.kind == "progress"]
    assert progress == [(31, provider.base + "/images/p1.webp"), (78, "https://cdn.example/p2.webp")]
    assert out.account_id == "prov" and out.message_id == "t1" and out.job_hash == HASH
    assert out.image_url == provider.base + "/images/grid.png" and out.prompt == "a cat --relax"
    assert [b.custom_id for b in out.buttons] == [b["customId"] for b in BUTTONS] and out.buttons[-1].emoji == "🔄"
    assert out.mode is Mode.RELAX and account.status().running == 0


async def test_without_mode_prefixes_the_mode_rides_in_the_prompt(provider: FakeProvider) -> None:
    acct = ProviderAccount(options(provider, mode_prefix=False))
    await acct.start()
    try:
        provider.script("t1", success())
        provider.script("t2", success())
        await acct.run(Imagine(prompt="a cat"), Mode.RELAX, lambda e: None)
        await acct.run(Imagine(prompt="a dog --fast"), Mode.RELAX, lambda e: None)
    finally:
        await acct.close()
    first, second = provider.submits()
    assert first.path == "/mj/submit/imagine" and first.body["prompt"] == "a cat --relax"
    assert second.body["prompt"] == "a dog --fast"


@pytest.mark.parametrize(
    ("answer", "category", "words"),
    [
        ({"code": 24, "description": "banned prompt", "properties": {"bannedWord": "gore"}}, ErrorCategory.CONTENT_POLICY, "gore"),
        ({"code": 4, "description": "prompt is required"}, ErrorCategory.INVALID_REQUEST, "prompt is required"),
        ({"code": 9, "description": "system error"}, ErrorCategory.RETRYABLE, "system error"),
        ({"code": 3, "description": "no available account"}, ErrorCategory.RETRYABLE, "no available account"),
        ({"code": 23, "description": "queue full"}, ErrorCategory.QUEUE_FULL, "queue full"),
    ],
)
async def test_submit_refusals(provider: FakeProvider, account: ProviderAccount, answer: dict[str, object], category: ErrorCategory, words: str) -> None:
    provider.answer("imagine", answer)
    with pytest.raises(JobFailed) as err:
        await account.run(Imagine(prompt="x"), Mode.FAST, lambda e: None)
    assert err.value.error.category is category and words in err.value.error.message
    if category is ErrorCategory.QUEUE_FULL:
        assert account.status().state is AccountState.COOLING_DOWN
    else:
        assert account.status().state is AccountState.READY


async def test_a_refused_secret_disables_the_account(provider: FakeProvider, account: ProviderAccount) -> None:
    provider.status = 401
    with pytest.raises(JobFailed) as err:
        await account.run(Imagine(prompt="x"), Mode.FAST, lambda e: None)
    assert err.value.error.category is ErrorCategory.ACCOUNT and SECRET not in err.value.error.message
    st = account.status()
    assert st.state is AccountState.DISABLED and "secret" in (st.reason or "") and SECRET not in (st.reason or "")
    with pytest.raises(NotSent):
        await account.run(Imagine(prompt="x"), Mode.FAST, lambda e: None)


async def test_queued_upstream_is_reported(provider: FakeProvider, account: ProviderAccount) -> None:
    provider.answer("imagine", {"code": 22, "description": "queued, 2 ahead", "result": "tq", "properties": {"numberOfQueues": 2}})
    provider.script("tq", {"status": "SUBMITTED", "progress": "0%"}, success())
    events: list[JobEvent] = []
    await account.run(Imagine(prompt="x"), Mode.FAST, events.append)
    assert [e.kind for e in events][:3] == ["submitted", "queued", "waiting"]


@pytest.mark.parametrize(
    ("snapshot", "category"),
    [
        ({"status": "FAILURE", "failReason": "Banned prompt detected"}, ErrorCategory.CONTENT_POLICY),
        ({"status": "FAILURE", "failReason": "Invalid parameter --ar 9:99:1"}, ErrorCategory.INVALID_REQUEST),
        ({"status": "FAILURE", "failReason": "Sorry! Could not complete the job!"}, ErrorCategory.RETRYABLE),
        ({"status": "FAILURE", "failReason": "whatever", "properties": {"errorCategory": "timeout"}}, ErrorCategory.TIMEOUT),
        ({"status": "CANCEL", "failReason": "cancelled by the owner"}, ErrorCategory.CANCELLED),
    ],
)
async def test_failed_tasks_keep_their_reason_and_category(provider: FakeProvider, account: ProviderAccount, snapshot: dict[str, object], category: ErrorCategory) -> None:
    provider.script("t1", {"status": "IN_PROGRESS", "progress": "10%"}, snapshot)
    with pytest.raises(JobFailed) as err:
        await account.run(Imagine(prompt="x"), Mode.FAST, lambda e: None)
    assert err.value.error.category is category
    assert err.value.error.message == snapshot["failReason"]


async def test_a_button_that_opens_a_modal_is_answered_upstream(provider: FakeProvider, account: ProviderAccount) -> None:
    provider.answer("action", {"code": 21, "description": "Waiting for window confirm", "result": "tm"})
    provider.answer("modal", {"code": 1, "description": "ok", "result": "tm"})
    provider.script("tm", {"status": "IN_PROGRESS", "progress": "50%"}, success(buttons=[]))
    mask = b"\x89PNG mask"
    op = PressButton(message_id="parent-task", custom_id=f"MJ::Inpaint::1::{HASH}::SOLO", prompt="a hat", mask_png=mask)
    out = await account.run(op, Mode.FAST, lambda e: None)
    action, modal = provider.submits()
    assert action.path == "/mj-fast/mj/submit/action" and action.body == {"taskId": "parent-task", "customId": op.custom_id}
    assert modal.path == "/mj-fast/mj/submit/modal"
    assert modal.body == {"taskId": "tm", "prompt": "a hat", "maskBase64": "data:image/png;base64," + base64.b64encode(mask).decode()}
    assert out.message_id == "tm"


async def test_a_remix_modal_without_our_prompt_sends_the_tasks_own(provider: FakeProvider, account: ProviderAccount) -> None:
    provider.answer("action", {"code": 21, "result": "tr"})
    provider.answer("modal", {"code": 1, "result": "tr"})
    provider.script("tr", {"status": "MODAL", "progress": "0%", "promptEn": "the parent prompt"}, {"status": "IN_PROGRESS", "progress": "5%"}, success())
    await account.run(PressButton(message_id="p", custom_id=f"MJ::JOB::variation::1::{HASH}"), Mode.FAST, lambda e: None)
    modal = provider.submits()[-1]
    assert modal.path.endswith("/submit/modal") and modal.body["prompt"] == "the parent prompt"


async def test_describe_and_shorten_results_become_texts(provider: FakeProvider, account: ProviderAccount) -> None:
    text = "1\ufe0f\u20e3 a red fox --ar 1:1\n\n2\ufe0f\u20e3 snow, fox\n\n3\ufe0f\u20e3 winter\n\n4\ufe0f\u20e3 a fox in the style of x"
    provider.script("t1", success(prompt=text, imageUrl="/images/input.png", buttons=[]))
    out = await account.run(Describe(image=PNG), Mode.FAST, lambda e: None)
    assert out.texts == ("a red fox --ar 1:1", "snow, fox", "winter", "a fox in the style of x") and out.prompt == ""
    assert provider.submits()[0].body["base64"].startswith("data:image/png;base64,")
    provider.script("t2", success(prompt="1\ufe0f\u20e3 fox\n\n2\ufe0f\u20e3 snowy fox", buttons=[]))
    out = await account.run(Shorten(prompt="a very long prompt"), Mode.FAST, lambda e: None)
    assert out.texts == ("fox", "snowy fox")


async def test_a_flaky_provider_is_followed_through_and_a_lost_task_fails(provider: FakeProvider, account: ProviderAccount) -> None:
    provider.script("t1", {"status": "IN_PROGRESS", "progress": "10%"}, success())
    provider.fetch_failures = 3
    out = await account.run(Imagine(prompt="x"), Mode.FAST, lambda e: None)
    assert out.message_id == "t1"
    # the provider forgets the next task
    with pytest.raises(JobFailed) as err:
        await account.run(Imagine(prompt="x"), Mode.FAST, lambda e: None)
    assert err.value.error.category is ErrorCategory.RETRYABLE and "no longer knows" in err.value.error.message


async def test_recovery_follows_the_recorded_task_without_submitting(provider: FakeProvider, account: ProviderAccount) -> None:
    provider.script("t9", {"status": "IN_PROGRESS", "progress": "60%"}, success())
    events: list[JobEvent] = []
    probe = RecoveryProbe(operation=Imagine(prompt="a cat"), submitted_at_ms=0, nonce="n1", progress_message_id="t9")
    out = await account.recover(probe, events.append)
    assert out.message_id == "t9" and provider.submits() == []
    assert [e.progress for e in events if e.kind == "progress"] == [60]
    with pytest.raises(JobFailed) as err:
        await account.recover(RecoveryProbe(operation=Imagine(prompt="a cat"), submitted_at_ms=0, nonce="n1"), events.append)
    assert err.value.error.category is ErrorCategory.RETRYABLE and provider.submits() == []


async def test_an_unreachable_provider_reconnects_when_it_comes_up(provider: FakeProvider) -> None:
    port = provider.port
    provider.stop()
    acct = ProviderAccount(options(provider))
    await acct.start()
    try:
        assert acct.status().state is AccountState.RECONNECTING
        with pytest.raises(NotSent):
            await acct.run(Imagine(prompt="x"), Mode.FAST, lambda e: None)
        back = FakeProvider(port)
        try:
            async with asyncio.timeout(10):
                while acct.status().state is not AccountState.READY:
                    await asyncio.sleep(0.02)
        finally:
            back.stop()
    finally:
        await acct.close()
    assert acct.status().state is AccountState.STOPPED


async def test_status_and_repr_never_show_the_secret(provider: FakeProvider, account: ProviderAccount) -> None:
    st = account.status()
    assert st.kind == "mjproxy" and st.modes == (Mode.FAST, Mode.RELAX) and st.concurrency == 5
    assert SECRET not in repr(account.options) and SECRET not in repr(st)


async def test_blend_and_shorten_bodies(provider: FakeProvider, account: ProviderAccount) -> None:
    provider.script("t1", success())
    provider.script("t2", success(prompt="1\ufe0f\u20e3 short", buttons=[]))
    await account.run(Blend(images=(PNG, PNG), dimensions="portrait", bot=Bot.NIJI), Mode.TURBO, lambda e: None)
    await account.run(Shorten(prompt="a long prompt"), Mode.FAST, lambda e: None)
    blend, shorten = provider.submits()
    assert blend.path == "/mj-turbo/mj/submit/blend"
    assert blend.body["dimensions"] == "PORTRAIT" and blend.body["botType"] == "NIJI_JOURNEY" and len(blend.body["base64Array"]) == 2
    assert shorten.path == "/mj-fast/mj/submit/shorten" and shorten.body == {"prompt": "a long prompt", "botType": "MID_JOURNEY"}
