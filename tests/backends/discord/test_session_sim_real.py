"""The Discord session on behaviours of real Discord that older clients did not meet, against the
simulator over loopback sockets: slow commands answered by editing a placeholder, INTERACTION_SUCCESS
that may or may not follow a modal, seeds by ✉️ and DM, cancelling with ❌, an account that lives
in its DM channel with the bot, and buttons newer than our grammar (v7 Animate, draft Enhance)."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Any

import pytest

from adapter.backends.base import Describe, Imagine, Info, JobFailed, JobOutput, PressButton, ResultRef, Shorten
from adapter.backends.discord.session import DiscordAccount
from adapter.domain.actions import Action, Mode
from adapter.domain.buttons import parse_custom_id
from adapter.domain.errors import ErrorCategory
from adapter.simulator import Simulator, SimulatorConfig

# fixtures and helpers of the main simulator suite
from tests.backends.discord.test_session_sim import WAIT, AccountFactory, Recorder, account, button, control, png, run  # noqa: F401

pytestmark = pytest.mark.usefixtures("sim_behaviour")  # both simulated worlds (conftest)
SPEED = 600.0


@pytest.fixture
async def sim() -> AsyncIterator[Simulator]:
    s = Simulator(SimulatorConfig(speed=SPEED, seed=11, accounts=2))
    await s.start()
    yield s
    await s.stop()


def without_interaction_success(acct: DiscordAccount) -> list[str]:
    """Make the account see Discord's other behaviour: no INTERACTION_SUCCESS at all (for a
    modal, for a mode switch, for anything). Returns the events it dropped."""
    dropped: list[str] = []
    original = acct._on_dispatch

    async def filtered(event: str, data: dict[str, Any]) -> None:
        if event == "INTERACTION_SUCCESS":
            dropped.append(event)
            return
        await original(event, data)

    acct._gateway._on_dispatch = filtered  # type: ignore[attr-defined]
    return dropped


def pressed(out: JobOutput, pick: Any) -> PressButton:
    for b in out.buttons:
        if b.custom_id and pick(b):
            return PressButton(message_id=out.message_id or "", custom_id=b.custom_id, message_flags=out.message_flags)
    raise AssertionError(f"no such button in {[(b.label, b.custom_id) for b in out.buttons]}")


# --- 1. slow commands: placeholder CREATE (nonce) then UPDATE (no nonce) ---------------------


def only_message_ids(acct: DiscordAccount) -> list[tuple[str, dict[str, Any]]]:
    """Strip every other key off what the account sees: no INTERACTION_* events, and edits
    without nonce or interaction metadata. Only the placeholder's message id can tie an edit
    to its job then. Returns the message events as they arrived."""
    seen: list[tuple[str, dict[str, Any]]] = []
    original = acct._on_dispatch

    async def filtered(event: str, data: dict[str, Any]) -> None:
        if event.startswith("INTERACTION_") and event not in ("INTERACTION_MODAL_CREATE", "INTERACTION_IFRAME_MODAL_CREATE"):
            return
        if event == "MESSAGE_UPDATE":
            data = {k: v for k, v in data.items() if k not in ("nonce", "interaction", "interaction_metadata")}
        if event.startswith("MESSAGE_"):
            seen.append((event, data))
        await original(event, data)

    acct._gateway._on_dispatch = filtered  # type: ignore[attr-defined]
    return seen


async def test_info_shorten_describe_read_from_the_edit_of_their_placeholder(account: AccountFactory) -> None:
    acct = await account()
    seen = only_message_ids(acct)
    for op in (Info(), Shorten(prompt="a very long and elaborate prompt about a red fox in deep snow"), Describe(image=png())):
        seen.clear()
        out, _ = await run(acct, op)
        assert out.texts, op
        creates = [d for e, d in seen if e == "MESSAGE_CREATE" and d.get("id") == out.message_id]
        updates = [d for e, d in seen if e == "MESSAGE_UPDATE" and d.get("id") == out.message_id]
        # the result is the edit of the placeholder that carried the nonce
        assert creates and creates[0].get("nonce") and updates, (op, seen)
        assert all("nonce" not in d for d in updates)


async def test_slow_commands_still_work_when_answered_in_one_message(account: AccountFactory) -> None:
    """The older behaviour: one final MESSAGE_CREATE with the nonce and the content."""
    acct = await account()
    original = acct._on_dispatch
    placeholders: dict[str, dict[str, Any]] = {}

    async def collapse(event: str, data: dict[str, Any]) -> None:
        # hold back the placeholder; deliver its edit as a CREATE carrying the nonce
        if event == "MESSAGE_CREATE" and data.get("flags", 0) & 128:
            placeholders[str(data["id"])] = data
            return
        if event == "MESSAGE_UPDATE" and str(data.get("id")) in placeholders:
            first = placeholders.pop(str(data["id"]))
            await original("MESSAGE_CREATE", {**data, "nonce": first.get("nonce")})
            return
        await original(event, data)

    acct._gateway._on_dispatch = collapse  # type: ignore[attr-defined]
    for op in (Info(), Shorten(prompt="a very long and elaborate prompt about a red fox in deep snow")):
        out, _ = await run(acct, op)
        assert out.texts, op


# --- 2. INTERACTION_SUCCESS after a modal: with it and without it ----------------------------


@pytest.mark.parametrize("success_events", [True, False])
async def test_modal_flows_with_and_without_interaction_success(account: AccountFactory, success_events: bool) -> None:
    acct = await account()
    dropped = [] if success_events else without_interaction_success(acct)
    grid, _ = await run(acct, Imagine(prompt="a quiet harbour"))
    up, _ = await run(acct, button(grid, Action.UPSCALE, index=1))
    # custom zoom opens a modal; the job's result (not the modal's acknowledgement) ends it
    zoom = button(up, Action.CUSTOM_ZOOM)
    out, rec = await run(acct, PressButton(message_id=zoom.message_id, custom_id=zoom.custom_id, prompt="a quiet harbour --zoom 1.5"))
    assert out.image_url and out.job_hash and out.job_hash != up.job_hash
    assert "progress" in rec.kinds or "waiting" in rec.kinds
    # a mode switch is acknowledged either way (INTERACTION_SUCCESS or the bot's reply)
    relaxed, _ = await run(acct, button(out, Action.UPSCALE, index=2), Mode.RELAX)
    assert relaxed.image_url
    if not success_events:
        assert dropped  # the simulator did send them; the account never saw one


async def test_remix_modal_without_interaction_success(sim: Simulator, account: AccountFactory) -> None:
    await control(sim, "settings", {"remix": True})
    acct = await account()
    without_interaction_success(acct)
    grid, _ = await run(acct, Imagine(prompt="a paper boat"))
    out, _ = await run(acct, button(grid, Action.VARIATION, index=2))
    assert out.image_url and out.job_hash != grid.job_hash


# --- 3. seeds: ✉️ on the result, the bot's DM ------------------------------------------------


async def test_seed_by_envelope_reaction_and_dm(account: AccountFactory) -> None:
    acct = await account()
    grid, _ = await run(acct, Imagine(prompt="a lighthouse in fog"))
    ref = ResultRef(message_id=grid.message_id or "", job_hash=grid.job_hash)
    # two callers at once share one lookup
    a, b = await asyncio.wait_for(asyncio.gather(acct.seed(ref), acct.seed(ref)), WAIT)
    assert a == b and a.isdigit()
    # asking again: the earlier DM is found in the DM channel (the bot answers a ✉️ once)
    assert await asyncio.wait_for(acct.seed(ref), WAIT) == a
    # another job has its own seed message, matched by its job hash
    up, _ = await run(acct, button(grid, Action.UPSCALE, index=3))
    other = await asyncio.wait_for(acct.seed(ResultRef(message_id=up.message_id or "", job_hash=up.job_hash)), WAIT)
    assert other.isdigit()


async def test_seed_of_a_vanished_message_fails_clearly(account: AccountFactory) -> None:
    acct = await account()
    grid, _ = await run(acct, Imagine(prompt="a small boat"))
    with pytest.raises(JobFailed) as info:
        await asyncio.wait_for(acct.seed(ResultRef(message_id="1234567890123456789", job_hash=grid.job_hash)), WAIT)
    assert info.value.error.category is ErrorCategory.INVALID_REQUEST


# --- 4. cancel a running job with ❌ ---------------------------------------------------------


async def test_cancel_running_with_the_cross_reaction(sim: Simulator, account: AccountFactory) -> None:
    acct = await account()
    await control(sim, "faults/stall-next-job", {"user_id": sim.accounts[0].user_id})
    rec = Recorder()
    task = asyncio.create_task(acct.run(Imagine(prompt="a slow sunrise"), Mode.FAST, rec))
    for _ in range(500):
        if any(e.message_id for e in rec.events if e.kind in ("waiting", "progress")):
            break
        await asyncio.sleep(0.01)
    progress_id = next(e.message_id for e in rec.events if e.kind in ("waiting", "progress") and e.message_id)
    assert await acct.cancel_running(progress_id) is True
    with pytest.raises(JobFailed) as info:
        await asyncio.wait_for(task, WAIT)
    assert info.value.error.category is ErrorCategory.CANCELLED


async def test_cancel_never_touches_a_finished_result(account: AccountFactory) -> None:
    acct = await account()
    grid, _ = await run(acct, Imagine(prompt="a finished picture"))
    assert await acct.cancel_running(grid.message_id or "") is False
    # the result is still there: it can still be acted on
    out, _ = await run(acct, button(grid, Action.UPSCALE, index=1))
    assert out.image_url


# --- 5. an account in its DM channel with the bot --------------------------------------------


async def test_an_account_in_its_dm_channel(sim: Simulator, account: AccountFactory) -> None:
    dm = sim.accounts[0].dm_channel_id
    acct = await account(guild_id=None, channel_id=dm)
    grid, _ = await run(acct, Imagine(prompt="a cabin in the woods", images=(png(),)))
    assert grid.image_url and grid.job_hash
    up, _ = await run(acct, button(grid, Action.UPSCALE, index=2))
    assert up.image_url
    described, _ = await run(acct, Describe(image=png((20, 200, 20))))
    assert described.texts
    seed = await asyncio.wait_for(acct.seed(ResultRef(message_id=up.message_id or "", job_hash=up.job_hash)), WAIT)
    assert seed.isdigit()


# --- 6. buttons newer than our grammar: v7 Animate, draft Enhance ----------------------------


async def test_v7_animate_and_enhance_are_pressable(account: AccountFactory) -> None:
    acct = await account()
    grid, _ = await run(acct, Imagine(prompt="a hummingbird --v 7"))
    up, _ = await run(acct, button(grid, Action.UPSCALE, index=1))
    animate = pressed(up, lambda b: (p := parse_custom_id(b.custom_id)) is not None and p.action is Action.ANIMATE and p.motion == "high")
    video, _ = await run(acct, animate)
    assert video.image_url and video.job_hash and video.job_hash != up.job_hash
    # its own buttons (video upscales) are passed through, unknown to the grammar but pressable
    unknown = [b for b in video.buttons if b.custom_id and not parse_custom_id(b.custom_id).known]  # type: ignore[union-attr]
    assert unknown
    single, _ = await run(acct, PressButton(message_id=video.message_id or "", custom_id=unknown[0].custom_id or ""))
    assert single.image_url


async def test_draft_enhance_is_pressable(account: AccountFactory) -> None:
    acct = await account()
    grid, _ = await run(acct, Imagine(prompt="a red kite --v 7 --draft"))
    up, _ = await run(acct, button(grid, Action.UPSCALE, index=1))
    enhance = pressed(up, lambda b: "enhance" in (b.label or "").lower())
    assert parse_custom_id(enhance.custom_id).action is Action.CUSTOM  # type: ignore[union-attr]
    out, _ = await run(acct, enhance)
    assert out.image_url and out.job_hash != up.job_hash


async def test_the_like_button_answers_with_text(account: AccountFactory) -> None:
    acct = await account()
    grid, _ = await run(acct, Imagine(prompt="a bowl of cherries"))
    up, _ = await run(acct, button(grid, Action.UPSCALE, index=4))
    like = pressed(up, lambda b: (b.custom_id or "").startswith("MJ::BOOKMARK::"))
    out, _ = await run(acct, like)
    assert out.texts and "rated" in out.texts[0] and out.image_url is None
