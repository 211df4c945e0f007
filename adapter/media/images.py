"""Pixel work on result images: split Midjourney's 2x2 grid, convert to the caller's
`output_format`, make small previews for streamed partial images.

Everything here is synchronous CPU work; callers on the event loop use the `*_async` twins (or
`run_image_op`), which run it in a worker thread.
"""

from __future__ import annotations

import asyncio
import io
import struct
import zlib
from collections.abc import Callable
from typing import Literal, ParamSpec, TypeVar

from PIL import Image, ImageChops

from adapter.media.decoding import DEFAULT_MAX_PIXELS, ImageError, load_image, open_image

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
    img = _normalized_mode(_load_grid(data, max_pixels))
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
# full window is tried too and the smaller kept.
_ISAL_TILE_WBITS = 9
_ISAL_WIDE_WBITS = 15
_crc32 = _isal_zlib.crc32 if _isal_zlib is not None else zlib.crc32


def _chunk(kind: bytes, data: bytes | memoryview) -> list[bytes | memoryview]:
    """A PNG chunk, as parts to join (no copy of the data here)."""
    return [struct.pack(">I", len(data)) + kind, data, struct.pack(">I", _crc32(data, _crc32(kind)))]


def _deflate_rows(rows: bytes | memoryview) -> bytes:
    if _isal_zlib is not None:
        stream = _isal_zlib.compress(rows, _ISAL_TILE_LEVEL, _ISAL_TILE_WBITS)
        if len(stream) * 4 < len(rows):
            wide = _isal_zlib.compress(rows, _ISAL_TILE_LEVEL, _ISAL_WIDE_WBITS)
            if len(wide) < len(stream):
                return wide
        return stream
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
    return _png_file(width, height, colour_type, rows)


def _png_file(width: int, height: int, colour_type: int, rows: bytes | memoryview | list[bytes | memoryview]) -> bytes:
    """A PNG of already filtered rows (each a filter type byte and the row's filtered bytes),
    given whole or as pieces to be read in order (deflated as they come, never joined)."""
    if isinstance(rows, list):
        idat = _deflate_pieces(rows)
    else:
        stream = memoryview(_deflate_rows(rows))
        idat = [stream[i : i + _IDAT_BYTES] for i in range(0, len(stream), _IDAT_BYTES)]
    header = struct.pack(">IIBBBBB", width, height, 8, colour_type, 0, 0, 0)
    parts = [_PNG_SIGNATURE, *_chunk(b"IHDR", header)]
    for data in idat:
        parts += _chunk(b"IDAT", data)
    parts += _chunk(b"IEND", b"")
    return b"".join(parts)


# Pieces are deflated in groups of about this many bytes: a tile's rows are never put together in
# one buffer (a few MB of fresh memory per tile, whose page faults cost as much as the copying).
_DEFLATE_GROUP = 1 << 17


def _deflate_pieces(pieces: list[bytes | memoryview]) -> list[bytes]:
    """_deflate_rows of the pieces' concatenation, as the parts of its zlib stream (one IDAT
    chunk each)."""
    if _isal_zlib is None:
        return [_deflate_rows(b"".join(pieces))]
    total = sum(map(len, pieces))
    stream = _deflate_stream(pieces, _ISAL_TILE_WBITS)
    if sum(map(len, stream)) * 4 < total:
        wide = _deflate_stream(pieces, _ISAL_WIDE_WBITS)
        if sum(map(len, wide)) < sum(map(len, stream)):
            return wide
    return stream


def _deflate_stream(pieces: list[bytes | memoryview], wbits: int) -> list[bytes]:
    assert _isal_zlib is not None
    deflater = _isal_zlib.compressobj(_ISAL_TILE_LEVEL, _isal_zlib.DEFLATED, wbits)
    out: list[bytes] = []
    group: list[bytes | memoryview] = []
    size = 0
    for piece in pieces:
        group.append(piece)
        size += len(piece)
        if size >= _DEFLATE_GROUP:
            out.append(deflater.compress(group[0] if len(group) == 1 else b"".join(group)))
            group.clear()
            size = 0
    if group:
        out.append(deflater.compress(b"".join(group)))
    out.append(deflater.flush())
    return [part for part in out if part]


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


def _load_grid(data: bytes, max_pixels: int) -> Image.Image:
    """load_image, with the fast path above for plain 8-bit RGB/RGBA PNGs."""
    if _isal_zlib is not None and data[:8] == _PNG_SIGNATURE:
        open_image(data, max_pixels=max_pixels)  # Pillow's checks of the header, the pixel budget
        try:
            return _decode_png_fast(data)
        except _NotPlain:
            pass
    return load_image(data, max_pixels=max_pixels)


def _png_idat(data: bytes) -> tuple[int, int, int, bytes]:
    """(width, height, colour type, the zlib stream of the IDAT chunks), or _NotPlain."""
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
    return width, height, colour, b"".join(parts)


def _decode_png_fast(data: bytes) -> Image.Image:
    width, height, colour, stream = _png_idat(data)
    mode = _PNG_MODE[colour]
    return _unfilter(mode, (width, height), _inflate_rows(stream, height * (1 + width * len(mode))))


def _inflate_rows(stream: bytes, expected: int) -> bytes:
    """The filtered rows of an IDAT zlib stream (exactly `expected` bytes), with ISA-L."""
    assert _isal_zlib is not None
    try:
        inflater = _isal_zlib.decompressobj()
        # never more than the image's size, however much the stream would inflate to
        raw = inflater.decompress(stream, expected)
        if not inflater.eof:
            inflater.decompress(inflater.unconsumed_tail, 1)  # checks the stream's adler32
    except _isal_zlib.error:
        raise ImageError("not_image", "the image data is corrupt or truncated") from None
    if len(raw) != expected:
        raise ImageError("not_image", "the image data is corrupt or truncated")
    return raw


def _unfilter(mode: str, size: tuple[int, int], raw: bytes) -> Image.Image:
    """Pillow's un-filtering of PNG rows (filter type byte + filtered bytes each) into an image."""
    assert _isal_zlib is not None
    expected = len(raw)
    # the filtered rows as a zlib stream of stored blocks, for Pillow's un-filtering decoder
    rows = memoryview(raw)
    parts: list[bytes | memoryview] = [b"\x78\x01"]
    for start in range(0, expected, _STORED_BLOCK):
        block = rows[start : start + _STORED_BLOCK]
        final = 1 if start + _STORED_BLOCK >= expected else 0
        parts.append(struct.pack("<BHH", final, len(block), len(block) ^ 0xFFFF))
        parts.append(block)
    parts.append(struct.pack(">I", _isal_zlib.adler32(raw)))
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
#   upper-left) neighbour is across the cut; it is re-filtered against the tile's edge (zeros), for
#   which the raw pixels either side of the cut are needed: the right half's first column is worked
#   out row by row from the left half's last one (below).
# - the bottom tiles' top row looks up across the cut: it is written raw (filter type None).
#
# What is un-filtered (by Pillow's C loop, as stored deflate blocks): the left half of the grid
# (every row's left half is a valid PNG row of a half-width image; its last column is what the
# right half's first pixels were filtered against, and its middle row is the bottom-left tile's
# top row), and the few rows of the right half above the middle one back to the last row that
# does not look up (the middle row of the right half, the bottom-right tile's top row). About half
# of the grid's un-filtering instead of all of it, and none of the tiles' filtering.
#
# (raw = filtered + predictor(left, up, upper-left), bytewise modulo 256; filter types: 0 None,
# 1 Sub, 2 Up, 3 Average, 4 Paeth.)


def _paeth(a: int, b: int, c: int) -> int:
    p = a + b - c
    pa, pb, pc = abs(p - a), abs(p - b), abs(p - c)
    if pa <= pb and pa <= pc:
        return a
    return b if pb <= pc else c


def _first_pixels(rows: bytes, stride: int, at: int, height: int, bpp: int, left_column: bytes) -> list[bytes]:
    """For every row, the right half's first pixel re-filtered as a tile's first pixel, the row's
    filter type byte in front. `at`: where the right half starts in a row; `left_column`: the left
    half's last column, raw."""
    fixed: list[bytes] = []
    zero = bytes(bpp)
    up = zero  # raw, the pixel above (the grid's first row has none)
    upper_left = zero
    for y in range(height):
        start = y * stride
        kind = rows[start]
        filtered = rows[start + at : start + at + bpp]
        left = left_column[y * bpp : (y + 1) * bpp]
        if kind == 0:
            raw = filtered
            out = filtered
        elif kind == 1:
            raw = bytes([(f + a) & 255 for f, a in zip(filtered, left)])
            out = raw  # the tile's first pixel has no left neighbour: Sub stores it as it is
        elif kind == 2:
            raw = bytes([(f + b) & 255 for f, b in zip(filtered, up)])
            out = filtered  # the pixel above is in the tile
        elif kind == 3:
            raw = bytes([(f + ((a + b) >> 1)) & 255 for f, a, b in zip(filtered, left, up)])
            out = bytes([(r - (b >> 1)) & 255 for r, b in zip(raw, up)])
        elif kind == 4:
            raw = bytes([(f + _paeth(a, b, c)) & 255 for f, a, b, c in zip(filtered, left, up, upper_left)])
            out = bytes([(r - b) & 255 for r, b in zip(raw, up)])  # Paeth(0, up, 0) is up
        else:
            raise ImageError("not_image", "the image data is corrupt or truncated")
        fixed.append(bytes((kind,)) + out)
        up, upper_left = raw, left
    return fixed


# The left half is un-filtered a strip of rows at a time, each strip after the raw row above it
# (filter type None), so that no buffer of the size of the half grid is made: the page faults of
# a few fresh MB per grid cost as much CPU as the copying into them.
_STRIP_ROWS = 64


def _left_edges(mode: str, width: int, cut: int, rows: list[memoryview]) -> tuple[bytes, bytes]:
    """The left half's filtered `rows` un-filtered: (its last column, its row `cut`), raw."""
    column: list[bytes] = []
    cut_row = b""
    above: list[bytes] = []  # the raw row above the strip, as a row of filter type None
    for start in range(0, len(rows), _STRIP_ROWS):
        strip = rows[start : start + _STRIP_ROWS]
        skip = len(above) // 2
        image = _unfilter(mode, (width, skip + len(strip)), b"".join([*above, *strip]))
        column.append(image.crop((width - 1, skip, width, skip + len(strip))).tobytes())
        last = skip + len(strip) - 1
        above = [b"\x00", image.crop((0, last, width, last + 1)).tobytes()]
        if start <= cut < start + len(strip):
            cut_row = image.crop((0, skip + cut - start, width, skip + cut - start + 1)).tobytes()
    return b"".join(column), cut_row


def _split_png_rows(data: bytes) -> list[bytes]:
    """split_grid of a plain 8-bit RGB/RGBA PNG on its filtered rows (above), or _NotPlain."""
    width, height, colour, stream = _png_idat(data)
    if width < 2 or height < 2:
        raise _NotPlain  # Pillow's path says what is wrong with it
    mode = _PNG_MODE[colour]
    bpp = len(mode)
    stride = 1 + width * bpp
    rows = _inflate_rows(stream, height * stride)
    view = memoryview(rows)
    mid_x, mid_y = width // 2, height // 2
    at = 1 + mid_x * bpp  # where a row's right half starts (after its filter type byte)
    right_width = width - mid_x

    def left_row(y: int) -> memoryview:  # its filter type byte and its left half
        return view[y * stride : y * stride + at]

    left_column, left_cut_row = _left_edges(mode, mid_x, mid_y, [left_row(y) for y in range(height)])
    firsts = _first_pixels(rows, stride, at, height, bpp, left_column)

    def right_row(y: int) -> list[bytes | memoryview]:
        start = y * stride
        return [firsts[y], view[start + at + bpp : start + stride]]

    # the right half's row at the cut, raw: un-filter the right half's rows from the last one at
    # or above it that does not look up (None or Sub), or from the top
    top = mid_y
    while top > 0 and rows[top * stride] not in (0, 1):
        top -= 1
    run: list[bytes | memoryview] = []
    for y in range(top, mid_y + 1):
        run += right_row(y)
    right_cut_row = _unfilter(mode, (right_width, mid_y + 1 - top), b"".join(run)).crop(
        (0, mid_y - top, right_width, mid_y + 1 - top)
    ).tobytes()

    top_right: list[bytes | memoryview] = []
    for y in range(mid_y):
        top_right += right_row(y)
    bottom_right: list[bytes | memoryview] = [b"\x00", right_cut_row]
    for y in range(mid_y + 1, height):
        bottom_right += right_row(y)
    top_left: list[bytes | memoryview] = [left_row(y) for y in range(mid_y)]
    bottom_left: list[bytes | memoryview] = [b"\x00", left_cut_row]
    bottom_left += [left_row(y) for y in range(mid_y + 1, height)]

    lower = height - mid_y
    return [
        _png_file(mid_x, mid_y, colour, top_left),
        _png_file(right_width, mid_y, colour, top_right),
        _png_file(mid_x, lower, colour, bottom_left),
        _png_file(right_width, lower, colour, bottom_right),
    ]


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
