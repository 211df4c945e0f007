"""Chat: buttons the grammar has no words for are offered and pressed by Midjourney's label."""

from __future__ import annotations

from adapter.domain import buttons as b
from adapter.domain.buttons import Button
from adapter.domain.chat_grammar import describe_available, resolve_label

H = "bb5d727b-4df5-4c9b-be01-96d2f526c49e"
V7_UPSCALED = [
    Button(custom_id=b.upscale_subtle(H, "v7"), label="Upscale (Subtle)"),
    Button(custom_id=b.vary_strong(H), label="Vary (Strong)"),
    Button(custom_id=b.vary_region(H), label="Vary (Region)"),
    Button(custom_id=b.animate("high", H), label="Animate (High motion)", emoji="🎞️"),
    Button(custom_id=b.animate("low", H), label="Animate (Low motion)", emoji="🎞️"),
    Button(custom_id=f"MJ::JOB::enhance::1::{H}::SOLO", label="Enhance"),
    Button(custom_id=f"MJ::BOOKMARK::{H}", emoji="❤️"),
    Button(label="Web", style=5, url=f"https://www.midjourney.com/jobs/{H}"),
]


def test_unknown_and_animate_buttons_are_offered_under_their_own_labels() -> None:
    assert describe_available(V7_UPSCALED) == [
        "Upscale (Subtle)", "Vary (Strong)", "Animate (High motion)", "Animate (Low motion)", "Enhance",
    ]  # fmt: skip


def test_a_message_naming_a_label_presses_that_button() -> None:
    assert resolve_label("Animate (High motion)", V7_UPSCALED) is V7_UPSCALED[3]
    assert resolve_label("  animate low motion ", V7_UPSCALED) is V7_UPSCALED[4]
    assert resolve_label("enhance!", V7_UPSCALED) is V7_UPSCALED[5]


def test_only_whole_labels_of_buttons_without_grammar_words() -> None:
    assert resolve_label("enhance the colours of a red barn", V7_UPSCALED) is None  # a prompt
    assert resolve_label("Vary (Strong)", V7_UPSCALED) is None  # the grammar's own follow-up
    assert resolve_label("Web", V7_UPSCALED) is None  # a link
    assert resolve_label("", V7_UPSCALED) is None
    assert resolve_label("Animate (High motion)", []) is None
