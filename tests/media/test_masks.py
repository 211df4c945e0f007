"""adapter.media.masks: Vary (Region) masks under a pixel budget."""

from __future__ import annotations

import io
import random

import pytest
from PIL import Image

from adapter.media.decoding import ImageError, load_image
from adapter.media.masks import MASK_MAX_PIXELS, MaskError, _jpeg_scale, midjourney_mask, region_mask_png


def encode(img: Image.Image, fmt: str = "PNG", **kw: object) -> bytes:
    buf = io.BytesIO()
    img.save(buf, fmt, **kw)
    return buf.getvalue()


def decoded(png: bytes) -> Image.Image:
    img = Image.open(io.BytesIO(png))
    img.load()
    return img


def old_midjourney_mask(data: bytes, width: int, height: int) -> bytes:
    """The function as it was before the budget (serving_edits.midjourney_mask), the reference
    for behaviour on masks within the budget."""
    img = load_image(data)
    region = None
    if img.mode in ("RGBA", "LA", "PA") or (img.mode == "P" and "transparency" in img.info):
        alpha = img.convert("RGBA").getchannel("A")
        lo, _hi = alpha.getextrema()
        if lo < 128:
            region = alpha.point(lambda a: 255 if a < 128 else 0)
    if region is None:
        region = img.convert("L").point(lambda v: 255 if v >= 128 else 0)
    if region.getbbox() is None:
        raise ValueError("The mask marks no area to edit")
    if region.size != (width, height):
        region = region.resize((width, height), Image.Resampling.NEAREST)
    out = io.BytesIO()
    region.convert("L").save(out, "PNG")
    return out.getvalue()


def noise(mode: str, size: tuple[int, int], seed: int) -> Image.Image:
    rng = random.Random(seed)
    img = Image.new(mode, size)
    if mode == "P":
        img.putpalette([rng.randrange(256) for _ in range(768)])
    row_bytes = (size[0] + 7) // 8 if mode == "1" else size[0] * len(img.getbands())
    img.frombytes(bytes(rng.randrange(256) for _ in range(row_bytes * size[1])))
    return img


def small_masks() -> list[tuple[str, bytes]]:
    rng = random.Random(7)
    palette = noise("P", (37, 23), 3)
    square = Image.new("RGBA", (40, 40), (0, 0, 0, 255))
    square.paste((0, 0, 0, 0), (10, 10, 20, 20))
    return [
        *((mode, encode(noise(mode, (37, 23), i))) for i, mode in enumerate(["RGBA", "LA", "L", "RGB", "1", "P"])),
        ("P, one transparent index", encode(palette, transparency=5)),
        ("P, tRNS per index", encode(palette, transparency=bytes(rng.randrange(256) for _ in range(200)))),
        ("RGBA square", encode(square)),
        ("RGBA opaque, white square", encode(Image.new("RGBA", (20, 20), (255, 255, 255, 255)))),
        ("RGB with a colour key", encode(noise("RGB", (16, 16), 9), transparency=(0, 0, 0))),
        ("GIF", encode(noise("P", (30, 30), 11), "GIF", transparency=3)),
        ("WebP lossless RGBA", encode(noise("RGBA", (24, 24), 12), "WEBP", lossless=True)),
    ]


@pytest.mark.parametrize(("name", "data"), small_masks(), ids=[n for n, _ in small_masks()])
@pytest.mark.parametrize("size", [(37, 23), (100, 61), (9, 5)])
def test_same_result_as_before_on_small_masks(name: str, data: bytes, size: tuple[int, int]) -> None:
    try:
        want = decoded(old_midjourney_mask(data, *size))
    except ValueError:
        with pytest.raises(MaskError) as err:
            midjourney_mask(data, *size)
        assert err.value.code == "empty"
        return
    got = decoded(midjourney_mask(data, *size))
    assert (got.format, got.mode, got.size) == ("PNG", "L", size)
    assert got.tobytes() == want.tobytes()


def test_transparent_area_is_white_on_black() -> None:
    img = Image.new("RGBA", (64, 64), (10, 200, 30, 255))
    img.paste((0, 0, 0, 0), (16, 16, 32, 32))
    out = decoded(midjourney_mask(encode(img), 128, 128))
    assert out.getbbox() == (32, 32, 64, 64) and set(out.tobytes()) == {0, 255}


def test_a_mask_that_marks_nothing() -> None:
    with pytest.raises(MaskError) as err:
        midjourney_mask(encode(Image.new("RGBA", (64, 64), (0, 0, 0, 255))), 64, 64)
    assert err.value.code == "empty" and "no area" in str(err.value)
    assert isinstance(err.value, ImageError) and isinstance(err.value, ValueError)  # callers catch either


@pytest.mark.parametrize("data", [b"", b"not an image", encode(Image.new("L", (64, 64), 255))[:60]])
def test_not_an_image(data: bytes) -> None:
    with pytest.raises(MaskError) as err:
        midjourney_mask(data, 64, 64)
    assert err.value.code == "not_image"


# --- the budget -----------------------------------------------------------------------------------


def palette_bomb(side: int) -> bytes:
    """A palette PNG, transparent everywhere: a few kB that decode to side*side bytes."""
    img = Image.new("P", (side, side), 0)
    img.putpalette([0, 0, 0] * 256)
    return encode(img, transparency=0)


def test_the_budget_is_a_2048_square() -> None:
    assert MASK_MAX_PIXELS == 2048 * 2048


def test_a_huge_png_mask_is_refused_from_its_header() -> None:
    data = palette_bomb(7999)
    assert len(data) < 100_000
    with pytest.raises(MaskError) as err:
        midjourney_mask(data, 1024, 1024)
    message = str(err.value)
    assert err.value.code == "too_large"
    assert "7999x7999" in message and "2048x2048" in message and "send the mask at the size of the image (1024x1024)" in message


@pytest.mark.parametrize("fmt", ["PNG", "WEBP", "GIF"])
def test_the_edge_of_the_budget(fmt: str) -> None:
    at = Image.new("L", (100, 50), 0)
    at.paste(255, (10, 10, 20, 20))
    assert decoded(midjourney_mask(encode(at, fmt, **({"lossless": True} if fmt == "WEBP" else {})), 100, 50)).getbbox() == (10, 10, 20, 20)
    midjourney_mask(encode(at, fmt), 100, 50, max_pixels=5000)
    with pytest.raises(MaskError) as err:
        midjourney_mask(encode(at, fmt), 100, 50, max_pixels=4999)
    assert err.value.code == "too_large" and "100x50" in str(err.value)


def test_a_header_beyond_any_reason_is_refused() -> None:
    with pytest.raises(MaskError) as err:
        midjourney_mask(encode(Image.new("1", (20000, 20000))), 1024, 1024)
    assert err.value.code == "too_large" and "size of the image" in str(err.value)


def big_jpeg(side: int) -> bytes:
    img = Image.new("L", (side, side), 0)
    img.paste(255, (side // 4, side // 4, side // 2, side // 2))
    return encode(img, "JPEG", quality=90)


def test_a_big_jpeg_mask_is_downscaled_while_decoding() -> None:
    """6000x6000 is 36 Mpx, over the budget at full size; libjpeg's 1/4 scale (1500x1500) fits,
    and the region lands where it was drawn."""
    out = decoded(midjourney_mask(big_jpeg(6000), 1024, 1024))
    assert out.size == (1024, 1024)
    left, top, right, bottom = out.getbbox() or (0, 0, 0, 0)
    assert abs(left - 256) <= 2 and abs(top - 256) <= 2 and abs(right - 512) <= 2 and abs(bottom - 512) <= 2


def test_a_jpeg_too_big_even_at_an_eighth_is_refused() -> None:
    with pytest.raises(MaskError) as err:
        midjourney_mask(big_jpeg(1000), 100, 100, max_pixels=10_000)  # 1/8 is 125x125
    assert err.value.code == "too_large" and "1000x1000" in str(err.value)
    assert decoded(midjourney_mask(big_jpeg(1000), 100, 100, max_pixels=125 * 125)).size == (100, 100)


@pytest.mark.parametrize(
    ("size", "budget", "want", "scale"),
    [
        ((6000, 6000), MASK_MAX_PIXELS, (1024, 1024), 4),  # 1/2 is 9 Mpx, 1/4 fits and covers 1024
        ((4096, 4096), MASK_MAX_PIXELS, (1024, 1024), 4),  # fits at 1/2, but 1/4 still covers the target
        ((4096, 4096), MASK_MAX_PIXELS, (2048, 2048), 2),
        ((2048, 2048), MASK_MAX_PIXELS, (2048, 2048), 1),
        ((1000, 1000), MASK_MAX_PIXELS, (2048, 2048), 1),  # smaller than the target: full size
        ((8000, 8000), MASK_MAX_PIXELS, None, 4),  # no target: the first scale that fits
        ((1000, 1000), 10_000, None, None),  # not even 1/8 fits
    ],
)
def test_jpeg_draft_scale(size: tuple[int, int], budget: int, want: tuple[int, int] | None, scale: int | None) -> None:
    assert _jpeg_scale(*size, budget, want) == scale


# --- Midjourney-style masks (the /mj modal's maskBase64) ------------------------------------------


def test_region_white_on_black() -> None:
    img = Image.new("RGB", (50, 40), (0, 0, 0))
    img.paste((250, 250, 250), (5, 6, 15, 16))
    out = decoded(region_mask_png(encode(img, "PNG")))
    assert (out.format, out.mode, out.size, out.getbbox()) == ("PNG", "L", (50, 40), (5, 6, 15, 16))


def test_region_white_on_transparent_counts_only_opaque_white() -> None:
    img = Image.new("RGBA", (50, 40), (255, 255, 255, 0))  # transparent, but white underneath
    img.paste((255, 255, 255, 255), (5, 6, 15, 16))
    img.paste((0, 0, 0, 255), (30, 30, 40, 40))
    assert decoded(region_mask_png(encode(img))).getbbox() == (5, 6, 15, 16)
    assert decoded(region_mask_png(encode(img, "WEBP", lossless=True))).getbbox() == (5, 6, 15, 16)


def test_region_palette_with_transparency() -> None:
    img = Image.new("P", (30, 30), 0)
    img.putpalette([255, 255, 255, 0, 0, 0, 255, 255, 255] + [0] * 759)  # 0: white (transparent), 1: black, 2: white
    img.paste(2, (3, 4, 9, 10))
    img.paste(1, (20, 20, 25, 25))
    assert decoded(region_mask_png(encode(img, transparency=0))).getbbox() == (3, 4, 9, 10)
    assert decoded(region_mask_png(encode(img, "GIF", transparency=0))).getbbox() == (3, 4, 9, 10)


def test_region_jpeg_downscaled_and_budget() -> None:
    out = decoded(region_mask_png(big_jpeg(6000)))
    assert out.size == (1500, 1500) and out.getbbox() is not None
    with pytest.raises(MaskError) as err:
        region_mask_png(palette_bomb(3000))
    assert err.value.code == "too_large" and "3000x3000" in str(err.value) and "size of the image" in str(err.value)


def test_region_empty_or_not_an_image() -> None:
    with pytest.raises(MaskError) as err:
        region_mask_png(encode(Image.new("RGB", (20, 20), (0, 0, 0))))
    assert err.value.code == "empty" and "white" in str(err.value)
    with pytest.raises(MaskError) as err:
        region_mask_png(b"%PDF-1.4")
    assert err.value.code == "not_image"
