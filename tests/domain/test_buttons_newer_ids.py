"""Buttons Midjourney added after the first clients were written, and ids nobody has catalogued:
they parse to something pressable and keep what they say (job hash, image number, motion)."""

from __future__ import annotations

import pytest

from adapter.domain import buttons
from adapter.domain.actions import Action
from adapter.domain.buttons import ButtonAction, modal_prompt_field, parse_custom_id

H = "bb5d727b-4df5-4c9b-be01-96d2f526c49e"


@pytest.mark.parametrize(
    ("custom_id", "expected"),
    [
        # v7 upscaled image: "Animate (High motion)" / "Animate (Low motion)"
        (f"MJ::JOB::animate_high::1::{H}::SOLO", ButtonAction(Action.ANIMATE, H, index=1, solo=True, motion="high")),
        (f"MJ::JOB::animate_low::1::{H}::SOLO", ButtonAction(Action.ANIMATE, H, index=1, solo=True, motion="low")),
        # extending video 3 of an animate result
        (f"MJ::JOB::animate_high_extend::3::{H}", ButtonAction(Action.ANIMATE, H, index=3, motion="high", extend=True)),
        (f"MJ::JOB::animate_low_extend::1::{H}", ButtonAction(Action.ANIMATE, H, index=1, motion="low", extend=True)),
    ],
)
def test_animate_buttons(custom_id: str, expected: ButtonAction) -> None:
    got = parse_custom_id(custom_id)
    assert got == expected and got.known


def test_animate_builders_round_trip() -> None:
    assert parse_custom_id(buttons.animate("high", H)) == ButtonAction(Action.ANIMATE, H, solo=True, motion="high")
    assert parse_custom_id(buttons.animate_extend("low", H, 2)) == ButtonAction(Action.ANIMATE, H, index=2, motion="low", extend=True)
    with pytest.raises(ValueError):
        buttons.animate("medium", H)


@pytest.mark.parametrize(
    ("custom_id", "verb", "index", "solo"),
    [
        # the U1-U4 of an animate result pick one of its four videos
        (f"MJ::JOB::video_virtual_upscale::2::{H}", "video_virtual_upscale", 2, False),
        # a verb this grammar has never seen, shaped like the others (draft mode's Enhance is
        # one such button; its exact id is not in any public source we could check)
        (f"MJ::JOB::enhance::1::{H}::SOLO", "enhance", 1, True),
        (f"MJ::JOB::upsample_v5_2x::1::{H}::SOLO", "upsample_v5_2x", 1, True),
    ],
)
def test_unknown_job_verbs_keep_hash_index_and_verb(custom_id: str, verb: str, index: int, solo: bool) -> None:
    got = parse_custom_id(custom_id)
    assert got == ButtonAction(Action.CUSTOM, H, index=index, solo=solo, verb=verb)
    assert not got.known


@pytest.mark.parametrize(
    ("custom_id", "job_hash", "index"),
    [
        (f"MJ::BOOKMARK::{H}", H, 1),
        (f"MJ::Draft::Enhance::3::{H}", H, 3),
        ("MJ::Job::PicReader::all", "", 1),
        ("MJ::Settings::RemixMode", "", 1),
    ],
)
def test_other_shapes_pass_through_with_what_they_carry(custom_id: str, job_hash: str, index: int) -> None:
    got = parse_custom_id(custom_id)
    assert got is not None and got.action is Action.CUSTOM
    assert (got.job_hash, got.index) == (job_hash, index)


def test_custom_zoom_with_an_image_number() -> None:
    # both spellings are in use: MJ::CustomZoom::<h> and MJ::CustomZoom::1::<h>
    assert parse_custom_id(f"MJ::CustomZoom::1::{H}") == ButtonAction(Action.CUSTOM_ZOOM, H, needs_modal=True, solo=True)


def test_animate_remix_modal_field() -> None:
    assert modal_prompt_field(f"MJ::AnimateModal::{H}::1::high::0") == "MJ::AnimateModal::prompt"
