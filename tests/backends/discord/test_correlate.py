"""Which pending job a classified bot message belongs to."""

from __future__ import annotations

import asyncio

from adapter.backends.discord.correlate import Pending, Registry
from adapter.backends.discord.messages import MjMessage
from adapter.domain.buttons import parse_custom_id, upsample

H = "0f1e2d3c-4b5a-6978-8a9b-0c1d2e3f4a5b"


def pending(**kw: object) -> Pending:
    return Pending(emit=lambda ev: None, **kw)  # type: ignore[arg-type]


async def test_stronger_keys_win_over_the_prompt() -> None:
    reg = Registry()
    a, b = pending(kind="imagine", prompt="same"), pending(kind="imagine", prompt="same")
    a.nonces.add("n-a")
    b.nonces.add("n-b")
    b.interaction_ids.add("i-b")
    reg.add(a)
    reg.add(b)
    assert reg.match(MjMessage(kind="waiting", nonce="n-b", prompt="same", message_id="m1")) is b
    # a final message without a nonce but with b's interaction id is b's, although a is older
    assert reg.match(MjMessage(kind="done", interaction_id="i-b", prompt="same", message_id="m2")) is b


async def test_same_prompt_progress_goes_to_the_oldest_job_without_a_message() -> None:
    reg = Registry()
    first, second = pending(kind="imagine", prompt="twin"), pending(kind="imagine", prompt="twin")
    reg.add(first)
    reg.add(second)
    first.message_ids.add("p1")
    assert reg.match(MjMessage(kind="progress", prompt="twin", message_id="p2")) is second
    assert reg.match(MjMessage(kind="progress", prompt="twin", message_id="p1")) is first


async def test_follow_ups_on_one_grid_are_told_apart_by_index() -> None:
    reg = Registry()
    u1 = pending(kind="button", source_message_id="grid", button=parse_custom_id(upsample(1, H)))
    u3 = pending(kind="button", source_message_id="grid", button=parse_custom_id(upsample(3, H)))
    reg.add(u1)
    reg.add(u3)
    msg = MjMessage(kind="done", reference_message_id="grid", variant="upscale", index=3, message_id="r3")
    assert reg.match(msg) is u3


async def test_finished_jobs_and_mode_switches_are_never_matched() -> None:
    reg = Registry()
    done = pending(kind="imagine", prompt="x")
    done.future.set_result(None)  # type: ignore[arg-type]
    mode = pending(kind="mode")
    mode.nonces.add("n")
    reg.add(done)
    reg.add(mode)
    assert reg.match(MjMessage(kind="done", prompt="x", nonce="n", message_id="m")) is None


async def test_claim_memory_is_bounded() -> None:
    reg = Registry()
    for i in range(Registry.CLAIM_MEMORY + 10):
        reg.claim(f"m{i}")
    assert not reg.is_claimed("m0") and reg.is_claimed(f"m{Registry.CLAIM_MEMORY + 9}")
    assert len(reg._claimed) == Registry.CLAIM_MEMORY
    await asyncio.sleep(0)
