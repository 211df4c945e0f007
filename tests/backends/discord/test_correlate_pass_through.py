"""Correlation of buttons the grammar only passes through (v7 Animate, Enhance, new ones): their
results are tied to the press by reference when no interaction id is known, without taking the
result of a named follow-up on the same message."""

from __future__ import annotations

from adapter.backends.discord.correlate import Pending, Registry
from adapter.backends.discord.messages import classify
from adapter.domain.buttons import animate, parse_custom_id, vary_strong
from tests.backends.discord.fixtures_messages import HASH, HASH2, USER, attachment, grid_name, grid_rows, message


def pending(**kw: object) -> Pending:
    return Pending(emit=lambda ev: None, **kw)  # type: ignore[arg-type]


def result(content: str) -> object:
    return classify(message(content, interaction_id=None, reference="up", attachments=[attachment(grid_name(HASH2))], components=grid_rows(HASH2)))


async def test_a_named_follow_up_beats_a_pass_through_press_on_the_same_source() -> None:
    older_animate = pending(kind="button", source_message_id="up", button=parse_custom_id(animate("high", HASH)))
    strong = pending(kind="button", source_message_id="up", button=parse_custom_id(vary_strong(HASH)))
    reg = Registry()
    reg.add(older_animate)
    reg.add(strong)
    assert reg.match(result(f"**a fox** - Variations (Strong) by <@{USER}> (fast)")) is strong  # type: ignore[arg-type]
    # the animate result names no action (it reads like an imagine): it goes to the animate press
    assert reg.match(result(f"**a fox --motion high --video 1** - <@{USER}> (fast)")) is older_animate  # type: ignore[arg-type]


async def test_a_pass_through_press_takes_a_result_of_any_wording() -> None:
    enhance = pending(kind="button", source_message_id="up", button=parse_custom_id(f"MJ::JOB::enhance::1::{HASH}::SOLO"))
    reg = Registry()
    reg.add(enhance)
    assert reg.match(result(f"**a fox** - Enhanced by <@{USER}> (fast)")) is enhance  # type: ignore[arg-type]
    assert reg.match(result(f"**a fox** - Image #1 <@{USER}>")) is enhance  # type: ignore[arg-type]
