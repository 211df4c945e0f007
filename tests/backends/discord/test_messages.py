"""The Midjourney message classifier: every message shape in PROTOCOL.md section 3, and junk."""

from __future__ import annotations

import copy
import random
import sys
from pathlib import Path
from typing import Any

import msgspec
import pytest

from adapter.backends.discord import message_text
from adapter.backends.discord.messages import DEFAULT_BOT_IDS, MjError, MjMessage, classify
from adapter.domain.actions import Action, Bot, Mode, PanDirection
from adapter.domain.buttons import Button
from adapter.domain.errors import ErrorCategory

# The fixtures module sits beside this file; make it importable under any pytest import mode.
_HERE = str(Path(__file__).parent)
if _HERE not in sys.path:
    sys.path.insert(0, _HERE)

from fixtures_messages import (  # noqa: E402
    CHANNEL,
    DESCRIBE_PROMPTS,
    DESCRIBE_TEXT,
    HASH,
    HASH2,
    INFO_TEXT,
    INTERACTION,
    MJ_BOT,
    NIJI_BOT,
    NONCE,
    SHORTEN_FOOTER,
    SHORTEN_TEXT,
    SIGNED,
    SOMEONE,
    SOURCE_MESSAGE,
    USER,
    attachment,
    button,
    embed,
    grid_name,
    grid_rows,
    imagine_done,
    message,
    row,
    upscale_rows,
)

P = "a red fox in the snow --ar 3:2"
UPSCALED_NAME = f"driver_a_red_fox_in_the_snow_{HASH}.png"


def followup(content: str, **kw: Any) -> dict[str, Any]:
    kw.setdefault("interaction_name", None)
    kw.setdefault("reference", SOURCE_MESSAGE)
    return message(content, **kw)


# --- the imagine lifecycle --------------------------------------------------------------------


def test_waiting_message_carries_nonce_interaction_and_prompt() -> None:
    raw = message(f"**{P}** - <@{USER}> (Waiting to start)", id="1401", nonce=NONCE)
    m = classify(raw)
    assert m.kind == "waiting"
    assert m.message_id == "1401"
    assert m.channel_id == CHANNEL
    assert m.nonce == NONCE
    assert m.interaction_id == INTERACTION
    assert m.interaction_name == "imagine"
    assert m.prompt == P
    assert m.user_id == USER
    assert m.progress == 0
    assert m.mode is None
    assert m.variant == "imagine"
    assert m.bot is Bot.MIDJOURNEY
    assert m.buttons == () and m.image_url is None and m.job_hash is None
    assert not m.finished


@pytest.mark.parametrize(
    ("status", "mode", "stealth"),
    [
        ("(fast)", Mode.FAST, False),
        ("(relaxed)", Mode.RELAX, False),
        ("(turbo)", Mode.TURBO, False),
        ("(fast, stealth)", Mode.FAST, True),
        ("(turbo, stealth)", Mode.TURBO, True),
    ],
)
def test_progress_reads_percent_mode_and_preview(status: str, mode: Mode, stealth: bool) -> None:
    preview = attachment(f"{HASH}_grid_0.webp", width=512, height=512)
    raw = message(f"**{P}** - <@{USER}> (31%) {status}", nonce=NONCE, attachments=[preview])
    m = classify(raw)
    assert m.kind == "progress"
    assert m.progress == 31
    assert m.mode is mode
    assert m.stealth is stealth
    assert m.job_hash == HASH
    assert m.image_url == preview["url"]
    assert (m.width, m.height) == (512, 512)


def test_progress_with_legacy_preview_name_and_no_components() -> None:
    raw = message(f"**{P}** - <@{USER}> (93%) (relaxed)", attachments=[attachment("grid_0.webp", signed=False)])
    m = classify(raw)
    assert m.kind == "progress" and m.progress == 93 and m.mode is Mode.RELAX
    assert m.job_hash is None  # the legacy preview name holds no hash


def test_zero_percent_is_progress_not_waiting() -> None:
    m = classify(message(f"**{P}** - <@{USER}> (0%) (fast)"))
    assert m.kind == "progress" and m.progress == 0


def test_paused_is_progress() -> None:
    m = classify(message(f"**{P}** - <@{USER}> (paused)", attachments=[attachment(f"{HASH}_grid_0.webp")]))
    assert m.kind == "progress"
    assert m.paused is True
    assert m.progress == 0


def test_paused_keeps_its_percent() -> None:
    m = classify(message(f"**{P}** - <@{USER}> (46%) (paused)"))
    assert m.kind == "progress" and m.paused and m.progress == 46


@pytest.mark.parametrize(("status", "mode"), [("fast", Mode.FAST), ("relaxed", Mode.RELAX), ("turbo", Mode.TURBO)])
def test_final_imagine_grid(status: str, mode: Mode) -> None:
    raw = imagine_done(P, mode=status)
    m = classify(raw)
    assert m.kind == "done"
    assert m.progress == 100
    assert m.prompt == P
    assert m.mode is mode
    assert m.job_hash == HASH
    assert m.variant == "imagine"
    assert m.candidate_actions == {Action.IMAGINE, Action.REROLL}
    assert m.nonce is None
    assert m.interaction_id == INTERACTION
    assert m.image_url == raw["attachments"][0]["url"]
    assert [b.label for b in m.buttons[:4]] == ["U1", "U2", "U3", "U4"]
    assert m.buttons[4] == Button(custom_id=f"MJ::JOB::reroll::0::{HASH}::SOLO", emoji="🔄", style=2)
    assert [b.custom_id for b in m.buttons[5:]] == [f"MJ::JOB::variation::{i}::{HASH}" for i in range(1, 5)]
    assert m.finished


def test_final_with_open_on_website_link() -> None:
    content = (
        f"**{P}** - <@{USER}> [(Open on website for full quality)](<https://midjourney.com/jobs/{HASH}>) (fast)"
    )
    m = classify(message(content, attachments=[attachment(grid_name())], components=grid_rows()))
    assert m.kind == "done"
    assert m.prompt == P
    assert m.mode is Mode.FAST
    assert m.user_id == USER
    assert m.job_hash == HASH


def test_open_on_website_link_gives_hash_when_nothing_else_does() -> None:
    link = f"[(Open on website for full quality)](<https://midjourney.com/jobs/{HASH2}>)"
    content = f"**{P}** - <@{USER}> {link} (relaxed)"
    m = classify(message(content, attachments=[attachment("grid_0.webp", signed=False)]))
    assert m.kind == "progress"  # a preview name and no buttons
    assert m.mode is Mode.RELAX
    assert m.job_hash == HASH2


def test_webp_grid_without_signature() -> None:
    raw = message(
        f"**{P}** - <@{USER}> (fast)",
        attachments=[attachment(grid_name(HASH2, "webp"), signed=False)],
        components=grid_rows(HASH2),
    )
    m = classify(raw)
    assert m.kind == "done" and m.job_hash == HASH2


def test_signed_url_query_is_not_part_of_the_hash() -> None:
    # The signature's hex could look like part of a name; only the path counts.
    url = f"https://cdn.discordapp.com/attachments/1/2/driver_fox_{HASH}.png?ex=1&is=2&hm={HASH2.replace('-', '')}&"
    m = classify(message(f"**{P}** - <@{USER}> (fast)", attachments=[attachment("x.png", url=url)]))
    assert m.job_hash == HASH
    assert m.image_url == url


def test_midjourney_cdn_path_hash() -> None:
    url = f"https://cdn.midjourney.com/{HASH}/0_0.png"
    m = classify(message(f"**{P}** - Image #1 <@{USER}>", attachments=[attachment("0_0.png", url=url)]))
    assert m.kind == "done"
    assert m.job_hash == HASH


def test_done_without_attachment_takes_hash_from_buttons() -> None:
    m = classify(message(f"**{P}** - <@{USER}> (fast)", components=grid_rows(HASH2)))
    assert m.kind == "done"
    assert m.image_url is None
    assert m.job_hash == HASH2


def test_final_image_without_buttons_is_done() -> None:
    m = classify(message(f"**{P}** - <@{USER}> (fast)", attachments=[attachment(grid_name())]))
    assert m.kind == "done"


def test_job_line_with_unknown_status_and_nothing_attached_is_still_running() -> None:
    m = classify(message(f"**{P}** - <@{USER}> (Stopped)"))
    assert m.kind == "progress" and m.progress == 0


def test_niji_bot_is_recognised() -> None:
    m = classify(message(f"**{P}** - <@{USER}> (Waiting to start)", author=NIJI_BOT))
    assert m.kind == "waiting"
    assert m.bot is Bot.NIJI


def test_prompt_is_kept_exactly_even_with_stars_and_separators_inside() -> None:
    prompt = "a **bold** cat - sitting  on a mat ** - with a hat --no dogs, cats --v 6.1"
    m = classify(message(f"**{prompt}** - <@{USER}> (fast)", attachments=[attachment(grid_name())]))
    assert m.prompt == prompt
    assert m.kind == "done"


def test_mention_with_exclamation_mark() -> None:
    m = classify(message(f"**{P}** - <@!{USER}> (15%) (fast)"))
    assert m.user_id == USER and m.progress == 15


# --- follow-ups -------------------------------------------------------------------------------


def test_upscale_result() -> None:
    raw = followup(f"**{P}** - Image #2 <@{USER}>", attachments=[attachment(UPSCALED_NAME)], components=upscale_rows())
    m = classify(raw)
    assert m.kind == "done"
    assert m.variant == "upscale"
    assert m.index == 2
    assert m.candidate_actions == {Action.UPSCALE}
    assert m.reference_message_id == SOURCE_MESSAGE
    assert m.mode is None
    assert m.job_hash == HASH
    web = m.buttons[-1]
    assert web.style == 5 and web.custom_id is None and web.url and web.label == "Web" and web.emoji == "🌐"
    assert m.buttons[0].label == "Upscale (Subtle)"


@pytest.mark.parametrize(
    ("label", "variant", "actions", "pan"),
    [
        ("Variations (Strong) by", "variation_strong", {Action.VARIATION, Action.VARY_STRONG}, None),
        ("Variations (Subtle) by", "variation_subtle", {Action.VARIATION, Action.VARY_SUBTLE}, None),
        ("Variations (Region) by", "variation_region", {Action.VARY_REGION}, None),
        ("Variations by", "variation", {Action.VARIATION}, None),
        ("Remix (Strong) by", "remix_strong", {Action.VARIATION, Action.VARY_STRONG, Action.REROLL}, None),
        ("Remix (Subtle) by", "remix_subtle", {Action.VARIATION, Action.VARY_SUBTLE, Action.REROLL}, None),
        ("Pan Left by", "pan", {Action.PAN}, PanDirection.LEFT),
        ("Pan Right by", "pan", {Action.PAN}, PanDirection.RIGHT),
        ("Pan Up by", "pan", {Action.PAN}, PanDirection.UP),
        ("Pan Down by", "pan", {Action.PAN}, PanDirection.DOWN),
        ("Zoom Out by", "zoom_out", {Action.ZOOM, Action.CUSTOM_ZOOM}, None),
        ("Upscaled (Subtle) by", "upscale_subtle", {Action.UPSCALE_SUBTLE}, None),
        ("Upscaled (Creative) by", "upscale_creative", {Action.UPSCALE_CREATIVE}, None),
        ("Upscaled (2x) by", "upscale_2x", set(), None),
        ("Upscaled (4x) by", "upscale_4x", set(), None),
        ("Make Square by", "make_square", set(), None),
    ],
)
def test_follow_up_results(label: str, variant: str, actions: set[Action], pan: PanDirection | None) -> None:
    raw = followup(
        f"**{P}** - {label} <@{USER}> (fast)", attachments=[attachment(grid_name(HASH2))], components=grid_rows(HASH2)
    )
    m = classify(raw)
    assert m.kind == "done"
    assert m.variant == variant
    assert m.candidate_actions == actions
    assert m.pan is pan
    assert m.index is None
    assert m.mode is Mode.FAST
    assert m.user_id == USER
    assert m.prompt == P
    assert m.job_hash == HASH2
    assert m.reference_message_id == SOURCE_MESSAGE


def test_follow_up_waiting_and_progress() -> None:
    waiting = classify(followup(f"**{P}** - Variations (Strong) by <@{USER}> (Waiting to start)", nonce=NONCE))
    assert waiting.kind == "waiting" and waiting.variant == "variation_strong" and waiting.nonce == NONCE
    running = classify(
        followup(f"**{P}** - Pan Left by <@{USER}> (62%) (relaxed)", attachments=[attachment(f"{HASH2}_grid_0.webp")])
    )
    assert running.kind == "progress" and running.progress == 62 and running.pan is PanDirection.LEFT
    assert running.mode is Mode.RELAX and running.job_hash == HASH2


def test_upscaling_in_progress() -> None:
    m = classify(followup(f"**{P}** - Upscaling by <@{USER}> (31%) (fast)"))
    assert m.kind == "progress"
    assert m.progress == 31
    assert m.variant == "upscaling"
    assert Action.UPSCALE_SUBTLE in m.candidate_actions


def test_upscaling_without_percent_and_without_buttons_is_not_done() -> None:
    m = classify(followup(f"**{P}** - Upscaling by <@{USER}> (fast)", attachments=[attachment(UPSCALED_NAME)]))
    assert m.kind == "progress"


def test_reference_falls_back_to_referenced_message() -> None:
    raw = followup(f"**{P}** - Image #3 <@{USER}>", attachments=[attachment(UPSCALED_NAME)])
    del raw["message_reference"]
    assert classify(raw).reference_message_id == SOURCE_MESSAGE


def test_interaction_id_prefers_metadata() -> None:
    raw = imagine_done()
    raw["interaction"]["id"] = "999"
    assert classify(raw).interaction_id == INTERACTION
    del raw["interaction_metadata"]
    assert classify(raw).interaction_id == "999"


def test_interaction_name_from_metadata_when_interaction_is_missing() -> None:
    raw = message(f"**{P}** - <@{USER}> (Waiting to start)", interaction_name=None)
    raw["interaction_metadata"]["name"] = "imagine"
    assert classify(raw).interaction_name == "imagine"


# --- blend --------------------------------------------------------------------------------------


def test_blend_final() -> None:
    prompt = "<https://s.mj.run/AbCdEf> <https://s.mj.run/GhIjKl> --ar 1:1"
    raw = message(
        f"**{prompt}** - <@{USER}> (fast)",
        interaction_name="blend",
        attachments=[attachment(grid_name())],
        components=grid_rows(),
    )
    m = classify(raw)
    assert m.kind == "done"
    assert m.prompt == prompt
    assert m.variant == "blend"
    assert Action.BLEND in m.candidate_actions


def test_blend_recognised_from_the_prompt_alone() -> None:
    prompt = "<https://s.mj.run/AbCdEf> <https://s.mj.run/GhIjKl> <https://s.mj.run/MnOpQr> --ar 2:3"
    m = classify(message(f"**{prompt}** - <@{USER}> (Waiting to start)", interaction_name=None))
    assert m.kind == "waiting" and m.variant == "blend"


def test_image_prompt_with_text_is_an_imagine() -> None:
    prompt = "<https://s.mj.run/AbCdEf> <https://s.mj.run/GhIjKl> a fox --ar 1:1"
    m = classify(message(f"**{prompt}** - <@{USER}> (Waiting to start)", interaction_name=None))
    assert m.variant == "imagine"


# --- describe / shorten / info ------------------------------------------------------------------


def test_describe_start_then_result() -> None:
    image_url = "https://cdn.discordapp.com/ephemeral-attachments/1/2/fox.png" + SIGNED
    start = message("", nonce=NONCE, interaction_name="describe", embeds=[embed(image_url=image_url)])
    m = classify(start)
    assert m.kind == "waiting"
    assert m.variant == "describe"
    assert m.nonce == NONCE and m.interaction_name == "describe"
    assert not m.finished

    done = message(
        "",
        id=start["id"],
        interaction_name="describe",
        embeds=[embed(description=DESCRIBE_TEXT, image_url=image_url, color=3092790)],
        components=[
            row(*(button(f"MJ::Job::PicReader::{i}", str(i)) for i in range(1, 5))),
            row(button("MJ::Picread::Retry", emoji="🔄"), button("MJ::Job::PicReader::all", "Imagine all")),
        ],
    )
    m = classify(done)
    assert m.kind == "describe"
    assert m.prompts == DESCRIBE_PROMPTS
    assert m.image_url == image_url
    assert (m.width, m.height) == (1024, 1536)
    assert m.message_id == start["id"]
    assert m.progress == 100
    assert m.candidate_actions == {Action.DESCRIBE}
    assert len(m.buttons) == 6
    assert m.finished
    assert m.error is None


def test_describe_result_without_interaction_name_or_variation_selectors() -> None:
    text = DESCRIBE_TEXT.replace("\ufe0f", "")
    raw = message("", interaction_name=None, embeds=[embed(description=text, image_url="https://x.test/a.png")])
    m = classify(raw)
    assert m.kind == "describe"
    assert m.prompts == DESCRIBE_PROMPTS


def test_describe_prompt_spanning_lines_stays_whole() -> None:
    text = "1\ufe0f\u20e3 a fox,\nin snow\n\n2\ufe0f\u20e3 two"
    m = classify(message("", interaction_name="describe", embeds=[embed(description=text)]))
    assert m.prompts == ("a fox,\nin snow", "two")


def test_shorten_result() -> None:
    shortened = embed("Shortened prompts", SHORTEN_TEXT, footer=SHORTEN_FOOTER)
    raw = message("", interaction_name="shorten", embeds=[shortened])
    m = classify(raw)
    assert m.kind == "shorten"
    assert m.prompts == (
        "fox, snow, cinematic lighting",
        "fox in snow, cinematic",
        "fox snow",
        "a fox",
        "cinematic fox",
    )
    assert m.embed_footer == SHORTEN_FOOTER
    assert m.candidate_actions == {Action.SHORTEN}


def test_shorten_recognised_by_footer_alone() -> None:
    raw = message("", interaction_name=None, embeds=[embed(description=SHORTEN_TEXT, footer=SHORTEN_FOOTER)])
    m = classify(raw)
    assert m.kind == "shorten" and len(m.prompts) == 5


def test_info() -> None:
    raw = message("", interaction_name="info", flags=64, embeds=[embed("Your info", INFO_TEXT, color=333)])
    m = classify(raw)
    assert m.kind == "info"
    assert m.info["Subscription"].startswith("Standard (Active monthly")
    assert m.info["Fast Time Remaining"] == "12.34/15.0 hours (82.27%)"
    assert m.info["Queued Jobs (fast)"] == "0"
    assert m.info["Queued Jobs (relax)"] == "1"
    assert m.info["Running Jobs"] == "None"
    assert m.info["Job Mode"] == "Fast"
    assert m.ephemeral


# --- not about a job ------------------------------------------------------------------------------


@pytest.mark.parametrize("command", ["fast", "relax", "turbo"])
def test_done_confirmation_is_other(command: str) -> None:
    m = classify(message("Done!", interaction_name=command, flags=64))
    assert m.kind == "other"
    assert m.interaction_name == command


def test_settings_is_other() -> None:
    raw = message(
        "Adjust your settings here. Current suffix: `--v 6.1`",
        interaction_name="settings",
        flags=64,
        components=[
            row(
                button("MJ::Settings::FastMode", "Fast mode", emoji="🐇", style=3),
                button("MJ::Settings::RelaxMode", "Relax mode"),
            ),
            row(button("MJ::Settings::Stealth", "Stealth mode", style=2)),
        ],
    )
    m = classify(raw)
    assert m.kind == "other"
    assert m.ephemeral
    assert m.buttons[0].style == 3 and m.buttons[0].emoji == "🐇"


def test_other_author_is_other_even_with_a_job_line() -> None:
    raw = imagine_done()
    raw["author"] = {"id": SOMEONE, "username": "someone"}
    m = classify(raw)
    assert m.kind == "other"
    assert m.prompt is None and m.buttons == ()
    assert m.author_id == SOMEONE and m.bot is None
    assert m.message_id == raw["id"]


def test_bot_ids_can_be_narrowed() -> None:
    raw = imagine_done()
    assert classify(raw, bot_ids={NIJI_BOT}).kind == "other"
    assert classify(raw, bot_ids=[MJ_BOT]).kind == "done"
    assert MJ_BOT in DEFAULT_BOT_IDS and NIJI_BOT in DEFAULT_BOT_IDS


def test_missing_author_is_other() -> None:
    raw = imagine_done()
    del raw["author"]
    assert classify(raw).kind == "other"


# --- errors ----------------------------------------------------------------------------------------

ERROR_CASES = [
    ("Banned prompt detected", ErrorCategory.CONTENT_POLICY),
    ("Banned prompt", ErrorCategory.CONTENT_POLICY),
    ("Request cancelled due to output filters", ErrorCategory.CONTENT_POLICY),
    ("Request cancelled due to image filters", ErrorCategory.CONTENT_POLICY),
    ("Invalid parameter", ErrorCategory.INVALID_REQUEST),
    ("Invalid prompt", ErrorCategory.INVALID_REQUEST),
    ("Invalid link", ErrorCategory.INVALID_REQUEST),
    ("Duplicate images detected", ErrorCategory.INVALID_REQUEST),
    ("Queue full", ErrorCategory.QUEUE_FULL),
    ("Action needed to continue", ErrorCategory.ACCOUNT),
    ("Action required to continue", ErrorCategory.ACCOUNT),
    ("Pending mod message", ErrorCategory.ACCOUNT),
    ("Credits exhausted", ErrorCategory.ACCOUNT),
    ("Blocked", ErrorCategory.ACCOUNT),
    ("Plan Cancelled", ErrorCategory.ACCOUNT),
    ("Subscription required", ErrorCategory.ACCOUNT),
    ("Subscription paused", ErrorCategory.ACCOUNT),
    ("Tos not accepted", ErrorCategory.ACCOUNT),
    ("Sorry! Could not complete the job!", ErrorCategory.RETRYABLE),
]


@pytest.mark.parametrize(("title", "category"), ERROR_CASES)
@pytest.mark.parametrize("color", [16711680, 16776960, 16239475, None])
def test_error_titles(title: str, category: ErrorCategory, color: int | None) -> None:
    raw = message(
        "",
        nonce=NONCE,
        flags=64,
        embeds=[embed(title, "Something about it.", color=color, footer=f"/imagine {P}")],
    )
    m = classify(raw)
    assert m.kind == "error"
    assert m.error is not None
    assert m.error.category is category
    assert m.error.title == title
    assert m.error.description == "Something about it."
    assert m.nonce == NONCE and m.interaction_id == INTERACTION
    assert m.embed_footer == f"/imagine {P}"
    assert m.finished


@pytest.mark.parametrize("variant", ["upper", "lower", "suffix", "icon"])
def test_error_title_match_is_a_case_insensitive_prefix(variant: str) -> None:
    title = {
        "upper": "BANNED PROMPT DETECTED",
        "lower": "invalid parameter",
        "suffix": "Queue full - try again later",
        "icon": "⚠️ Credits exhausted",
    }[variant]
    expected = {
        "upper": ErrorCategory.CONTENT_POLICY,
        "lower": ErrorCategory.INVALID_REQUEST,
        "suffix": ErrorCategory.QUEUE_FULL,
        "icon": ErrorCategory.ACCOUNT,
    }[variant]
    m = classify(message("", embeds=[embed(title, "x")]))
    assert m.kind == "error" and m.error is not None and m.error.category is expected


def test_output_filter_on_update_of_a_progress_message_keeps_the_job_line() -> None:
    raw = message(
        f"**{P}** - <@{USER}> (46%) (fast)",
        nonce=NONCE,
        attachments=[attachment(f"{HASH}_grid_0.webp")],
        embeds=[embed("Request cancelled due to output filters", "Sorry...", color=16711680)],
    )
    m = classify(raw)
    assert m.kind == "error"
    assert m.error is not None and m.error.category is ErrorCategory.CONTENT_POLICY
    assert m.prompt == P and m.job_hash == HASH and m.progress == 0


@pytest.mark.parametrize("color", [16711680, 16776960, 16239475])
def test_unknown_error_coloured_embed_is_retryable(color: int) -> None:
    m = classify(message("", embeds=[embed("Something new went wrong", "details", color=color)]))
    assert m.kind == "error"
    assert m.error == MjError("Something new went wrong", "details", ErrorCategory.RETRYABLE)


def test_unknown_embed_of_another_colour_is_other() -> None:
    m = classify(message("", embeds=[embed("Announcement", "V8 is out", color=5814783)]))
    assert m.kind == "other"
    assert m.embed_title == "Announcement"


def test_job_queued_is_not_an_error() -> None:
    raw = message(
        "",
        nonce=NONCE,
        embeds=[
            embed(
                "Job queued",
                "You have reached the maximum allowed number of concurrent jobs.",
                color=16776960,
                footer=f"/imagine {P}",
            )
        ],
    )
    m = classify(raw)
    assert m.kind == "queued"
    assert m.error is None
    assert m.nonce == NONCE
    assert m.embed_title == "Job queued"
    assert not m.finished


@pytest.mark.parametrize(
    "content",
    [
        "Failed to process your command :(",
        "Failed to process your command\nThe application did not respond",
        "failed to fetch image",
    ],
)
def test_failed_content_is_a_retryable_error(content: str) -> None:
    m = classify(message(content, nonce=NONCE))
    assert m.kind == "error"
    assert m.error is not None
    assert m.error.category is ErrorCategory.RETRYABLE
    assert m.error.title == content.split("\n")[0]


# --- robustness --------------------------------------------------------------------------------------

ODD_BUTTON = {"type": 2, "emoji": "🔄", "style": "2", "label": 5}  # wrong types everywhere


@pytest.mark.parametrize(
    "raw",
    [
        None,
        [],
        "a string",
        42,
        {},
        {"author": None},
        {"author": []},
        {"author": {"id": None}},
        {"author": {"id": MJ_BOT}},
        {"author": {"id": int(MJ_BOT)}, "content": None},
        {"author": {"id": MJ_BOT}, "content": ["**a** - <@1> (fast)"]},
        {"author": {"id": MJ_BOT}, "content": "**"},
        {"author": {"id": MJ_BOT}, "content": "**** - "},
        {"author": {"id": MJ_BOT}, "content": "** - <@1> (Waiting to start)"},
        {"author": {"id": MJ_BOT}, "content": "**a** - <@1> (999%)", "attachments": None},
        {"author": {"id": MJ_BOT}, "attachments": [None, 1, "x"], "components": [[1, 2], None, {"components": None}]},
        {"author": {"id": MJ_BOT}, "attachments": {"url": 1}, "components": {"components": []}},
        {"author": {"id": MJ_BOT}, "components": [{"components": [ODD_BUTTON]}]},
        {"author": {"id": MJ_BOT}, "embeds": [None, [], {"title": None, "footer": "x", "image": [], "color": "red"}]},
        {"author": {"id": MJ_BOT}, "embeds": {"title": "Banned prompt"}},
        {"author": {"id": MJ_BOT}, "embeds": [{"description": 7}], "interaction": "describe"},
        {"author": {"id": MJ_BOT}, "interaction_metadata": [], "message_reference": "x", "flags": "64", "nonce": 1.5},
        {"author": {"id": MJ_BOT}, "flags": True, "id": True, "channel_id": 3.14},
    ],
)
def test_garbage_never_raises(raw: Any) -> None:
    m = classify(raw)
    assert isinstance(m, MjMessage)
    # the content asks for progress 999: clamp it, never out of range
    assert 0 <= m.progress <= 100


def test_garbage_kinds() -> None:
    assert classify(None).kind == "other"
    assert classify({"author": {"id": MJ_BOT}, "content": None}).kind == "other"
    assert classify({"author": {"id": MJ_BOT}, "embeds": [{"title": "Banned prompt"}]}).kind == "error"
    weird = classify({"author": {"id": MJ_BOT}, "content": "**a** - <@1> (999%)"})
    assert weird.kind == "progress" and weird.progress == 100
    odd_button = classify(
        {"author": {"id": MJ_BOT}, "components": [{"components": [ODD_BUTTON]}]}
    )
    assert odd_button.buttons == (Button(),)


def test_int_ids_are_accepted() -> None:
    raw = imagine_done()
    raw["id"] = 1234
    raw["author"]["id"] = int(MJ_BOT)
    m = classify(raw)
    assert m.kind == "done" and m.message_id == "1234"


def test_message_is_a_frozen_msgspec_struct_that_encodes() -> None:
    m = classify(imagine_done())
    with pytest.raises(AttributeError):
        m.kind = "other"  # type: ignore[misc]
    decoded = msgspec.json.decode(msgspec.json.encode(m), type=MjMessage)
    assert decoded == m


def test_input_is_not_mutated() -> None:
    raw = followup(f"**{P}** - Image #2 <@{USER}>", attachments=[attachment(UPSCALED_NAME)], components=upscale_rows())
    before = copy.deepcopy(raw)
    classify(raw)
    assert raw == before


def _junk(rng: random.Random, depth: int) -> Any:
    choice = rng.randrange(9 if depth < 4 else 6)
    if choice == 0:
        return None
    if choice == 1:
        return rng.choice([0, 1, -1, 64, 2**70, True, 1.5, float("nan")])
    if choice == 2:
        return rng.choice(
            [
                "",
                "**",
                "** - ",
                "(31%)",
                "<@1>",
                "Done!",
                "Failed",
                "Banned prompt",
                "Your info",
                "Job queued",
                "1\ufe0f\u20e3 x",
                f"**p** - <@{USER}> (fast)",
                f"https://cdn.midjourney.com/{HASH}/0_0.png",
                f"MJ::JOB::upsample::1::{HASH}",
                "[(x)](<y>)",
            ]
        )
    if choice == 3:
        return rng.choice([MJ_BOT, NIJI_BOT, SOMEONE])
    if choice == 4:
        return b"bytes"
    if choice == 5:
        return rng.choice([16711680, 16776960, 2])
    if choice in (6, 7):
        keys = [
            "id", "author", "content", "attachments", "components", "embeds", "type", "url", "custom_id",
            "emoji", "name", "label", "style", "title", "description", "footer", "text", "color", "image",
            "interaction", "interaction_metadata", "message_reference", "message_id", "nonce", "flags",
            "width", "height", "referenced_message", "proxy_url",
        ]  # fmt: skip
        return {rng.choice(keys): _junk(rng, depth + 1) for _ in range(rng.randrange(6))}
    return [_junk(rng, depth + 1) for _ in range(rng.randrange(4))]


def test_random_shapes_never_raise() -> None:
    rng = random.Random(20240611)
    kinds: set[str] = set()
    for _ in range(600):
        raw = _junk(rng, 0)
        if isinstance(raw, dict) and rng.random() < 0.7:
            raw["author"] = {"id": rng.choice([MJ_BOT, NIJI_BOT])}
        m = classify(raw)
        assert isinstance(m, MjMessage)
        kinds.add(m.kind)
    assert "other" in kinds


def _mutate(rng: random.Random, node: Any) -> Any:
    """Replace a random part of a valid message with junk, so deep paths see wrong types."""
    if isinstance(node, dict) and node:
        key = rng.choice(list(node))
        node[key] = _junk(rng, 2) if rng.random() < 0.4 else _mutate(rng, node[key])
    elif isinstance(node, list) and node:
        i = rng.randrange(len(node))
        node[i] = _junk(rng, 2) if rng.random() < 0.4 else _mutate(rng, node[i])
    else:
        return _junk(rng, 3)
    return node


HTTPS_IMAGE = "https://x.test/a.png"


def test_mutated_valid_messages_never_raise() -> None:
    rng = random.Random(7)
    seeds = [
        imagine_done(),
        followup(f"**{P}** - Image #2 <@{USER}>", attachments=[attachment(UPSCALED_NAME)], components=upscale_rows()),
        message("", interaction_name="describe", embeds=[embed(description=DESCRIBE_TEXT, image_url=HTTPS_IMAGE)]),
        message("", embeds=[embed("Banned prompt detected", "no", color=16711680)]),
        message("", embeds=[embed("Your info", INFO_TEXT)]),
    ]
    for _ in range(400):
        raw = _mutate(rng, copy.deepcopy(rng.choice(seeds)))
        for _ in range(rng.randrange(3)):
            raw = _mutate(rng, raw)
        assert isinstance(classify(raw), MjMessage)


def test_internal_failure_is_contained(monkeypatch: pytest.MonkeyPatch) -> None:
    """Even a bug in a parser must not escape: the gateway reader has to survive it."""

    def boom(_: str) -> None:
        raise RuntimeError("parser bug")

    monkeypatch.setattr(message_text, "parse_job_line", boom)
    raw = imagine_done()
    m = classify(raw)
    assert m.kind == "other"
    assert m.message_id == raw["id"]


# --- text helpers --------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("url", "expected"),
    [
        (f"https://cdn.discordapp.com/attachments/1/2/user_a_cat_{HASH}.png{SIGNED}", HASH),
        (f"https://cdn.discordapp.com/attachments/1/2/{HASH}_grid_0.webp", HASH),
        (f"https://cdn.midjourney.com/{HASH}/0_0.png", HASH),
        (f"https://cdn.midjourney.com/{HASH.upper()}/0_0.webp?x=1", HASH),
        (f"https://cdn.discordapp.com/attachments/1/2/grid_0.webp?hm={HASH2}", None),
        ("", None),
    ],
)
def test_job_hash_from_url(url: str, expected: str | None) -> None:
    assert message_text.job_hash_from_url(url) == expected
