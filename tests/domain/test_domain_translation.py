"""Prompt translation, the pure part: which prompts need translating, what the translator sees,
and how its answer is put back together with the pieces Midjourney must get as written."""

from __future__ import annotations

import pytest

from adapter.domain.translation import MaskedPrompt, UnmaskError, mask_prompt, needs_translation


def masked(prompt: str) -> MaskedPrompt:
    m = mask_prompt(prompt)
    assert m is not None, prompt
    return m


# --- what needs translating -------------------------------------------------------------------


@pytest.mark.parametrize(
    "text",
    ["一只猫", "猫 in the rain", "кошка", "قطة", "고양이", "ねこ", "γάτα", "חתול", "แมว", "बिल्ली"],
)
def test_letters_of_other_scripts_need_translating(text: str) -> None:
    assert needs_translation(text)


@pytest.mark.parametrize(
    "text",
    ["a cat", "café crème, Pokémon, naïve façade", "5µm lens, 1ª edición", "a cat 🐱 ★ — “quoted”", "16:9, 3/4", ""],
)
def test_latin_script_symbols_and_emoji_do_not(text: str) -> None:
    assert not needs_translation(text)


@pytest.mark.parametrize(
    "prompt",
    [
        "a cat under the moon --ar 16:9 --v 6",
        "https://example.com/%E7%8C%AB.png a cat, sans-serif café sign",
        "<https://example.com/x.png> a red fox --no text",
        "a cat --p 中文码",  # in a flag value only
        "cat::2 dog::-0.5 --chaos 10",
        "<猫咪> a cat",  # in a placeholder only
        "https://example.com/a.png --ar 1:1",  # no words at all
        "",
    ],
)
def test_nothing_to_translate_means_no_mask(prompt: str) -> None:
    assert mask_prompt(prompt) is None


# --- splitting --------------------------------------------------------------------------------


def test_flags_and_their_values_never_reach_the_translator() -> None:
    m = masked("一只猫在月光下 --ar 16:9 --v 6 --style raw")
    assert m.text == "一只猫在月光下" and m.kept == () and m.head == ""
    assert m.tail == "--ar 16:9 --v 6 --style raw"
    assert m.unmask("a cat in the moonlight") == "a cat in the moonlight --ar 16:9 --v 6 --style raw"


def test_leading_image_links_are_kept_as_written() -> None:
    m = masked("https://cdn.example.com/a.png <https://cdn.example.com/b.jpg?x=1&y=2> 水彩风格的城市 --iw 2")
    assert m.head == "https://cdn.example.com/a.png <https://cdn.example.com/b.jpg?x=1&y=2>"
    assert m.text == "水彩风格的城市" and m.tail == "--iw 2"
    assert m.unmask("a watercolor city") == "https://cdn.example.com/a.png <https://cdn.example.com/b.jpg?x=1&y=2> a watercolor city --iw 2"


def test_a_link_is_not_extended_into_the_words_after_it() -> None:
    # links are ASCII (browsers copy them percent-encoded): Chinese written right after one is words
    m = masked("https://example.com/a.png一只猫")
    assert m.head == "https://example.com/a.png" and m.text == "一只猫"
    assert m.unmask("a cat") == "https://example.com/a.png a cat"


def test_multi_prompt_weights_are_masked_in_order_and_stick_to_their_words() -> None:
    m = masked("一只猫::2 一只狗::-0.5 森林:: --ar 3:2")
    assert m.text == "一只猫{{1}} 一只狗{{2}} 森林" and m.kept == ("::2", "::-0.5") and m.tail == ":: --ar 3:2"
    assert m.unmask("a cat{{1}} a dog {{2}} a forest") == "a cat::2 a dog::-0.5 a forest:: --ar 3:2"


def test_weights_keep_a_space_the_caller_wrote() -> None:
    m = masked("猫 ::2 狗")
    assert m.unmask("cat {{1}} dog") == "cat ::2 dog"


def test_placeholders_and_links_between_words_are_masked() -> None:
    m = masked("猫<image>在 https://example.com/bg.png 前面 <:mj:123>")
    assert m.kept == ("<image>", "https://example.com/bg.png") and m.tail == "<:mj:123>"
    assert m.text == "猫{{1}}在 {{2}} 前面"
    # a mask glued to words gets its spaces back
    assert m.unmask("a cat{{1}}in front of{{2}}") == "a cat <image> in front of https://example.com/bg.png <:mj:123>"


def test_the_words_of_no_are_translated_the_rest_of_the_flags_are_not() -> None:
    m = masked("一只猫 --ar 16:9 --no 文字, 人 --v 6")
    assert m.text == "一只猫 {{1}} 文字, 人" and m.kept == ("--ar 16:9 --no",) and m.tail == "--v 6"
    assert m.unmask("a cat {{1}} text, people") == "a cat --ar 16:9 --no text, people --v 6"


def test_a_negative_prompt_alone_is_translated() -> None:
    m = masked("a cat --no 文字")
    assert m.text == "a cat {{1}} 文字" and m.kept == ("--no",)
    assert m.unmask("a cat {{1}} text") == "a cat --no text"


def test_dashes_from_input_methods_become_flags() -> None:
    m = masked("一只猫 ——ar 16:9 —v 6")
    assert m.text == "一只猫" and m.tail == "--ar 16:9 --v 6"


def test_mixed_scripts_go_as_one_text() -> None:
    m = masked("a portrait of 孙悟空 in cyberpunk style, кот на плече --niji 6")
    assert m.text == "a portrait of 孙悟空 in cyberpunk style, кот на плече" and m.tail == "--niji 6"


def test_mask_lookalikes_in_the_prompt_are_kept_too() -> None:
    m = masked("猫 {{1}} 狗")
    assert m.kept == ("{{1}}",) and m.text == "猫 {{1}} 狗"
    assert m.unmask("cat {{1}} dog") == "cat {{1}} dog"


def test_whitespace_and_newlines_are_collapsed() -> None:
    m = masked("一只猫\n\n在雨中   --ar 2:3")
    assert m.text == "一只猫 在雨中"
    assert m.unmask("a cat\n in the rain ") == "a cat in the rain --ar 2:3"


# --- answers that are refused -----------------------------------------------------------------


@pytest.mark.parametrize(
    "answer",
    [
        "a cat a dog a forest",  # masks dropped
        "a cat{{1}} a dog a forest",  # one dropped
        "a cat{{2}} a dog{{1}} a forest",  # reordered
        "a cat{{1}} a dog{{1}}{{2}} a forest",  # repeated
        "a cat{{1}} a dog{{2}}{{3}} a forest",  # invented
        "{{1}}{{2}}",  # no words
        "",
    ],
)
def test_answers_that_lost_the_masks_or_the_words_are_refused(answer: str) -> None:
    m = masked("一只猫::2 一只狗::1 森林")
    with pytest.raises(UnmaskError):
        m.unmask(answer)


def test_spaces_inside_a_mask_are_tolerated() -> None:
    assert masked("猫::2 狗").unmask("cat{{ 1 }} dog") == "cat::2 dog"


@pytest.mark.parametrize(
    "answer",
    ['"a cat in the rain"', "“a cat in the rain”", "Translation: a cat in the rain", "English: 'a cat in the rain'"],
)
def test_a_label_or_quotes_around_the_answer_are_taken_off(answer: str) -> None:
    assert masked("雨中的猫 --ar 1:1").unmask(answer) == "a cat in the rain --ar 1:1"


def test_quotes_the_caller_wrote_stay() -> None:
    m = masked('"雨中的猫"')
    assert m.unmask('"a cat in the rain"') == '"a cat in the rain"'
