"""Pixel work on result images: split Midjourney's 2x2 grid, convert to the caller's
`output_format`, make small previews for streamed partial images.

Everything here is synchronous CPU work; callers on the event loop use the `*_async` twins (or
`run_image_op`), which run it in a worker thread.
"""

from __future__ import annotations

import asyncio
import io
import itertools
import struct
import zlib
from collections.abc import Callable, Iterator
from typing import TYPE_CHECKING, Literal, ParamSpec, TypeVar

from PIL import Image, ImageChops

from adapter.media.decoding import DEFAULT_MAX_PIXELS, ImageError, load_image, open_image

if TYPE_CHECKING:
    from isal.isal_zlib import Decompress

try:  # Intel ISA-L's deflate/inflate, a zlib-compatible API at 2-3x zlib's speed (PyPI: isal)
    from isal import isal_zlib as _isal_zlib
except ImportError:  # pragma: no cover - isal is a dependency; stdlib zlib is the fallback
    _isal_zlib = None

OutputFormat = Literal["png", "jpeg", "webp"]

_PIL_FORMAT: dict[str, str] = {"png": "PNG", "jpeg": "JPEG", "jpg": "JPEG", "webp": "WEBP"}
_MIME: dict[str, str] = {"png": "image/png", "jpeg": "image/jpeg", "webp": "image/webp"}
# What a JPEG flattens transparency onto: white, like every image viewer shows it.
_MATTE = (255, 255, 255)
_DEFAULT_QUALITY = 95
_PREVIEW_QUALITY = 80

P = ParamSpec("P")
R = TypeVar("R")


def content_type_of(fmt: str) -> str:
    return _MIME.get(normalize_format(fmt), "application/octet-stream")


def normalize_format(fmt: str) -> OutputFormat:
    f = fmt.lower().strip()
    if f == "jpg":
        f = "jpeg"
    if f not in _MIME:
        raise ValueError(f"unsupported output format {fmt!r} (png, jpeg or webp)")
    return f  # type: ignore[return-value]


def _normalized_mode(img: Image.Image) -> Image.Image:
    """RGB or RGBA (Midjourney grids are RGB; palette/LA/CMYK inputs get converted)."""
    if img.mode in ("RGB", "RGBA"):
        return img
    has_alpha = img.mode in ("LA", "PA", "RGBa", "La") or (
        img.mode == "P" and "transparency" in img.info
    )
    return img.convert("RGBA" if has_alpha else "RGB")


def _flatten(img: Image.Image) -> Image.Image:
    if img.mode != "RGBA":
        return img.convert("RGB") if img.mode != "RGB" else img
    background = Image.new("RGB", img.size, _MATTE)
    background.paste(img, mask=img.getchannel("A"))
    return background


def _encode(img: Image.Image, fmt: OutputFormat, quality: int | None, *, png_level: int = 6) -> bytes:
    out = io.BytesIO()
    if fmt == "png":
        # lossless: `compression` has no meaning; level 6 is zlib's size/speed middle ground
        img.save(out, "PNG", compress_level=png_level)
    elif fmt == "jpeg":
        _flatten(img).save(out, "JPEG", quality=quality or _DEFAULT_QUALITY, optimize=True)
    else:
        img.save(out, "WEBP", quality=quality or _DEFAULT_QUALITY, method=4)
    return out.getvalue()


def _quality(compression: int | None) -> int | None:
    # OpenAI's output_compression (0-100, default 100) behaves as a quality percentage: 100 is
    # the best-looking, biggest file. Pillow's quality 0 is legal but useless, so floor at 1.
    if compression is None:
        return None
    if not 0 <= compression <= 100:
        raise ValueError("compression must be between 0 and 100")
    return max(1, compression)


def image_size(data: bytes) -> tuple[int, int]:
    """(width, height) from the header alone."""
    return open_image(data).size


def image_format(data: bytes) -> str:
    """"png" | "jpeg" | "webp" | "gif", from the bytes."""
    return (open_image(data).format or "").lower()


def split_grid(data: bytes, *, max_pixels: int = DEFAULT_MAX_PIXELS) -> list[bytes]:
    """A 2x2 grid -> 4 PNGs in Midjourney's numbering: 1 top-left, 2 top-right, 3 bottom-left,
    4 bottom-right. Odd sizes split at the integer half; the right/bottom tiles take the extra
    row/column so no pixel is lost."""
    if _isal_zlib is not None and data[:8] == _PNG_SIGNATURE:
        open_image(data, max_pixels=max_pixels)  # Pillow's checks of the header, the pixel budget
        try:
            # a plain 8-bit RGB/RGBA PNG (Midjourney's grids): tiles cut from its filtered rows
            return _split_png_rows(data)
        except _NotPlain:
            pass
    # anything else: decoded, and each tile encoded anew
    img = _normalized_mode(load_image(data, max_pixels=max_pixels))
    width, height = img.size
    if width < 2 or height < 2:
        raise ImageError("not_image", "the grid is too small to split")
    mid_x, mid_y = width // 2, height // 2
    boxes = [
        (0, 0, mid_x, mid_y),
        (mid_x, 0, width, mid_y),
        (0, mid_y, mid_x, height),
        (mid_x, mid_y, width, height),
    ]
    # Tiles are made on every job's critical path: see encode_png_fast.
    return [encode_png_fast(img.crop(box)) for box in boxes]


# -- a cheap lossless PNG encoder for result tiles ----------------------------------------------------
#
# Pillow's PNG encoder tries all five PNG filters on every row and keeps the one whose output sums
# smallest; on a 1024x1024 photo tile that choice costs more than the compression itself (~110 ms
# of CPU per tile at compress_level=1, ~600 ms for a 2048x2048 grid with its decode). Photographs
# compress about as well with one filter for every row: the Average filter (each byte minus the
# mean of its left and upper neighbours), computed for the whole tile at once with Pillow's own
# channel arithmetic, then a fast deflate: ISA-L's level 1 (~10 ms for a 1024x1024 photo tile,
# ~1.74 MB) where isal is installed, else zlib's Huffman-only (~29 ms, ~1.67 MB; photo residuals
# have few repeats for LZ77 to find). Either way the PNG decodes to the very same pixels (PNG is
# lossless whatever the filter and the deflate settings).

_PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
_PNG_COLOUR_TYPE = {"RGB": 2, "RGBA": 6}
_PNG_MODE = {2: "RGB", 6: "RGBA"}
_AVERAGE = b"\x03"  # the PNG filter type byte in front of every row
_IDAT_BYTES = 1 << 20
# ISA-L's levels run 0-3; 1 is the fastest with dynamic Huffman codes, and on photo residuals the
# smallest too (2 and 3 are slower and no smaller); 0 uses static codes (~60% bigger files).
_ISAL_TILE_LEVEL = 1
# A 512-byte window: in photo residuals the far matches a 32 KB window finds cost more bits than
# they save, so the small window is both faster and smaller (a 1024x1024 photo tile: ~7.4 ms and
# 1.68 MB instead of ~9.1 ms and 1.75 MB). Flat drawings lose by it (+40%), but they compress
# far better and cheaply: where the small window's output is under a quarter of the rows, the
# full window is tried too and the smaller kept (rows deflated a strip at a time: under a
# quarter all along, see _TileDeflate).
_ISAL_TILE_WBITS = 9
_ISAL_WIDE_WBITS = 15
_crc32 = _isal_zlib.crc32 if _isal_zlib is not None else zlib.crc32


def _chunk(kind: bytes, data: bytes | memoryview) -> list[bytes | memoryview]:
    """A PNG chunk, as parts to join (no copy of the data here)."""
    return [struct.pack(">I", len(data)) + kind, data, struct.pack(">I", _crc32(data, _crc32(kind)))]


def _deflate_rows(rows: bytes) -> bytes:
    if _isal_zlib is not None:
        deflate = _TileDeflate()
        deflate.feed(rows)
        return b"".join(deflate.finish())
    compressor = zlib.compressobj(1, zlib.DEFLATED, 15, 9, zlib.Z_HUFFMAN_ONLY)
    return compressor.compress(rows) + compressor.flush()


def encode_png_fast(img: Image.Image) -> bytes:
    """A lossless PNG of an RGB or RGBA image (8 bits per channel), Average-filtered rows and a
    fast deflate: the same pixels as any other PNG encoding, for a fraction of the CPU of
    Pillow's adaptive encoder. Other modes go through Pillow."""
    colour_type = _PNG_COLOUR_TYPE.get(img.mode)
    width, height = img.size
    if colour_type is None or width < 1 or height < 1:
        return _encode(img, "png", None, png_level=1)
    # Average: raw(x) - floor((left + up) / 2), with the neighbours outside the image taken as 0
    # (a crop beyond the edges is filled with zeros). ImageChops.add computes
    # int((a + b) / scale), which is the floor for these non-negative values.
    left = img.crop((-1, 0, width - 1, height))
    up = img.crop((0, -1, width, height - 1))
    residual = ImageChops.subtract_modulo(img, ImageChops.add(left, up, scale=2)).tobytes()
    stride = len(residual) // height
    rows = b"".join([_AVERAGE + residual[i : i + stride] for i in range(0, len(residual), stride)])
    return _png_file(width, height, colour_type, _deflate_rows(rows))


def _png_file(width: int, height: int, colour_type: int, stream: bytes | list[bytes]) -> bytes:
    """A PNG of already filtered rows (each a filter type byte and the row's filtered bytes),
    given as their zlib stream, whole or in parts (one IDAT chunk each)."""
    idat: list[bytes] | list[memoryview]
    if isinstance(stream, list):
        idat = stream
    else:
        view = memoryview(stream)
        idat = [view[i : i + _IDAT_BYTES] for i in range(0, len(view), _IDAT_BYTES)]
    header = struct.pack(">IIBBBBB", width, height, 8, colour_type, 0, 0, 0)
    parts = [_PNG_SIGNATURE, *_chunk(b"IHDR", header)]
    for data in idat:
        parts += _chunk(b"IDAT", data)
    parts += _chunk(b"IEND", b"")
    return b"".join(parts)


class _TileDeflate:
    """_deflate_rows of a tile's rows handed over a strip at a time, as the parts of its zlib
    stream. The full window is only worth trying for rows that compress to under a quarter, and
    then all along: a strip is kept for that second try only while the tile so far does."""

    def __init__(self) -> None:
        assert _isal_zlib is not None
        self._deflater = _isal_zlib.compressobj(_ISAL_TILE_LEVEL, _isal_zlib.DEFLATED, _ISAL_TILE_WBITS)
        self._parts: list[bytes] = []
        self._size_in = 0
        self._size_out = 0
        self._kept: list[bytes] | None = []

    def feed(self, rows: bytes) -> None:
        part = self._deflater.compress(rows)
        if part:
            self._parts.append(part)
        self._size_in += len(rows)
        self._size_out += len(part)
        if self._kept is not None:
            self._kept.append(rows)
            if self._size_out * 4 >= self._size_in:
                self._kept = None

    def finish(self) -> list[bytes]:
        assert _isal_zlib is not None
        self._parts.append(self._deflater.flush())
        self._size_out += len(self._parts[-1])
        if self._kept is not None and self._size_out * 4 < self._size_in:
            wide = _isal_zlib.compressobj(_ISAL_TILE_LEVEL, _isal_zlib.DEFLATED, _ISAL_WIDE_WBITS)
            stream = [wide.compress(rows) for rows in self._kept]
            stream.append(wide.flush())
            if sum(map(len, stream)) < self._size_out:
                return [part for part in stream if part]
        return [part for part in self._parts if part]


# -- a faster decode of the grid -----------------------------------------------------------------------
#
# Pillow decodes a PNG by inflating it (its bundled zlib-ng, fed a row at a time: ~80 ms for a
# 2048x2048 photo grid) and undoing the row filters (~90 ms, nearly all of it the Paeth filter,
# which photo PNGs use on most rows). The filters can only be undone by Pillow's C loop, but the
# inflate need not be: ISA-L inflates the same stream in ~38 ms, and Pillow's decoder is then handed
# the filtered rows in "stored" deflate blocks (no compression), which it copies at memory speed.
# Only the plain case takes this path (8-bit RGB or RGBA, not interlaced, no critical chunk but
# IHDR, IDAT and IEND, not animated); anything else, or without isal, is Pillow's whole decode.

_STORED_BLOCK = 0xFFFF


class _NotPlain(Exception):
    """Not a PNG the fast path handles: decode it with Pillow."""


def _png_chunks(data: bytes) -> tuple[int, int, int, list[memoryview]]:
    """(width, height, colour type, the IDAT chunks' data: their zlib stream in parts), or
    _NotPlain."""
    view = memoryview(data)
    if len(data) < 33 or data[12:16] != b"IHDR":
        raise _NotPlain
    width, height, depth, colour, compression, filtering, interlace = struct.unpack(">IIBBBBB", data[16:29])
    if depth != 8 or colour not in _PNG_MODE or compression or filtering or interlace:
        raise _NotPlain
    parts: list[memoryview] = []
    pos = 33
    while True:
        if pos + 8 > len(data):
            raise _NotPlain  # truncated: Pillow says how
        (length,) = struct.unpack(">I", data[pos : pos + 4])
        kind = data[pos + 4 : pos + 8]
        end = pos + 8 + length
        if end + 4 > len(data):
            raise _NotPlain
        if kind == b"IDAT":
            parts.append(view[pos + 8 : end])
        elif kind == b"IEND":
            break
        elif kind == b"acTL" or not kind[:1].islower():
            raise _NotPlain  # animated, or a critical chunk (PLTE): Pillow's business
        pos = end + 4
    if not parts:
        raise _NotPlain
    return width, height, colour, parts


# The grid's zlib stream is inflated a piece at a time: never into one buffer of the size of the
# image (fresh memory of a few MB per grid costs its page faults, as much CPU as a copy; pieces of
# this size are reused by the allocator from one to the next), and never more than the image's
# size, however much the stream would inflate to.
_INFLATE_IN = 1 << 16
_INFLATE_OUT = 1 << 18


def _inflated_rows(stream: list[memoryview], stride: int, height: int) -> Iterator[bytes | memoryview]:
    """The filtered rows (`stride` bytes each) of a zlib stream given in parts, inflated with
    ISA-L as they are asked for; ImageError if it is corrupt or ends too soon. The stream's end
    (its adler32) is checked before the last row is given."""
    assert _isal_zlib is not None
    inflater = _isal_zlib.decompressobj()
    pieces = (part[i : i + _INFLATE_IN] for part in stream for i in range(0, len(part), _INFLATE_IN))
    data: bytes | memoryview = b""
    left = stride * height
    carry = b""  # the start of a row whose end is in the next piece of output
    read_all = False
    while left:
        if not data and not read_all:
            data = next(pieces, b"")
            read_all = not data
        try:
            # (with no input left, what the inflater still holds back: the rest of a long match)
            out = inflater.decompress(data, min(left, _INFLATE_OUT))
            data = inflater.unconsumed_tail
            left -= len(out)
            if not left:
                _inflate_end(inflater, data, pieces)
        except _isal_zlib.error:
            raise ImageError("not_image", "the image data is corrupt or truncated") from None
        if left and (inflater.eof or (read_all and not out)):
            raise ImageError("not_image", "the image data is corrupt or truncated")  # ends too soon
        view = memoryview(out)
        pos = 0
        if carry:
            pos = min(stride - len(carry), len(out))
            carry += view[:pos]
            if len(carry) < stride:
                continue
            yield carry
        end = pos + (len(out) - pos) // stride * stride
        for start in range(pos, end, stride):
            yield view[start : start + stride]
        carry = bytes(view[end:])


def _inflate_end(inflater: Decompress, data: bytes | memoryview, pieces: Iterator[memoryview]) -> None:
    """Inflate what follows the image's last row: up to the stream's end, whose adler32 is then
    checked (isal_zlib.error if wrong), or to the first byte more than the image (ignored, as
    Pillow does; so is a stream cut right after the last row)."""
    while not inflater.eof:
        if not data:
            data = next(pieces, b"")
        if inflater.decompress(data, 1) or not data:
            return
        data = inflater.unconsumed_tail


def _unfilter(mode: str, size: tuple[int, int], rows: list[bytes | memoryview]) -> Image.Image:
    """Pillow's un-filtering of PNG rows (each a filter type byte and its filtered bytes, given
    in pieces read in order) into an image."""
    # the rows as a zlib stream of stored blocks, for Pillow's un-filtering decoder; no adler32
    # at its end: the rows were checked by ISA-L's inflate (or made here), and Pillow's decoder
    # stops at the image's last row, before the stream's end
    parts: list[bytes | memoryview] = [b"\x78\x01"]
    block: list[bytes | memoryview] = []
    room = _STORED_BLOCK
    for row in rows:
        while len(row) > room:
            block.append(row[:room])
            parts += (struct.pack("<BHH", 0, _STORED_BLOCK, 0), *block)
            block.clear()
            row = row[room:]
            room = _STORED_BLOCK
        block.append(row)
        room -= len(row)
    filled = _STORED_BLOCK - room
    parts += (struct.pack("<BHH", 1, filled, filled ^ 0xFFFF), *block)
    try:
        return Image.frombytes(mode, size, b"".join(parts), "zip", mode)
    except (OSError, ValueError):  # e.g. a row whose filter type is not 0-4
        raise ImageError("not_image", "the image data is corrupt or truncated") from None


# -- the split on the grid's own filtered rows -------------------------------------------------------
#
# A tile's rows are slices of the grid's rows, and PNG's row filters only look left and up, so the
# grid's filtered bytes, filter types and all, are already the tile's, except where a filter looks
# across the cut. So the tiles are made from the inflated (still filtered) rows, with no filtering
# of our own and no un-filtering of most of the grid:
#
# - top-left: the grid's rows as they are, cut at the middle column.
# - top-right and bottom-right: the same, except each row's first pixel, whose left (and
#   upper-left) neighbour is across the cut; it is re-filtered against the tile's edge (zeros),
#   for which its raw value is needed, and the raw pixel above it.
# - the bottom tiles' top row looks up across the cut: it is written raw (filter type None).
#
# What is un-filtered (by Pillow's C loop, as stored deflate blocks): the left half of the grid
# and one pixel more (every row's first mid_x + 1 pixels are a valid PNG row of an image that
# wide; its last column is the right half's first one, raw; its middle row's left half is the
# bottom-left tile's top row), and the few rows of the right half above the middle one back to
# the last row that does not look up (the middle row of the right half, the bottom-right tile's
# top row). About half of the grid's un-filtering instead of all of it, and none of the tiles'
# filtering.
#
# The grid is gone through once, a strip of rows at a time: inflated, un-filtered, and each
# strip's rows handed to their tiles' deflates, so no buffer of the size of the grid or of a
# tile's rows is made (the page faults of a few fresh MB cost as much CPU as copying them).
#
# (raw = filtered + predictor(left, up, upper-left), bytewise modulo 256; filter types: 0 None,
# 1 Sub, 2 Up, 3 Average, 4 Paeth.)

_STRIP_ROWS = 64
_FILTER_TYPE = [bytes((kind,)) for kind in range(5)]
_HALF = bytes(b >> 1 for b in range(256))


def _paeth(a: int, b: int, c: int) -> int:
    p = a + b - c
    pa, pb, pc = abs(p - a), abs(p - b), abs(p - c)
    if pa <= pb and pa <= pc:
        return a
    return b if pb <= pc else c


def _minus(a: bytes, b: bytes) -> bytes:
    """a - b, bytewise modulo 256 (of a few hundred bytes: as one integer each, SIMD within a
    register: setting every byte's top bit of a and clearing b's keeps a byte's borrow from
    reaching the next, and the top bits are then put right)."""
    top = int.from_bytes(b"\x80" * len(a), "little")
    x, y = int.from_bytes(a, "little"), int.from_bytes(b, "little")
    return (((x | top) - (y & ~top)) ^ ((x ^ ~y) & top)).to_bytes(len(a), "little")


class _GridSplit:
    """The four tiles' rows and deflates, fed the grid's filtered rows a strip at a time, top to
    bottom, the middle row first of its strip."""

    def __init__(self, mode: str, width: int, height: int) -> None:
        self.mode = mode
        self.bpp = len(mode)
        self.mid_x, self.mid_y = width // 2, height // 2
        self.right_width = width - self.mid_x
        self.at = 1 + self.mid_x * self.bpp  # where a row's right half starts (after its filter type byte)
        self.tiles = [_TileDeflate() for _ in range(4)]
        # each strip is un-filtered on its own, after the raw row above it (its first mid_x + 1
        # pixels, as a row of filter type None) for the strip's first row to look up at
        self.above: list[bytes] = []
        self.up = bytes(self.bpp)  # the raw first pixel of the right half in the row above (the grid's first row has none)
        # the right tiles' rows from the last one at or above the middle row that does not look up
        self.run: list[bytes | memoryview] = []

    def strip(self, rows: list[bytes | memoryview], y: int) -> None:
        """Rows y, y + 1, ... of the grid, filtered."""
        bpp, at, mid_x = self.bpp, self.at, self.mid_x
        cut = at + bpp
        skip = len(self.above) // 2
        image = _unfilter(self.mode, (mid_x + 1, skip + len(rows)), [*self.above, *(row[:cut] for row in rows)])
        last = skip + len(rows) - 1
        self.above = [b"\x00", image.crop((0, last, mid_x + 1, last + 1)).tobytes()]
        # the right half's first pixels, raw, and each re-filtered against the tile's edge: Sub
        # stores the pixel as it is (no left neighbour), Up is unchanged, Average and Paeth
        # subtract the half and the whole of the pixel above (Paeth(0, up, 0) is up)
        raw = image.crop((mid_x, skip, mid_x + 1, skip + len(rows))).tobytes()
        ups = self.up + raw[:-bpp]
        average, paeth = _minus(raw, ups.translate(_HALF)), _minus(raw, ups)
        self.up = raw[-bpp:]
        left: list[bytes | memoryview] = []
        right: list[bytes | memoryview] = []
        for i, row in enumerate(rows):
            kind = row[0]
            if kind == 0 or kind == 2:
                first: bytes | memoryview = row[:1]
                rest = row[at:]
            elif kind == 1:
                first = _FILTER_TYPE[1] + raw[i * bpp : i * bpp + bpp]
                rest = row[cut:]
            elif kind == 3:
                first = _FILTER_TYPE[3] + average[i * bpp : i * bpp + bpp]
                rest = row[cut:]
            elif kind == 4:
                first = _FILTER_TYPE[4] + paeth[i * bpp : i * bpp + bpp]
                rest = row[cut:]
            else:
                raise ImageError("not_image", "the image data is corrupt or truncated")
            left.append(row[:at])
            right += (first, rest)
            if y + i <= self.mid_y:
                if kind < 2:
                    self.run.clear()
                self.run += (first, rest)
        if y == self.mid_y:
            # the bottom tiles' top row, raw: the left half's from the strip's image, the right
            # half's un-filtered from the run of rows above it that look up
            left[0] = b"\x00" + image.crop((0, skip, mid_x, skip + 1)).tobytes()
            run_height = len(self.run) // 2
            right_half = _unfilter(self.mode, (self.right_width, run_height), self.run)
            right[:2] = (b"\x00", right_half.crop((0, run_height - 1, self.right_width, run_height)).tobytes())
            self.run = []
        tile = 0 if y < self.mid_y else 2
        self.tiles[tile].feed(b"".join(left))
        self.tiles[tile + 1].feed(b"".join(right))


def _split_png_rows(data: bytes) -> list[bytes]:
    """split_grid of a plain 8-bit RGB/RGBA PNG on its filtered rows (above), or _NotPlain."""
    width, height, colour, stream = _png_chunks(data)
    if width < 2 or height < 2:
        raise _NotPlain  # Pillow's path says what is wrong with it
    mode = _PNG_MODE[colour]
    split = _GridSplit(mode, width, height)
    rows = _inflated_rows(stream, 1 + width * len(mode), height)
    # strips of the top half, then of the bottom half: the middle row starts a strip
    for start, end in ((0, split.mid_y), (split.mid_y, height)):
        for y in range(start, end, _STRIP_ROWS):
            split.strip(list(itertools.islice(rows, min(_STRIP_ROWS, end - y))), y)
    mid_x, mid_y = split.mid_x, split.mid_y
    sizes = [(mid_x, mid_y), (width - mid_x, mid_y), (mid_x, height - mid_y), (width - mid_x, height - mid_y)]
    return [_png_file(w, h, colour, tile.finish()) for (w, h), tile in zip(sizes, split.tiles)]


def convert(
    data: bytes,
    fmt: OutputFormat | str,
    compression: int | None = None,
    *,
    max_pixels: int = DEFAULT_MAX_PIXELS,
) -> bytes:
    """Re-encode as png/jpeg/webp. `compression` is OpenAI's output_compression (0-100, a quality
    percentage for jpeg/webp, ignored for png). Already in the asked format with no compression
    asked -> the same bytes back, untouched."""
    target = normalize_format(fmt)
    quality = _quality(compression)
    if quality is None and image_format(data) == target:
        return data
    img = _normalized_mode(load_image(data, max_pixels=max_pixels))
    return _encode(img, target, quality)


def preview(
    data: bytes,
    max_side: int = 512,
    fmt: OutputFormat | str = "jpeg",
    *,
    quality: int = _PREVIEW_QUALITY,
    max_pixels: int = DEFAULT_MAX_PIXELS,
) -> bytes:
    """A downscaled copy (longest side <= max_side, aspect kept, never enlarged) for streaming
    partial images, where size matters more than fidelity."""
    if max_side < 1:
        raise ValueError("max_side must be positive")
    target = normalize_format(fmt)
    img = open_image(data, max_pixels=max_pixels)
    if (img.format or "").lower() == target and max(img.size) <= max_side:
        # already a small image of the wanted format (Midjourney's previews are): keep its bytes
        return data
    # JPEG draft mode decodes at a reduced scale directly: much less work for a thumbnail
    img.draft("RGB", (max_side, max_side))
    img = _normalized_mode(_load_opened(img))
    img.thumbnail((max_side, max_side), Image.Resampling.LANCZOS)
    return _encode(img, target, None if target == "png" else quality)


def _load_opened(img: Image.Image) -> Image.Image:
    try:
        img.load()
    except (OSError, ValueError, SyntaxError, EOFError):
        raise ImageError("not_image", "the image data is corrupt or truncated") from None
    return img


# -- async twins -----------------------------------------------------------------------------------


async def run_image_op(fn: Callable[P, R], /, *args: P.args, **kwargs: P.kwargs) -> R:
    """Run any of the functions above in a worker thread."""
    return await asyncio.to_thread(fn, *args, **kwargs)


async def split_grid_async(data: bytes) -> list[bytes]:
    return await asyncio.to_thread(split_grid, data)


async def convert_async(data: bytes, fmt: OutputFormat | str, compression: int | None = None) -> bytes:
    return await asyncio.to_thread(convert, data, fmt, compression)


async def preview_async(data: bytes, max_side: int = 512, fmt: OutputFormat | str = "jpeg") -> bytes:
    return await asyncio.to_thread(preview, data, max_side, fmt)


async def image_size_async(data: bytes) -> tuple[int, int]:
    return await asyncio.to_thread(image_size, data)
