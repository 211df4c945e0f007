"""Masks for Vary (Region), decoded under a pixel budget sized to what Midjourney can use.

A mask is a small file that can claim any size: a 60 KB palette PNG of 8000x8000 decodes to
64 MB, and to 256 MB more as RGBA. Vary (Region) repaints part of one of Midjourney's single
images, which are about 1 Mpx (1024x1024, 1456x816, 2048x512: the longest side at most 2048), so
a mask drawn at the image's size never has more pixels than a 2048x2048 image: that is the
budget. A JPEG beyond it is decoded at 1/2, 1/4 or 1/8 scale (libjpeg's draft mode, which costs
less than a full decode); the other formats cannot shrink while decoding and are refused, naming
the mask's size and the limit.

The work is lean: the region is one 8-bit band (the alpha band taken directly, a palette mapped
once, or the luminance), thresholded with a lookup table; no full-size RGBA copies. At the budget
one request holds at most ~4 bytes per pixel of the mask (an RGBA decode) plus two 1-byte bands:
about 25 MB.
"""

from __future__ import annotations

import io
import warnings

from PIL import Image, ImageChops

from adapter.media.decoding import ImageError, open_image

# 2048 x 2048 = 4.19 Mpx: the largest single image Midjourney offers Vary (Region) on, with room
# to spare (its single images are ~1 Mpx).
MASK_MAX_PIXELS = 2048 * 2048
# libjpeg decodes at 1/1, 1/2, 1/4 or 1/8 scale
_JPEG_SCALES = (1, 2, 4, 8)
# The header alone is read first, whatever size it claims (Pillow still refuses the absurd ones,
# over ~179 Mpx); the budget is applied to it below, before anything is decoded.
_ANY_HEADER = 1 << 62

# value >= 128 -> 255 (white marks the region), and < 128 -> 255 (transparent marks it)
_AT_LEAST_HALF = [0] * 128 + [255] * 128
_BELOW_HALF = [255] * 128 + [0] * 128


class MaskError(ImageError):
    """A mask we cannot use. `code`: "not_image", "too_large" or "empty"; `message` is safe to
    show the caller."""


def midjourney_mask(data: bytes, width: int, height: int, *, max_pixels: int = MASK_MAX_PIXELS) -> bytes:
    """An OpenAI mask (transparent pixels = the area to edit) -> Midjourney's (a PNG, white =
    the area to redo) at the size of the image it applies to. A mask without transparency is
    read the Midjourney way: white marks the area."""
    img = _decode(data, max_pixels, want=(width, height))
    region = _transparent_region(img)
    if region is None:
        region = _luminance(img).point(_AT_LEAST_HALF)
    del img  # the decoded mask can go before the resize and the encode
    return _finish(region, (width, height), "make the area to repaint transparent (or white on black)")


def region_mask_png(data: bytes, *, max_pixels: int = MASK_MAX_PIXELS) -> bytes:
    """A Midjourney-style mask (white = the region to redo; PNG, JPEG, WebP or GIF, e.g. the
    /mj modal's maskBase64) -> a black and white PNG at the mask's own size, decoded under the
    same budget. A pixel counts as region when it is light (luminance >= 128) and, where the mask
    has transparency, opaque (alpha >= 128): white on transparent and white on black both work."""
    img = _decode(data, max_pixels, want=None)
    region = _opaque_light_region(img)
    del img
    return _finish(region, None, "paint the region to redo white (on black or on transparency)")


# --- decoding -------------------------------------------------------------------------------------


def check_mask(data: bytes, *, max_pixels: int = MASK_MAX_PIXELS) -> None:
    """MaskError unless the mask can be read within the budget, judged from its header alone:
    cheap enough to run before anything is spent on the mask's image (an upscale job)."""
    _open_within(data, max_pixels, want=None)


def _decode(data: bytes, max_pixels: int, *, want: tuple[int, int] | None) -> Image.Image:
    """The mask decoded within `max_pixels`."""
    img = _open_within(data, max_pixels, want=want)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)
            img.load()
    except (OSError, ValueError, SyntaxError, EOFError, Image.DecompressionBombError):
        raise MaskError("not_image", "The mask's image data is corrupt or truncated.") from None
    return img


def _open_within(data: bytes, max_pixels: int, *, want: tuple[int, int] | None) -> Image.Image:
    """The mask opened (header only) within `max_pixels`; a JPEG set to decode at the smallest
    scale that fits the budget and still covers `want` (the size it will be resized to)."""
    try:
        img = open_image(data, max_pixels=_ANY_HEADER)
    except ImageError as exc:
        if exc.code == "too_large":
            raise MaskError("too_large", f"The mask has far too many pixels{_send_at(want)}.") from None
        raise MaskError("not_image", "The mask is not a PNG, JPEG, WebP or GIF image.") from None
    width, height = img.size
    if img.format == "JPEG":
        scale = _jpeg_scale(width, height, max_pixels, want)
        if scale is not None:
            # also asks libjpeg for grayscale directly: one byte per pixel from the start
            img.draft("L", (max(1, width // scale), max(1, height // scale)))
    if img.size[0] * img.size[1] > max_pixels:
        raise MaskError(
            "too_large",
            f"The mask is {width}x{height} ({width * height / 1e6:.1f} Mpx); masks are read up to "
            f"{_budget(max_pixels)}{_send_at(want)}.",
        )
    return img


def _jpeg_scale(width: int, height: int, max_pixels: int, want: tuple[int, int] | None) -> int | None:
    """The draft scale: the smallest that fits the budget, or a larger one that still covers
    `want` (less to decode, nothing lost after the resize). None: not even 1/8 fits."""
    fits = next((s for s in _JPEG_SCALES if -(-width // s) * -(-height // s) <= max_pixels), None)
    if fits is None:
        return None
    covers = 1
    if want is not None:
        covers = next((s for s in reversed(_JPEG_SCALES) if width // s >= want[0] and height // s >= want[1]), 1)
    return max(fits, covers)


def _budget(max_pixels: int) -> str:
    side = int(max_pixels**0.5)
    exact = f" ({side}x{side})" if side * side == max_pixels else ""
    return f"{max_pixels / 1e6:.1f} Mpx{exact}"


def _send_at(want: tuple[int, int] | None) -> str:
    if want is None:
        return ": send the mask at the size of the image"
    return f": send the mask at the size of the image ({want[0]}x{want[1]})"


# --- the region -----------------------------------------------------------------------------------


def _luminance(img: Image.Image) -> Image.Image:
    return img if img.mode == "L" else img.convert("L")


def _palette_alpha(img: Image.Image) -> list[int] | None:
    """Per palette index alpha of a "P" image with an RGB palette; None for any other image."""
    if img.mode != "P" or "transparency" not in img.info or img.palette is None or img.palette.mode != "RGB":
        return None
    alpha = [255] * 256
    transparency = img.info["transparency"]
    if isinstance(transparency, int):
        if 0 <= transparency < 256:
            alpha[transparency] = 0
    elif isinstance(transparency, bytes):
        alpha[: len(transparency[:256])] = list(transparency[:256])
    return alpha


def _palette_luminance(img: Image.Image) -> list[int]:
    """Per palette index luminance, as Pillow's own P -> L conversion computes it."""
    probe = Image.new("P", (256, 1))
    probe.putdata(range(256))
    palette = bytes(img.getpalette("RGB") or [])
    probe.putpalette(palette + bytes(768 - len(palette)), "RGB")
    return list(probe.convert("L").tobytes())


def _map_palette(img: Image.Image, values: list[int]) -> Image.Image:
    """The "P" image with each index replaced by values[index], as one 8-bit band."""
    img.info.pop("transparency", None)
    img.putpalette(bytes(v for value in values for v in (value, value, value)), "RGB")
    return img.convert("L")


def _transparent_region(img: Image.Image) -> Image.Image | None:
    """White where the mask is (mostly) transparent, or None when nothing is."""
    if img.mode in ("RGBA", "LA"):
        alpha = img.getchannel("A")
        lo, _hi = alpha.getextrema()
        return alpha.point(_BELOW_HALF) if lo < 128 else None  # type: ignore[operator]
    if (alpha_of := _palette_alpha(img)) is not None:
        used = img.histogram()
        if not any(count and alpha_of[i] < 128 for i, count in enumerate(used[:256])):
            return None
        # the palette is rewritten in place: the caller has no further use for the image
        return _map_palette(img, [255 if a < 128 else 0 for a in alpha_of])
    if img.mode == "PA" or (img.mode == "P" and "transparency" in img.info):
        # rare layouts (an RGBA palette): one conversion, then as RGBA
        return _transparent_region(img.convert("RGBA"))
    return None


def _opaque_light_region(img: Image.Image) -> Image.Image:
    """White where the mask is light and opaque."""
    if img.mode in ("RGBA", "LA"):
        # min(luminance, alpha) >= 128 exactly when both are
        return ImageChops.darker(img.convert("L"), img.getchannel("A")).point(_AT_LEAST_HALF)
    if (alpha_of := _palette_alpha(img)) is not None:
        lum = _palette_luminance(img)
        return _map_palette(img, [255 if lum[i] >= 128 and alpha_of[i] >= 128 else 0 for i in range(256)])
    if img.mode == "PA" or (img.mode == "P" and "transparency" in img.info):
        return _opaque_light_region(img.convert("RGBA"))
    return _luminance(img).point(_AT_LEAST_HALF)


def _finish(region: Image.Image, size: tuple[int, int] | None, hint: str) -> bytes:
    if region.getbbox() is None:
        raise MaskError("empty", f"The mask marks no area to edit: {hint}.")
    if size is not None and region.size != size:
        region = region.resize(size, Image.Resampling.NEAREST)
    out = io.BytesIO()
    region.save(out, "PNG")
    return out.getvalue()
