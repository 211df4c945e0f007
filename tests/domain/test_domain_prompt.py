"""Prompt flags and the normalisation used to match our prompt against Midjourney's echo."""

from __future__ import annotations

import pytest

from adapter.domain.prompt import ParsedPrompt, has_flag, normalize_for_match, parse_prompt, strip_flags


# --- parse_prompt -----------------------------------------------------------------------------


def test_flag_values_may_contain_spaces_and_commas() -> None:
    p = parse_prompt("a quiet street --no text, people, cars --ar 16:9")
    assert p.text == "a quiet street"
    assert p.flags == {"no": "text, people, cars", "ar": "16:9"}


def test_bare_flags_have_empty_values() -> None:
    p = parse_prompt("a cat --tile --ar 2:3 --fast")
    assert p.flags == {"tile": "", "ar": "2:3", "fast": ""}
    assert p.text == "a cat"


@pytest.mark.parametrize("dash", ["\u2014", "\u2013"])
def test_em_and_en_dash_are_flags(dash: str) -> None:
    p = parse_prompt(f"a cat {dash}ar 16:9 {dash}v 6.1")
    assert p.flags == {"ar": "16:9", "v": "6.1"}
    assert p.text == "a cat"


def test_leading_image_urls_are_collected_and_kept_in_text() -> None:
    p = parse_prompt("https://example.com/a.png <https://s.mj.run/xyz> a red fox --iw 2")
    assert p.image_urls == ("https://example.com/a.png", "https://s.mj.run/xyz")
    assert p.text == "https://example.com/a.png <https://s.mj.run/xyz> a red fox"
    assert p.flags == {"iw": "2"}


def test_urls_after_text_are_not_image_prompts() -> None:
    p = parse_prompt("a fox like https://example.com/a.png")
    assert p.image_urls == ()


def test_last_flag_wins_and_names_are_lower_case() -> None:
    p = parse_prompt("a cat --ar 1:1 --AR 2:3 --Ar 3:2")
    assert p.flags == {"ar": "3:2"}


def test_double_dash_inside_a_word_is_not_a_flag() -> None:
    p = parse_prompt("a well--known dog -- sitting --v 6")
    assert p.text == "a well--known dog -- sitting"
    assert p.flags == {"v": "6"}


def test_flags_separated_by_newlines() -> None:
    p = parse_prompt("a cat\n--ar 2:3\n--no red, blue")
    assert p == ParsedPrompt(text="a cat", flags={"ar": "2:3", "no": "red, blue"})


def test_prompt_without_flags() -> None:
    p = parse_prompt("  just a cat  ")
    assert p == ParsedPrompt(text="just a cat", flags={})


def test_prompt_that_is_only_flags() -> None:
    p = parse_prompt("--ar 2:3 --stylize 250")
    assert p.text == ""
    assert p.flags == {"ar": "2:3", "stylize": "250"}


# --- normalize_for_match ----------------------------------------------------------------------


def test_links_become_one_placeholder() -> None:
    ours = normalize_for_match("https://example.com/img.png a cat --ar 2:3")
    echo = normalize_for_match("<https://s.mj.run/AbCd123> a cat --ar 2:3")
    assert ours == echo == "<link> a cat --ar 2:3"


def test_whitespace_case_and_dashes_are_folded() -> None:
    assert normalize_for_match("  A   Cat\n\t\u2014AR 2:3 ") == normalize_for_match("a cat --ar 2:3")


def test_different_prompts_stay_different() -> None:
    assert normalize_for_match("a cat --ar 2:3") != normalize_for_match("a dog --ar 2:3")
    assert normalize_for_match("a cat --ar 2:3") != normalize_for_match("a cat --ar 3:2")


def test_several_links_each_become_a_placeholder() -> None:
    s = normalize_for_match("<https://s.mj.run/x> <https://s.mj.run/y> --ar 1:1")
    assert s == "<link> <link> --ar 1:1"


# --- strip_flags / has_flag -------------------------------------------------------------------


def test_strip_flags_removes_named_flags_with_values() -> None:
    assert strip_flags("a cat --fast --no text, people --ar 1:1", "fast", "no") == "a cat --ar 1:1"


def test_strip_flags_is_case_insensitive_and_handles_em_dash() -> None:
    assert strip_flags("a cat \u2014RELAX --ar 1:1 --Turbo", "relax", "TURBO") == "a cat --ar 1:1"


def test_strip_flags_keeps_everything_else_and_similar_names() -> None:
    assert strip_flags("a cat --fastest --ar 1:1", "fast") == "a cat --fastest --ar 1:1"
    assert strip_flags("a cat --ar 1:1") == "a cat --ar 1:1"


def test_strip_flags_removes_every_occurrence() -> None:
    assert strip_flags("a cat --fast --v 6 --fast", "fast") == "a cat --v 6"
    # a flag's value runs to the next flag, so a bare flag mid-text takes the words after it
    assert strip_flags("a --fast cat --fast --v 6", "fast") == "a --v 6"


def test_has_flag() -> None:
    assert has_flag("a cat --tile", "tile")
    assert has_flag("a cat \u2014Tile", "TILE")
    assert not has_flag("a cat --tiles", "tile")
    assert not has_flag("a cat tile", "tile")
    assert not has_flag("a well--tile cat", "tile")
