"""The local banned-word check: whole words, case-insensitive, phrases, links ignored."""

from __future__ import annotations

import pytest

from adapter.domain.banned import DEFAULT_BANNED_WORDS, BannedWords, build_banned_words


@pytest.fixture
def default() -> BannedWords:
    return build_banned_words()


@pytest.mark.parametrize(
    "prompt",
    ["green grass in the morning", "an assassin in the dark", "a bass guitar", "class photo", "passport", "embassy"],
)
def test_words_inside_other_words_pass(default: BannedWords, prompt: str) -> None:
    assert default.find(prompt) is None


def test_scunthorpe_style_substrings_pass() -> None:
    b = build_banned_words(["cunt"], replace=True)
    assert b.find("a day trip to Scunthorpe") is None
    assert b.find("you cunt") == "cunt"


@pytest.mark.parametrize("prompt", ["kick ASS", "Nude figure", "NSFW art", "a GoRe scene", "ass.", "(ass)", "ass-hat"])
def test_case_insensitive_whole_words(default: BannedWords, prompt: str) -> None:
    assert default.find(prompt) is not None


def test_reports_the_configured_word_in_lower_case(default: BannedWords) -> None:
    assert default.find("a very NUDE statue") == "nude"


def test_word_characters_around_a_word_block_the_match(default: BannedWords) -> None:
    assert default.find("nsfw_tag") is None
    assert default.find("nude2") is None


def test_multi_word_phrases_match_across_any_whitespace() -> None:
    b = build_banned_words(["blood bath"], replace=True)
    assert b.find("a Blood \n\t  BATH at dawn") == "blood bath"
    assert b.find("blood") is None
    assert b.find("bloodbath") is None
    assert b.find("blood, bath") is None


def test_phrases_with_regex_characters_are_literal() -> None:
    b = build_banned_words(["c++ code", "a.b"], replace=True)
    assert b.find("write c++  code") == "c++ code"
    assert b.find("axb") is None
    assert b.find("see a.b now") == "a.b"


@pytest.mark.parametrize(
    "prompt",
    [
        "https://example.com/nude.png a landscape",
        "<https://example.com/gore/ass.png> a landscape",
        "a landscape http://example.com/?q=nsfw",
    ],
)
def test_links_are_ignored(default: BannedWords, prompt: str) -> None:
    assert default.find(prompt) is None


def test_text_next_to_a_link_is_still_checked(default: BannedWords) -> None:
    assert default.find("https://example.com/a.png gore") == "gore"


def test_extend_keeps_the_defaults() -> None:
    b = build_banned_words(["dragonfruit"])
    assert b.find("a dragonfruit") == "dragonfruit"
    assert b.find("gore") == "gore"
    assert set(DEFAULT_BANNED_WORDS) <= set(b.words)


def test_replace_drops_the_defaults() -> None:
    b = build_banned_words(["dragonfruit"], replace=True)
    assert b.find("a dragonfruit") == "dragonfruit"
    assert b.find("gore nude nsfw") is None
    assert b.words == ("dragonfruit",)


def test_empty_list_bans_nothing() -> None:
    b = build_banned_words([], replace=True)
    assert b.find("gore nude") is None
    assert BannedWords(["", "   "]).find("anything") is None


def test_configured_words_are_trimmed_and_case_folded() -> None:
    b = BannedWords(["  Dragon  "])
    assert b.words == ("dragon",)
    assert b.find("a DRAGON") == "dragon"


def test_longer_entry_wins_over_its_prefix() -> None:
    b = BannedWords(["blood", "blood bath"])
    assert b.find("a blood bath") == "blood bath"
