"""split_grid on the grid's own filtered rows (adapter/media/images.py, `_split_png_rows`): the
tiles reuse the grid's row filters, with the first pixel of the right tiles' rows and the bottom
tiles' top row rewritten. Whatever filter each row of the grid uses, the tiles decode to exactly
the grid's quadrants."""

from __future__ import annotations

import io
import itertools
import random
import struct
import zlib

import pytest
from PIL import Image

from adapter.media import images
from adapter.media.decoding import ImageError
from adapter.media.images import split_grid

pytestmark = pytest.mark.skipif(images._isal_zlib is None, reason="isal is not installed")


_paeth = images._paeth  # the PNG spec's predictor, as the decoder under test uses it


def _png_idat(data: bytes) -> tuple[int, int, int, bytes]:
    """The PNG's width, height, colour type and whole zlib stream (its IDAT chunks joined)."""
    width, height, colour, parts = images._png_chunks(data)
    return width, height, colour, b"".join(parts)


def _filter_row(kind: int, row: bytes, prior: bytes, bpp: int) -> bytes:
    out = bytearray(len(row))
    for i, x in enumerate(row):
        a = row[i - bpp] if i >= bpp else 0
        b = prior[i]
        c = prior[i - bpp] if i >= bpp else 0
        pred = (0, a, b, (a + b) >> 1, _paeth(a, b, c))[kind]
        out[i] = (x - pred) & 255
    return bytes([kind]) + bytes(out)


def _png_with_filters(img: Image.Image, kinds: list[int]) -> bytes:
    """A PNG of `img` whose row y uses filter type kinds[y] (no PNG writer lets one choose)."""
    w, h = img.size
    bpp = len(img.mode)
    raw = img.tobytes()
    stride = w * bpp
    prior = bytes(stride)
    rows = []
    for y in range(h):
        row = raw[y * stride : (y + 1) * stride]
        rows.append(_filter_row(kinds[y], row, prior, bpp))
        prior = row

    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    ihdr = struct.pack(">IIBBBBB", w, h, 8, {"RGB": 2, "RGBA": 6}[img.mode], 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", zlib.compress(b"".join(rows), 6)) + chunk(b"IEND", b"")


def _noise(mode: str, size: tuple[int, int], seed: int) -> Image.Image:
    rng = random.Random(seed)
    data = bytearray(rng.randbytes(size[0] * size[1] * len(mode)))
    for i in range(0, len(data), 5):  # some runs, so the filters' outputs differ from the noise
        data[i] = data[i - 1] if i else 0
    return Image.frombytes(mode, size, bytes(data))


def _decode(data: bytes) -> Image.Image:
    img = Image.open(io.BytesIO(data))
    img.load()
    return img


def _assert_tiles_are_quadrants(grid: Image.Image, png: bytes) -> None:
    w, h = grid.size
    boxes = [(0, 0, w // 2, h // 2), (w // 2, 0, w, h // 2), (0, h // 2, w // 2, h), (w // 2, h // 2, w, h)]
    tiles = split_grid(png)
    for tile, box in zip(tiles, boxes):
        img = _decode(tile)
        assert (img.format, img.mode, img.size) == ("PNG", grid.mode, (box[2] - box[0], box[3] - box[1]))
        assert img.tobytes() == grid.crop(box).tobytes(), box


@pytest.fixture(autouse=True)
def _no_refiltering(monkeypatch: pytest.MonkeyPatch) -> None:
    """These grids must take the filtered-rows path: no tile is filtered again."""

    def refuse(img: Image.Image) -> bytes:
        raise AssertionError("a tile was re-filtered: the grid's rows were not reused")

    monkeypatch.setattr(images, "encode_png_fast", refuse)


@pytest.mark.parametrize("mode", ["RGB", "RGBA"])
@pytest.mark.parametrize("kind", [0, 1, 2, 3, 4])
@pytest.mark.parametrize("size", [(2, 2), (3, 3), (17, 12), (40, 31)])
def test_every_row_one_filter_type(mode: str, kind: int, size: tuple[int, int]) -> None:
    grid = _noise(mode, size, seed=kind * 100 + size[0])
    _assert_tiles_are_quadrants(grid, _png_with_filters(grid, [kind] * size[1]))


@pytest.mark.parametrize("mode", ["RGB", "RGBA"])
@pytest.mark.parametrize("seed", range(6))
def test_rows_of_mixed_filter_types(mode: str, seed: int) -> None:
    rng = random.Random(seed)
    size = (rng.randrange(2, 50), rng.randrange(2, 50))
    grid = _noise(mode, size, seed)
    _assert_tiles_are_quadrants(grid, _png_with_filters(grid, [rng.randrange(5) for _ in range(size[1])]))


@pytest.mark.parametrize(
    "kinds",
    [
        # the cut row (y=10) looks up; the last row above it that does not is y=6 (Sub) or y=3 (None)
        [4] * 6 + [1] + [4, 3, 2, 4] + [4] * 9,
        [2] * 3 + [0] + [4] * 16,
        [4] * 10 + [1] + [4] * 9,  # the cut row itself does not look up
        [3] * 20,  # nothing above the cut row breaks the chain: un-filtered from the top
    ],
    ids=["sub-above", "none-above", "cut-row-sub", "from-top"],
)
def test_the_bottom_right_tiles_top_row_whatever_the_rows_above(kinds: list[int]) -> None:
    grid = _noise("RGB", (23, 20), seed=len(kinds) + kinds[0])
    _assert_tiles_are_quadrants(grid, _png_with_filters(grid, kinds))


def test_a_pillow_written_photo_like_grid() -> None:
    """Pillow's adaptive encoder (every filter type, several IDAT chunks)."""
    grid = _noise("RGB", (301, 257), seed=9)
    buf = io.BytesIO()
    grid.save(buf, "PNG")
    _assert_tiles_are_quadrants(grid, buf.getvalue())


def test_tiles_reuse_the_grids_rows() -> None:
    """The top-left tile's rows are the grid's, filter type bytes and all."""
    grid = _noise("RGB", (30, 20), seed=3)
    kinds = [i % 5 for i in range(20)]
    png = _png_with_filters(grid, kinds)
    top_left = split_grid(png)[0]
    _, _, _, stream = _png_idat(top_left)
    rows = zlib.decompress(stream)
    grid_rows = zlib.decompress(_png_idat(png)[3])
    assert rows == b"".join(grid_rows[y * 91 : y * 91 + 46] for y in range(10))


def test_an_unknown_filter_type_is_an_image_error() -> None:
    grid = _noise("RGB", (20, 20), seed=4)
    for y in (0, 5, 10, 19):
        kinds = [4] * 20
        png = _png_with_filters(grid, kinds)
        rows = bytearray(zlib.decompress(_png_idat(png)[3]))
        rows[y * 61] = 7
        bad = png.replace(
            png[png.index(b"IDAT") - 4 : png.index(b"IEND") - 4],
            struct.pack(">I", len(z := zlib.compress(bytes(rows)))) + b"IDAT" + z + struct.pack(">I", zlib.crc32(b"IDAT" + z)),
        )
        with pytest.raises(ImageError):
            split_grid(bad)


def test_tile_deflate_window_small_for_noise_full_where_far_repeats_pay() -> None:
    """Tiles are deflated with a small window (photo residuals: faster and smaller); data that
    compresses well (flat drawings, far repeats) also gets the full window, and the smaller wins.
    Either way the stream inflates to the very rows."""
    rng = random.Random(11)
    noisy = rng.randbytes(200_000)
    # mostly flat (compresses well with any window), and detail that repeats 3000 bytes back,
    # beyond a 512-byte window
    block = rng.randbytes(200) + bytes(2800)
    far_repeats = block * 60
    for rows in (noisy, far_repeats):
        stream = images._deflate_rows(rows)
        assert zlib.decompress(stream) == rows
    assert len(images._deflate_rows(far_repeats)) < len(images._isal_zlib.compress(far_repeats, 1, 9)) / 5
    assert images._deflate_rows(noisy) == images._isal_zlib.compress(noisy, 1, 9)


@pytest.mark.parametrize("strip_rows", [1, 2, 3, 64])
@pytest.mark.parametrize("height", [2, 7, 128, 130])
def test_the_left_half_unfiltered_in_strips(strip_rows: int, height: int, monkeypatch: pytest.MonkeyPatch) -> None:
    """The left half is un-filtered a strip of rows at a time: strips of any size, a cut row at
    the start, middle or end of a strip, every filter type across strip boundaries."""
    monkeypatch.setattr(images, "_STRIP_ROWS", strip_rows)
    rng = random.Random(height * 10 + strip_rows)
    grid = _noise("RGB", (21, height), seed=height + strip_rows)
    _assert_tiles_are_quadrants(grid, _png_with_filters(grid, [rng.randrange(5) for _ in range(height)]))


@pytest.mark.parametrize("strip_rows", [1, 3, 64])
@pytest.mark.parametrize(
    "kinds",
    [[4] * 3 + [0] + [4, 3, 2, 4, 3, 4] * 3 + [4] * 2 + [2] * 12, [1] + [2, 3, 4] * 10 + [4] * 3],
    ids=["none-far-above", "sub-at-the-top"],
)
def test_the_run_above_the_cut_row_across_strips(kinds: list[int], strip_rows: int, monkeypatch: pytest.MonkeyPatch) -> None:
    """The rows the bottom-right tile's top row is un-filtered from span several strips."""
    monkeypatch.setattr(images, "_STRIP_ROWS", strip_rows)
    grid = _noise("RGBA", (19, len(kinds)), seed=len(kinds))
    _assert_tiles_are_quadrants(grid, _png_with_filters(grid, kinds))


def _with_idat_chunks(png: bytes, sizes: list[int]) -> bytes:
    """The same PNG with its zlib stream cut into IDAT chunks of these sizes (the last repeated)."""
    stream = _png_idat(png)[3]
    chunks = []
    pos = 0
    for i in itertools.count():
        size = sizes[min(i, len(sizes) - 1)]
        if pos >= len(stream):
            break
        chunks.append(_chunk(b"IDAT", stream[pos : pos + size]))
        pos += size
    start = png.index(b"IDAT") - 4
    end = png.index(b"IEND") - 4
    return png[:start] + b"".join(chunks) + png[end:]


def _chunk(kind: bytes, data: bytes) -> bytes:
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))


@pytest.mark.parametrize("sizes", [[1], [2, 7, 100], [5000], [10**6]], ids=["1-byte", "mixed", "5000", "one"])
@pytest.mark.parametrize("inflate", [(16, 10), (7, 3), (1 << 16, 1 << 18)], ids=["tiny", "tinier", "default"])
def test_the_stream_inflated_a_piece_at_a_time(sizes: list[int], inflate: tuple[int, int], monkeypatch: pytest.MonkeyPatch) -> None:
    """Whatever the IDAT chunks' sizes and the pieces the stream is inflated in (rows cut
    anywhere, rows longer than a piece of output, a piece of input that gives nothing), the tiles
    are the quadrants."""
    monkeypatch.setattr(images, "_INFLATE_IN", inflate[0])
    monkeypatch.setattr(images, "_INFLATE_OUT", inflate[1])
    rng = random.Random(len(sizes))
    grid = _noise("RGB", (33, 26), seed=len(sizes) + inflate[1])
    png = _png_with_filters(grid, [rng.randrange(5) for _ in range(26)])
    _assert_tiles_are_quadrants(grid, _with_idat_chunks(png, sizes))


def test_a_flat_grid_inflated_in_small_pieces(monkeypatch: pytest.MonkeyPatch) -> None:
    """Long matches: output the inflater holds back once all the input is in."""
    monkeypatch.setattr(images, "_INFLATE_OUT", 100)
    grid = Image.new("RGB", (120, 90), (10, 200, 30))
    _assert_tiles_are_quadrants(grid, _png_with_filters(grid, [2] * 90))


def _with_stream(png: bytes, stream: bytes) -> bytes:
    start = png.index(b"IDAT") - 4
    end = png.index(b"IEND") - 4
    return png[:start] + _chunk(b"IDAT", stream) + png[end:]


def test_the_streams_end() -> None:
    """A stream cut short, or whose adler32 is wrong, is an ImageError; one cut right after the
    last row (no adler32) or with data after the image's rows is read as Pillow reads it."""
    grid = _noise("RGB", (20, 16), seed=12)
    png = _png_with_filters(grid, [4] * 16)
    rows = zlib.decompress(_png_idat(png)[3])
    stream = zlib.compress(rows)
    for bad in (stream[:-30], stream[:-4] + bytes(b ^ 1 for b in stream[-4:])):
        with pytest.raises(ImageError):
            split_grid(_with_stream(png, bad))
    no_adler = zlib.compressobj(wbits=15)
    cut = no_adler.compress(rows) + no_adler.flush(zlib.Z_SYNC_FLUSH)
    _assert_tiles_are_quadrants(grid, _with_stream(png, cut))
    _assert_tiles_are_quadrants(grid, _with_stream(png, zlib.compress(rows + bytes(500))))


def test_minus_is_bytewise_modulo_256() -> None:
    rng = random.Random(5)
    for size in (1, 3, 4, 192, 256):
        a, b = rng.randbytes(size), rng.randbytes(size)
        assert images._minus(a, b) == bytes((x - y) & 255 for x, y in zip(a, b))
    edges = bytes([0, 255, 128, 127, 0, 1])
    assert images._minus(edges, edges[::-1]) == bytes((x - y) & 255 for x, y in zip(edges, edges[::-1]))


def test_the_full_window_is_tried_for_tiles_that_compress_well_all_along() -> None:
    """Strip by strip: a tile whose rows compress to under a quarter from its start gets the full
    window tried too (far repeats pay); once the rows so far compress worse (photo residuals),
    nothing is kept for a second try and the small window's stream is the tile's."""
    rng = random.Random(11)
    far_repeats = (rng.randbytes(200) + bytes(2800)) * 60

    def deflate_in_strips(data: bytes) -> tuple[bytes, images._TileDeflate]:
        tile = images._TileDeflate()
        for i in range(0, len(data), 20_000):
            tile.feed(data[i : i + 20_000])
        stream = b"".join(tile.finish())
        assert zlib.decompress(stream) == data
        return stream, tile

    stream, tile = deflate_in_strips(far_repeats)
    assert len(stream) < len(images._isal_zlib.compress(far_repeats, 1, 9)) / 5
    noisy = rng.randbytes(400_000)  # more than ISA-L holds back before its first output
    stream, tile = deflate_in_strips(noisy + far_repeats)
    assert tile._kept is None


@pytest.mark.parametrize("size", [(1500, 70), (44_000, 4)], ids=["rows-across-stored-blocks", "rows-longer-than-a-block"])
def test_strips_longer_than_a_stored_block(size: tuple[int, int]) -> None:
    """The rows handed to Pillow's un-filtering go in stored blocks of at most 65,535 bytes: a
    row may start in one block and end in the next, or span several."""
    grid = _noise("RGB", size, seed=size[1])
    buf = io.BytesIO()
    grid.save(buf, "PNG", compress_level=1)
    _assert_tiles_are_quadrants(grid, buf.getvalue())


def test_empty_idat_chunks_are_skipped() -> None:
    grid = _noise("RGB", (30, 22), seed=21)
    png = _with_idat_chunks(_png_with_filters(grid, [4] * 22), [50])
    first = png.index(b"IDAT") - 4
    empty = _chunk(b"IDAT", b"")
    _assert_tiles_are_quadrants(grid, png[:first] + empty + png[first:])
    middle = png.index(b"IDAT", first + 60) - 4
    _assert_tiles_are_quadrants(grid, png[:middle] + empty + empty + png[middle:])
