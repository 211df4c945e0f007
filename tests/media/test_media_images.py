from __future__ import annotations

import io

import pytest
from PIL import Image

from adapter.media.decoding import ImageError
from adapter.media.images import (
    content_type_of,
    convert,
    convert_async,
    image_size,
    image_size_async,
    preview,
    preview_async,
    run_image_op,
    split_grid,
    split_grid_async,
)

from .conftest import QUADRANT_COLORS, make_grid, make_image


def decode(data: bytes) -> Image.Image:
    img = Image.open(io.BytesIO(data))
    img.load()
    return img


def assert_solid(img: Image.Image, color: tuple[int, int, int], tolerance: int = 0) -> None:
    rgb = img.convert("RGB")
    w, h = rgb.size
    for x, y in [(0, 0), (w - 1, 0), (0, h - 1), (w - 1, h - 1), (w // 2, h // 2)]:
        got = rgb.getpixel((x, y))
        assert all(abs(a - b) <= tolerance for a, b in zip(got, color)), ((x, y), got, color)


@pytest.mark.parametrize("size", [(100, 80), (101, 77), (2, 2), (1023, 1025)])
def test_split_grid_quadrants_in_midjourney_order(size: tuple[int, int]) -> None:
    w, h = size
    tiles = split_grid(make_grid(size))
    assert len(tiles) == 4
    imgs = [decode(t) for t in tiles]
    assert all(i.format == "PNG" for i in imgs)
    for img, color in zip(imgs, QUADRANT_COLORS):
        assert_solid(img, color)
    # integer halves; right column and bottom row keep the odd pixel
    assert imgs[0].size == (w // 2, h // 2)
    assert imgs[1].size == (w - w // 2, h // 2)
    assert imgs[2].size == (w // 2, h - h // 2)
    assert imgs[3].size == (w - w // 2, h - h // 2)
    assert sum(i.size[0] * i.size[1] for i in imgs) == w * h


def test_split_grid_from_webp_input() -> None:
    tiles = split_grid(make_grid((64, 48), fmt="WEBP"))
    for tile, color in zip(tiles, QUADRANT_COLORS):
        img = decode(tile)
        assert img.size == (32, 24)
        assert_solid(img, color, tolerance=2)


def test_split_grid_keeps_alpha_and_converts_palette() -> None:
    rgba = make_image("PNG", (10, 10), (10, 20, 30, 128), mode="RGBA")
    assert decode(split_grid(rgba)[0]).mode == "RGBA"
    palette = make_image("GIF", (10, 10), 3, mode="P")
    assert decode(split_grid(palette)[3]).mode in ("RGB", "RGBA")


def test_split_grid_refuses_garbage_and_tiny() -> None:
    with pytest.raises(ImageError):
        split_grid(b"not an image")
    with pytest.raises(ImageError):
        split_grid(make_image("PNG", (1, 5)))


@pytest.mark.parametrize("fmt,pil", [("png", "PNG"), ("jpeg", "JPEG"), ("jpg", "JPEG"), ("webp", "WEBP")])
def test_convert_to_each_format_decodes(fmt: str, pil: str) -> None:
    src = make_image("WEBP", (30, 20), (0, 128, 255))
    out = convert(src, fmt, 90)  # type: ignore[arg-type]
    img = decode(out)
    assert img.format == pil
    assert img.size == (30, 20)
    assert_solid(img, (0, 128, 255), tolerance=8)


def test_convert_rgba_to_jpeg_flattens_on_white() -> None:
    transparent = make_image("PNG", (16, 16), (255, 0, 0, 0), mode="RGBA")
    out = decode(convert(transparent, "jpeg"))
    assert out.mode == "RGB"
    assert_solid(out, (255, 255, 255), tolerance=3)
    opaque = make_image("PNG", (16, 16), (0, 0, 255, 255), mode="RGBA")
    assert_solid(decode(convert(opaque, "jpeg")), (0, 0, 255), tolerance=6)


def test_convert_same_format_without_compression_is_untouched() -> None:
    png = make_image("PNG", (9, 9))
    assert convert(png, "png") is png
    # but an explicit compression re-encodes
    jpeg = make_image("JPEG", (9, 9))
    assert convert(jpeg, "jpeg", 50) != jpeg


def test_convert_compression_trades_size() -> None:
    # a noisy image so quality changes the file size
    img = Image.effect_noise((128, 128), 64).convert("RGB")
    buf = io.BytesIO()
    img.save(buf, "PNG")
    src = buf.getvalue()
    for fmt in ("jpeg", "webp"):
        small, big = convert(src, fmt, 10), convert(src, fmt, 100)  # type: ignore[arg-type]
        assert len(small) < len(big), fmt
    with pytest.raises(ValueError):
        convert(src, "jpeg", 101)
    with pytest.raises(ValueError):
        convert(src, "bmp")


@pytest.mark.parametrize("size,expected", [((2048, 1024), (512, 256)), ((600, 900), (341, 512)), ((100, 50), (100, 50))])
def test_preview_downscales_keeping_aspect(size: tuple[int, int], expected: tuple[int, int]) -> None:
    src = make_image("PNG", size, (40, 200, 40))
    out = decode(preview(src))
    assert out.format == "JPEG"
    assert out.size == expected
    assert_solid(out, (40, 200, 40), tolerance=8)


def test_preview_formats_and_size_argument() -> None:
    src = make_image("JPEG", (1000, 1000))
    assert decode(preview(src, 128, "webp")).format == "WEBP"
    png = decode(preview(src, 64, "png"))
    assert (png.format, png.size) == ("PNG", (64, 64))
    with pytest.raises(ValueError):
        preview(src, 0)


def test_image_size_and_content_type() -> None:
    assert image_size(make_image("WEBP", (13, 17))) == (13, 17)
    assert image_size(make_image("GIF", (3, 2), 1, mode="P")) == (3, 2)
    with pytest.raises(ImageError):
        image_size(b"\x89PNG\r\n\x1a\nnope")
    assert content_type_of("jpg") == "image/jpeg"
    assert content_type_of("webp") == "image/webp"


async def test_async_wrappers_run_the_same_work() -> None:
    grid = make_grid((40, 30))
    tiles = await split_grid_async(grid)
    assert [decode(t).size for t in tiles] == [(20, 15)] * 4
    assert decode(await convert_async(grid, "webp", 80)).format == "WEBP"
    assert decode(await preview_async(grid, 10)).size == (10, 8)
    assert await image_size_async(grid) == (40, 30)
    assert await run_image_op(image_size, grid) == (40, 30)
    assert decode(await run_image_op(preview, grid, max_side=20, fmt="png")).size == (20, 15)


@pytest.mark.parametrize("mode", ["RGB", "RGBA"])
@pytest.mark.parametrize("size", [(1, 1), (2, 3), (17, 5), (64, 33)])
def test_encode_png_fast_is_lossless(mode: str, size: tuple[int, int]) -> None:
    """Tiles are PNGs of our own making (Average filter, Huffman-only deflate): whatever the
    content, they decode to exactly the pixels they were made from."""
    import random

    from adapter.media.images import encode_png_fast

    rng = random.Random(f"{mode}{size}")
    img = Image.frombytes(mode, size, rng.randbytes(size[0] * size[1] * len(mode)))
    data = encode_png_fast(img)
    out = decode(data)
    assert out.format == "PNG" and out.mode == mode and out.size == size
    assert out.tobytes() == img.tobytes()


def test_split_grid_tiles_are_the_grid_pixels_exactly() -> None:
    """A photo-like grid (noise: every filter and byte value occurs) split into tiles whose pixels
    are exactly the grid's quadrants, odd sizes included."""
    import random

    rng = random.Random(7)
    grid = Image.frombytes("RGB", (61, 47), rng.randbytes(61 * 47 * 3))
    buf = io.BytesIO()
    grid.save(buf, "PNG")
    tiles = split_grid(buf.getvalue())
    boxes = [(0, 0, 30, 23), (30, 0, 61, 23), (0, 23, 30, 47), (30, 23, 61, 47)]
    for tile, box in zip(tiles, boxes):
        assert decode(tile).tobytes() == grid.crop(box).tobytes()
