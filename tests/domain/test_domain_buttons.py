"""Button custom_id grammar: builders emit exactly the ids in PROTOCOL.md section 3, and the
parser maps every one of them back to (Action, index, pan, zoom, needs_modal, solo)."""

from __future__ import annotations

import pytest

from adapter.domain import buttons
from adapter.domain.actions import Action, PanDirection
from adapter.domain.buttons import ButtonAction, modal_prompt_field, parse_custom_id

H = "0123abcd-4567-4890-abcd-ef0123456789"
H2 = "fedcba98-7654-4321-8fed-cba987654321"


# --- builders produce PROTOCOL.md's ids, character for character ----------------------------


@pytest.mark.parametrize("i", [1, 2, 3, 4])
def test_upsample_and_variation_ids(i: int) -> None:
    assert buttons.upsample(i, H) == f"MJ::JOB::upsample::{i}::{H}"
    assert buttons.variation(i, H) == f"MJ::JOB::variation::{i}::{H}"


def test_solo_builders_match_protocol_table() -> None:
    assert buttons.reroll(H) == f"MJ::JOB::reroll::0::{H}::SOLO"
    assert buttons.vary_subtle(H) == f"MJ::JOB::low_variation::1::{H}::SOLO"
    assert buttons.vary_strong(H) == f"MJ::JOB::high_variation::1::{H}::SOLO"
    assert buttons.vary_region(H) == f"MJ::Inpaint::1::{H}::SOLO"
    assert buttons.zoom_out(2.0, H) == f"MJ::Outpaint::50::1::{H}::SOLO"
    assert buttons.zoom_out(1.5, H) == f"MJ::Outpaint::75::1::{H}::SOLO"
    assert buttons.custom_zoom(H) == f"MJ::CustomZoom::{H}"


def test_zoom_out_accepts_int_two_and_rejects_other_factors() -> None:
    assert buttons.zoom_out(2, H) == f"MJ::Outpaint::50::1::{H}::SOLO"
    for bad in (1.0, 1.75, 3.0, 0.5):
        with pytest.raises(ValueError):
            buttons.zoom_out(bad, H)


@pytest.mark.parametrize("direction", list(PanDirection))
def test_pan_ids(direction: PanDirection) -> None:
    assert buttons.pan(direction, H) == f"MJ::JOB::pan_{direction.value}::1::{H}::SOLO"


@pytest.mark.parametrize("model", ["v6", "v6r1", "v7"])
def test_upscale_variant_ids(model: str) -> None:
    assert buttons.upscale_subtle(H, model) == f"MJ::JOB::upsample_{model}_2x_subtle::1::{H}::SOLO"
    assert buttons.upscale_creative(H, model) == f"MJ::JOB::upsample_{model}_2x_creative::1::{H}::SOLO"


def test_upscale_variant_default_model_is_v6() -> None:
    assert buttons.upscale_subtle(H) == f"MJ::JOB::upsample_v6_2x_subtle::1::{H}::SOLO"
    assert buttons.upscale_creative(H) == f"MJ::JOB::upsample_v6_2x_creative::1::{H}::SOLO"


# --- parse_custom_id round-trips every builder -----------------------------------------------


def _round_trip_cases() -> list[tuple[str, ButtonAction]]:
    cases: list[tuple[str, ButtonAction]] = []
    for i in (1, 2, 3, 4):
        cases.append((buttons.upsample(i, H), ButtonAction(Action.UPSCALE, H, index=i)))
        cases.append((buttons.variation(i, H), ButtonAction(Action.VARIATION, H, index=i)))
    cases += [
        (buttons.reroll(H), ButtonAction(Action.REROLL, H, index=1, solo=True)),
        (buttons.vary_subtle(H), ButtonAction(Action.VARY_SUBTLE, H, solo=True)),
        (buttons.vary_strong(H), ButtonAction(Action.VARY_STRONG, H, solo=True)),
        (buttons.vary_region(H), ButtonAction(Action.VARY_REGION, H, needs_modal=True, solo=True)),
        (buttons.zoom_out(2.0, H), ButtonAction(Action.ZOOM, H, zoom=2.0, solo=True)),
        (buttons.zoom_out(1.5, H), ButtonAction(Action.ZOOM, H, zoom=1.5, solo=True)),
        (buttons.custom_zoom(H), ButtonAction(Action.CUSTOM_ZOOM, H, needs_modal=True, solo=True)),
    ]
    for d in PanDirection:
        cases.append((buttons.pan(d, H), ButtonAction(Action.PAN, H, pan=d, solo=True)))
    for model in ("v6", "v6r1", "v7"):
        cases.append((buttons.upscale_subtle(H, model), ButtonAction(Action.UPSCALE_SUBTLE, H, solo=True)))
        cases.append((buttons.upscale_creative(H, model), ButtonAction(Action.UPSCALE_CREATIVE, H, solo=True)))
    return cases


@pytest.mark.parametrize(("custom_id", "expected"), _round_trip_cases(), ids=lambda v: v if isinstance(v, str) else "")
def test_parse_round_trips_every_builder(custom_id: str, expected: ButtonAction) -> None:
    # equality of the whole struct checks action, hash, index, pan, zoom, needs_modal and solo
    assert parse_custom_id(custom_id) == expected


def test_parse_keeps_the_hash_of_the_id_not_a_constant() -> None:
    got = parse_custom_id(buttons.upsample(2, H2))
    assert got is not None and got.job_hash == H2
    got = parse_custom_id(buttons.custom_zoom(H2))
    assert got is not None and got.job_hash == H2


def test_only_modal_buttons_need_a_modal() -> None:
    needing = {c for c, a in _round_trip_cases() if a.needs_modal}
    assert needing == {buttons.vary_region(H), buttons.custom_zoom(H)}


def test_grid_buttons_are_not_solo() -> None:
    for i in (1, 2, 3, 4):
        for cid in (buttons.upsample(i, H), buttons.variation(i, H)):
            got = parse_custom_id(cid)
            assert got is not None and got.solo is False


def test_parse_solo_variation_from_older_versions() -> None:
    # "Make Variations" under an upscaled v5 image: same verb, with ::SOLO
    got = parse_custom_id(f"MJ::JOB::variation::1::{H}::SOLO")
    assert got == ButtonAction(Action.VARIATION, H, index=1, solo=True)


# --- ids the grammar does not know: passed through as CUSTOM, never misread ------------------


@pytest.mark.parametrize(
    "custom_id",
    [
        "MJ::Job::PicReader::1",
        "MJ::Job::PicReader::4",
        "MJ::Job::PicReader::all",
        "MJ::Picread::Retry",
        f"MJ::BOOKMARK::{H}",  # the like button
        f"MJ::JOB::like::1::{H}",
        f"MJ::JOB::upsample_v5_2x::1::{H}::SOLO",  # an unknown verb
        "MJ::Settings::RemixMode",
        "junk",
        "MJ::JOB::upsample::1::",
        "MJ::JOB::upsample::x::" + H,
        # wrong UUIDs: upper case, truncated, extra characters, not hex
        "MJ::JOB::upsample::1::" + H.upper(),
        "MJ::JOB::upsample::1::" + H[:-1],
        "MJ::JOB::upsample::1::" + H + "0",
        "MJ::JOB::upsample::1::" + H.replace("a", "g"),
        "MJ::JOB::upsample::1::" + H.replace("-", ""),
        "MJ::CustomZoom::" + H.upper(),
        "MJ::Inpaint::1::not-a-uuid::SOLO",
        "MJ::Outpaint::50::1::" + H[:8] + "::SOLO",
        # prefixes and suffixes around a valid id
        " MJ::JOB::upsample::1::" + H,
        "MJ::JOB::upsample::1::" + H + "::SOLO::extra",
        "xMJ::CustomZoom::" + H,
        # the web link button has no custom_id at all; its url must not parse either
        f"https://www.midjourney.com/jobs/{H}",
    ],
)
def test_unknown_ids_pass_through_as_custom(custom_id: str) -> None:
    got = parse_custom_id(custom_id)
    assert got is not None and got.action is Action.CUSTOM and not got.known and not got.needs_modal


def test_an_empty_id_is_no_button() -> None:
    assert parse_custom_id("") is None


# --- modal prompt fields ----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("modal_id", "field"),
    [
        (f"MJ::OutpaintCustomZoomModal::{H}", "MJ::OutpaintCustomZoomModal::prompt"),
        (f"MJ::RemixModal::{H}::2::1", "MJ::RemixModal::new_prompt"),
        (f"MJ::RemixModal::{H}::1::0", "MJ::RemixModal::new_prompt"),
        ("MJ::ImagineModal::1234567890123456789", "MJ::ImagineModal::new_prompt"),
        (f"MJ::PanModal::left::{H}::1", "MJ::PanModal::prompt"),
    ],
)
def test_modal_prompt_field(modal_id: str, field: str) -> None:
    assert modal_prompt_field(modal_id) == field


@pytest.mark.parametrize(
    "modal_id",
    ["MJ::iframe::abcdef", f"MJ::CustomZoom::{H}", f"MJ::Outpaint::50::1::{H}::SOLO", "", "MJ::Unknown::x"],
)
def test_modal_prompt_field_unknown(modal_id: str) -> None:
    assert modal_prompt_field(modal_id) is None
