"""OpenAI `size` -> Midjourney `--ar`."""

from __future__ import annotations

import pytest

from adapter.domain.sizing import MAX_AR_SIDE, SizeError, aspect_for_size, parse_ar, size_label


@pytest.mark.parametrize(
    ("size", "ar"),
    [
        ("1792x1024", "7:4"),
        ("1024x1792", "4:7"),
        ("1024x1536", "2:3"),
        ("1536x1024", "3:2"),
        ("1024x1024", "1:1"),
        ("512x512", "1:1"),
        ("256x256", "1:1"),
        ("1920x1080", "16:9"),
        ("1000x999", "1000:999"),
        (" 1024 X 768 ", "4:3"),
        ("1024\u00d7768", "4:3"),
    ],
)
def test_aspect_for_size(size: str, ar: str) -> None:
    assert aspect_for_size(size) == ar


@pytest.mark.parametrize("size", [None, "auto", "AUTO", " auto ", ""])
def test_auto_means_midjourney_default(size: str | None) -> None:
    assert aspect_for_size(size) is None


@pytest.mark.parametrize(
    "size", ["0x1024", "1024x0", "big", "1024", "1024x", "x1024", "-1024x1024", "10.5x10", "1024x1024x2", "123456x1", "1024:1024"]
)
def test_bad_sizes_raise_size_error(size: str) -> None:
    with pytest.raises(SizeError):
        aspect_for_size(size)


def test_size_error_is_a_value_error_with_the_expected_form() -> None:
    with pytest.raises(ValueError, match="WIDTHxHEIGHT"):
        aspect_for_size("huge")


@pytest.mark.parametrize("size", ["99999x1", "1x99999", "99991x2", "1001x999", "65521x65519", "12345x3"])
def test_huge_ratios_are_kept_in_range_and_shape(size: str) -> None:
    ar = aspect_for_size(size)
    assert ar is not None
    parsed = parse_ar(ar)
    assert parsed is not None, ar
    w, h = parsed
    assert 1 <= w <= MAX_AR_SIDE and 1 <= h <= MAX_AR_SIDE
    sw, sh = (int(v) for v in size.split("x"))
    # the shape is close to the requested one; past 1000:1 the short side stays at 1
    if min(w, h) == 1:
        assert (w > h) == (sw > sh)
    else:
        assert abs(w / h - sw / sh) / (sw / sh) < 0.01


@pytest.mark.parametrize(
    ("value", "parsed"),
    [("16:9", (16, 9)), (" 2 : 3 ", (2, 3)), ("1:1", (1, 1)), ("0:1", None), ("1:0", None), ("1.5:1", None), ("16x9", None), ("", None), ("a:b", None)],
)
def test_parse_ar(value: str, parsed: tuple[int, int] | None) -> None:
    assert parse_ar(value) == parsed


def test_size_label() -> None:
    assert size_label(1792, 1024) == "1792x1024"
