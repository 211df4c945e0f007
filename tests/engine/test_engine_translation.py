"""JobService with a prompt translator: the English text is the job's prompt as sent (stored,
checked for banned words, run, matched on recovery), the caller's words are kept beside it, and
a failing translator starts nothing."""

from __future__ import annotations

import asyncio
import sys
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import pytest

sys.path.insert(0, str(Path(__file__).parent))
from fake_account import FakeAccount  # noqa: E402

from adapter.backends.base import BeforeSend, EventSink, Imagine, JobEvent, JobOutput, Operation, PressButton, RecoveryProbe, Shorten  # noqa: E402
from adapter.domain.actions import Action, Mode  # noqa: E402
from adapter.domain.banned import build_banned_words  # noqa: E402
from adapter.domain.jobs import JobStatus  # noqa: E402
from adapter.engine.errors import PromptRejected, TranslationFailed  # noqa: E402
from adapter.engine.results import ResultIngester  # noqa: E402
from adapter.engine.scheduler import Scheduler  # noqa: E402
from adapter.engine.service import JobService  # noqa: E402
from adapter.engine.specs import ActSpec, RequestMeta, SubmitSpec  # noqa: E402
from adapter.media.fetch import FetchPolicy, ImageFetcher  # noqa: E402
from adapter.media.store import LocalImageStore  # noqa: E402
from adapter.stores.sqlite import SqliteJobStore  # noqa: E402

WAIT = 10.0
TABLE = {
    "一只猫在雨中 --ar 16:9": "a cat in the rain --ar 16:9",
    "裸体雕像": "a nude statue",
    "更宽的视野 --zoom 1.5": "a wider view --zoom 1.5",
    "夜晚的城市": "a city at night",
    "海边的灯塔": "a lighthouse by the sea",
}


class TableTranslator:
    """A PromptTranslator: English passes unchanged (as ChatTranslator does), the rest comes
    from the table; `fail` makes every call raise."""

    def __init__(self) -> None:
        self.calls: list[str] = []
        self.fail: TranslationFailed | None = None

    async def to_english(self, prompt: str) -> str:
        self.calls.append(prompt)
        if self.fail is not None:
            raise self.fail
        return TABLE.get(prompt, prompt)

    async def aclose(self) -> None:
        pass


class SendingAccount(FakeAccount):
    """Reports the prompt exactly as sent before sending, as the Discord account does (with the
    mode flag it adds)."""

    async def run(self, op: Operation, mode: Mode, emit: EventSink, *, before_send: BeforeSend | None = None) -> JobOutput:
        if isinstance(op, Imagine):
            emit(JobEvent(kind="sending", prompt=f"{op.prompt} --{mode.value}"))
        return await super().run(op, mode, emit, before_send=before_send)


@pytest.fixture
async def make(tmp_path: Path) -> AsyncIterator[Callable[..., Any]]:
    started: list[tuple[JobService, SqliteJobStore]] = []

    async def factory(accounts: list[FakeAccount], translator: TableTranslator | None) -> JobService:
        store = SqliteJobStore(tmp_path / "jobs.db")
        await store.open()
        svc = JobService(
            store=store,
            scheduler=Scheduler(accounts),
            ingester=ResultIngester(ImageFetcher(FetchPolicy()), LocalImageStore(tmp_path)),
            banned=build_banned_words(["猫咪禁词"]),
            translator=translator,
            sweep_interval_seconds=0.05,
        )
        await svc.start()
        started.append((svc, store))
        return svc

    yield factory
    for svc, store in started:
        await svc.close()
        await store.close()
    await asyncio.sleep(0)


def imagine(prompt: str, **meta: Any) -> SubmitSpec:
    return SubmitSpec(meta=RequestMeta(owner="k1", **meta), prompt=prompt)


async def test_the_english_text_is_what_is_stored_and_sent(make) -> None:
    acct, tr = FakeAccount(), TableTranslator()
    svc = await make([acct], tr)
    job = await svc.submit(imagine("一只猫在雨中 --ar 16:9"))
    assert job.prompt == "a cat in the rain --ar 16:9" and job.extra["user_prompt"] == "一只猫在雨中 --ar 16:9"
    done = await svc.wait(job.id, timeout=WAIT)
    assert done.status is JobStatus.SUCCESS
    assert [op.prompt for op in acct.sent if isinstance(op, Imagine)] == ["a cat in the rain --ar 16:9"]
    assert (await svc.get(job.id)).extra["user_prompt"] == "一只猫在雨中 --ar 16:9"


async def test_an_untranslated_prompt_keeps_no_second_copy(make) -> None:
    acct, tr = FakeAccount(), TableTranslator()
    svc = await make([acct], tr)
    job = await svc.submit(imagine("a lighthouse --v 6"))
    assert job.prompt == "a lighthouse --v 6" and "user_prompt" not in job.extra
    assert tr.calls == ["a lighthouse --v 6"]


async def test_shorten_prompts_are_translated_too(make) -> None:
    acct, tr = FakeAccount(), TableTranslator()
    svc = await make([acct], tr)
    job = await svc.submit(SubmitSpec(meta=RequestMeta(owner="k1"), action=Action.SHORTEN, prompt="夜晚的城市"))
    await svc.wait(job.id, timeout=WAIT)
    assert [op.prompt for op in acct.sent if isinstance(op, Shorten)] == ["a city at night"]


async def test_the_banned_word_check_reads_the_translation(make) -> None:
    acct, tr = FakeAccount(), TableTranslator()
    svc = await make([acct], tr)
    with pytest.raises(PromptRejected) as err:
        await svc.submit(imagine("裸体雕像"))
    assert err.value.word == "nude"
    assert await svc.store.list_jobs() == [] and acct.sent == []


async def test_the_callers_own_words_are_checked_before_the_translator_is_asked(make) -> None:
    acct, tr = FakeAccount(), TableTranslator()
    svc = await make([acct], tr)
    # (a Chinese banned word matches as a whole word: between punctuation or spaces)
    for prompt in ("一只 nsfw 猫", "一只猫，猫咪禁词。"):
        with pytest.raises(PromptRejected):
            await svc.submit(imagine(prompt))
    assert tr.calls == [] and await svc.store.list_jobs() == []


async def test_a_failing_translator_starts_nothing(make) -> None:
    acct, tr = FakeAccount(), TableTranslator()
    tr.fail = TranslationFailed("The prompt could not be translated into English: boom; so nothing was sent to Midjourney.")
    svc = await make([acct], tr)
    with pytest.raises(TranslationFailed):
        await svc.submit(imagine("一只猫在雨中 --ar 16:9"))
    await asyncio.sleep(0.05)
    assert await svc.store.list_jobs() == [] and acct.sent == []
    assert [s.running for s in svc.scheduler.statuses()] == [0]


async def test_a_retry_attaches_without_asking_the_translator_again(make) -> None:
    acct, tr = FakeAccount(), TableTranslator()
    svc = await make([acct], tr)
    first = await svc.submit(imagine("一只猫在雨中 --ar 16:9", idempotency_key="idem-1"))
    tr.fail = TranslationFailed("down")  # a translator that went away meanwhile does not matter
    again = await svc.submit(imagine("一只猫在雨中 --ar 16:9", idempotency_key="idem-1"))
    assert again.id == first.id and len(tr.calls) == 1
    assert len(await svc.store.list_jobs()) == 1


async def test_follow_ups_keep_the_callers_words_and_translate_a_new_prompt(make) -> None:
    acct, tr = FakeAccount(), TableTranslator()
    svc = await make([acct], tr)
    grid = await svc.wait((await svc.submit(imagine("一只猫在雨中 --ar 16:9"))).id, timeout=WAIT)
    u1 = next(b.custom_id for b in grid.buttons if b.custom_id and "upsample::1" in b.custom_id)
    single = await svc.wait((await svc.act(ActSpec(meta=RequestMeta(owner="k1"), parent_id=grid.id, custom_id=u1))).id, timeout=WAIT)
    # no new prompt: the parent's English goes on, and so do the caller's words
    assert single.prompt == "a cat in the rain --ar 16:9" and single.extra["user_prompt"] == "一只猫在雨中 --ar 16:9"

    cz = next(b.custom_id for b in single.buttons if b.custom_id and b.custom_id.startswith("MJ::CustomZoom"))
    zoomed = await svc.act(ActSpec(meta=RequestMeta(owner="k1"), parent_id=single.id, custom_id=cz, prompt="更宽的视野 --zoom 1.5"))
    assert zoomed.prompt == zoomed.modal_prompt == "a wider view --zoom 1.5" and zoomed.extra["user_prompt"] == "更宽的视野 --zoom 1.5"
    await svc.wait(zoomed.id, timeout=WAIT)
    op = acct.sent[-1]
    assert isinstance(op, PressButton) and op.prompt == "a wider view --zoom 1.5"


async def test_a_modal_answer_is_translated(make) -> None:
    acct, tr = FakeAccount(), TableTranslator()
    svc = await make([acct], tr)
    grid = await svc.wait((await svc.submit(imagine("一只猫在雨中 --ar 16:9"))).id, timeout=WAIT)
    u1 = next(b.custom_id for b in grid.buttons if b.custom_id and "upsample::1" in b.custom_id)
    single = await svc.wait((await svc.act(ActSpec(meta=RequestMeta(owner="k1"), parent_id=grid.id, custom_id=u1))).id, timeout=WAIT)
    cz = next(b.custom_id for b in single.buttons if b.custom_id and b.custom_id.startswith("MJ::CustomZoom"))

    modal = await svc.act(ActSpec(meta=RequestMeta(owner="k1"), parent_id=single.id, custom_id=cz, defer_modal=True))
    assert modal.status is JobStatus.MODAL
    tr.fail = TranslationFailed("down")
    with pytest.raises(TranslationFailed):
        await svc.submit_modal(modal.id, "k1", "更宽的视野 --zoom 1.5")
    assert (await svc.get(modal.id)).status is JobStatus.MODAL  # still waiting for its answer
    tr.fail = None
    job = await svc.submit_modal(modal.id, "k1", "更宽的视野 --zoom 1.5")
    assert job.prompt == "a wider view --zoom 1.5" and job.extra["user_prompt"] == "更宽的视野 --zoom 1.5"
    await svc.wait(job.id, timeout=WAIT)
    op = acct.sent[-1]
    assert isinstance(op, PressButton) and op.prompt == "a wider view --zoom 1.5"

    # an English answer to another modal leaves no stale caller's words behind
    modal2 = await svc.act(ActSpec(meta=RequestMeta(owner="k1"), parent_id=single.id, custom_id=cz, defer_modal=True))
    assert modal2.extra["user_prompt"] == "一只猫在雨中 --ar 16:9"  # inherited until answered
    job2 = await svc.submit_modal(modal2.id, "k1", "a wider view --zoom 2")
    assert job2.prompt == "a wider view --zoom 2" and "user_prompt" not in (await svc.get(job2.id)).extra


async def test_recovery_matches_on_the_english_text_as_sent(tmp_path: Path, make) -> None:
    tr = TableTranslator()
    first = SendingAccount("a1")
    first.gate = asyncio.Event()  # the job stays running until the "restart"
    svc = await make([first], tr)
    job = await svc.submit(imagine("海边的灯塔"))
    await asyncio.wait_for(first.started.wait(), WAIT)
    for _ in range(100):
        if (await svc.get(job.id)).extra.get("sent_prompt"):
            break
        await asyncio.sleep(0.02)
    running = await svc.get(job.id)
    assert running.status in (JobStatus.SUBMITTED, JobStatus.IN_PROGRESS)
    assert running.extra["sent_prompt"] == "a lighthouse by the sea --fast"
    await svc.close()

    second = FakeAccount("a1")
    second.recover_result = lambda probe: second.output(probe.operation)
    svc2 = await make([second], TableTranslator())
    done = await svc2.wait(job.id, timeout=WAIT)
    assert done.status is JobStatus.SUCCESS
    [probe] = second.recovered
    assert isinstance(probe, RecoveryProbe) and probe.prompt == "a lighthouse by the sea --fast"
    assert isinstance(probe.operation, Imagine) and probe.operation.prompt == "a lighthouse by the sea"
    assert second.sent == []  # matched, never sent again
