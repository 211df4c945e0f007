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


# -- ISA-L (isal) paths: the same pixels as stdlib zlib and Pillow's own decode --------------------


def _noisy_png(mode: str, size: tuple[int, int], seed: int, **save: object) -> tuple[Image.Image, bytes]:
    """Noise with smooth bands (Pillow's adaptive encoder then uses every filter type), saved by
    Pillow; big enough for several IDAT chunks."""
    import random

    rng = random.Random(seed)
    w, h = size
    channels = len(mode)
    noise = bytearray(rng.randbytes(w * h * channels))
    for i in range(0, len(noise), 7):  # runs of a repeated byte: Sub/Up/Paeth rows, LZ77 matches
        noise[i] = noise[i - 1] if i else 0
    img = Image.frombytes(mode, size, bytes(noise))
    buf = io.BytesIO()
    img.save(buf, "PNG", **save)
    return img, buf.getvalue()


def _split_pixels(png: bytes) -> list[tuple[str, tuple[int, int], bytes]]:
    return [(t.mode, t.size, t.tobytes()) for t in map(decode, split_grid(png))]


@pytest.mark.parametrize("mode", ["RGB", "RGBA"])
@pytest.mark.parametrize("size", [(2, 2), (61, 47), (300, 257)])
def test_split_grid_isal_and_zlib_paths_give_the_same_pixels(
    mode: str, size: tuple[int, int], monkeypatch: pytest.MonkeyPatch
) -> None:
    import zlib

    from adapter.media import images

    if images._isal_zlib is None:
        pytest.skip("isal is not installed")
    grid, png = _noisy_png(mode, size, seed=size[0])
    with_isal = _split_pixels(png)
    monkeypatch.setattr(images, "_isal_zlib", None)
    monkeypatch.setattr(images, "_crc32", zlib.crc32)
    with_zlib = _split_pixels(png)
    assert with_isal == with_zlib
    w, h = size
    boxes = [(0, 0, w // 2, h // 2), (w // 2, 0, w, h // 2), (0, h // 2, w // 2, h), (w // 2, h // 2, w, h)]
    assert [p for _, _, p in with_isal] == [grid.crop(b).tobytes() for b in boxes]


@pytest.mark.parametrize("mode", ["RGB", "RGBA"])
@pytest.mark.parametrize("level", [0, 1, 9])
def test_fast_png_split_equals_pillows(mode: str, level: int) -> None:
    """The grid split with ISA-L's inflate (stored blocks handed to Pillow's un-filtering) gives
    Pillow's pixels, whatever the deflate level the PNG was written with (0: stored blocks)."""
    from adapter.media import images

    if images._isal_zlib is None:
        pytest.skip("isal is not installed")
    grid, png = _noisy_png(mode, (129, 70), seed=level, compress_level=level)
    images._png_chunks(png)  # a plain PNG: the fast path takes it
    assert decode(png).tobytes() == grid.tobytes()
    w, h = grid.size
    boxes = [(0, 0, w // 2, h // 2), (w // 2, 0, w, h // 2), (0, h // 2, w // 2, h), (w // 2, h // 2, w, h)]
    assert _split_pixels(png) == [(mode, (b[2] - b[0], b[3] - b[1]), grid.crop(b).tobytes()) for b in boxes]


def _palette_png() -> bytes:
    buf = io.BytesIO()
    _noisy_png("RGB", (40, 30), 3)[0].quantize(16).save(buf, "PNG")
    return buf.getvalue()


def _png(width: int, height: int, depth: int, interlace: int, rows: bytes) -> bytes:
    import struct
    import zlib

    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    ihdr = struct.pack(">IIBBBBB", width, height, depth, 2, 0, 0, interlace)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", zlib.compress(rows)) + chunk(b"IEND", b"")


def _rgb16_png() -> bytes:
    """A 16-bit RGB PNG (Pillow opens it as mode RGB: the bit depth must come from IHDR)."""
    w, h = 6, 4
    rows = b"".join(b"\x00" + bytes((x * 40 + y * 7 + c) % 256 for x in range(w) for c in range(6)) for y in range(h))
    return _png(w, h, 16, 0, rows)


def _adam7_png() -> bytes:
    """A 2x2 interlaced RGB PNG (Pillow writes none): Adam7's pass 1 has pixel (0, 0), pass 6
    (1, 0), pass 7 the second row."""
    a, b, c, d = b"\x10\x20\x30", b"\x40\x50\x60", b"\x70\x80\x90", b"\xa0\xb0\xc0"
    return _png(2, 2, 8, 1, b"\x00" + a + b"\x00" + b + b"\x00" + c + d)


@pytest.mark.parametrize(
    "make",
    [
        _adam7_png,
        lambda: _noisy_png("L", (40, 30), 2)[1],  # grey
        _palette_png,
        _rgb16_png,
    ],
    ids=["interlaced", "grey", "palette", "rgb16"],
)
def test_split_grid_other_pngs_take_pillows_path_with_the_same_pixels(make) -> None:  # type: ignore[no-untyped-def]
    from adapter.media.images import _normalized_mode, _NotPlain, _png_chunks

    png = make()
    with pytest.raises(_NotPlain):
        _png_chunks(png)
    img = _normalized_mode(decode(png))
    w, h = img.size
    boxes = [(0, 0, w // 2, h // 2), (w // 2, 0, w, h // 2), (0, h // 2, w // 2, h), (w // 2, h // 2, w, h)]
    assert [decode(t).convert(img.mode).tobytes() for t in split_grid(png)] == [img.crop(b).tobytes() for b in boxes]


@pytest.mark.parametrize("path", ["isal", "zlib"])
def test_split_grid_corrupt_png_is_an_image_error_on_both_paths(path: str, monkeypatch: pytest.MonkeyPatch) -> None:
    import zlib

    from adapter.media import images

    if path == "isal" and images._isal_zlib is None:
        pytest.skip("isal is not installed")
    if path == "zlib":
        monkeypatch.setattr(images, "_isal_zlib", None)
        monkeypatch.setattr(images, "_crc32", zlib.crc32)
    _, png = _noisy_png("RGB", (64, 64), seed=5)
    start = png.index(b"IDAT") + 4
    truncated = png[: start + 100]
    garbled = png[:start] + bytes(b ^ 0x5A for b in png[start : start + 200]) + png[start + 200 :]
    for bad in (truncated, garbled):
        with pytest.raises(ImageError):
            split_grid(bad)
