"""Opening untrusted image bytes with Pillow, safely.

Every image we touch came from a user or from Midjourney's CDN, so Pillow is only allowed the few
decoders Midjourney itself deals in (some of Pillow's other plugins parse exotic formats or shell
out, e.g. EPS -> Ghostscript), and the pixel count is checked from the header before any decode, so
a small file that claims to be 100k x 100k cannot exhaust memory.
"""

from __future__ import annotations

import io
import warnings

from PIL import Image

# Pillow format name -> MIME type. Order matters only for Pillow's probing.
ALLOWED_FORMATS: dict[str, str] = {
    "PNG": "image/png",
    "JPEG": "image/jpeg",
    "WEBP": "image/webp",
    "GIF": "image/gif",
}

# Results from Midjourney (trusted sources): a 4x upscale of a 2:1 image is ~ 4096 x 2048 (8 Mpx);
# 64 Mpx leaves plenty of room.
DEFAULT_MAX_PIXELS = 64_000_000
# Images callers hand us (image prompts, edit and variation uploads, chat images). Midjourney
# scales an image prompt down to its own ~1 Mpx working size, so pixels beyond a few Mpx buy
# nothing, but callers send photos as they come off a camera or phone: 12 Mpx (4032x3024),
# 24 Mpx (6000x4000, 5712x4284). 25 Mpx takes those and refuses the rest. These images are only
# verified here (verify_image: headers and structure, no pixel buffer), so this bounds what we
# pass on to Midjourney, not our memory; masks, which we do decode, have their own budget
# (media.masks).
USER_IMAGE_MAX_PIXELS = 25_000_000


class ImageError(ValueError):
    """The bytes are not an image we accept. `code` is "not_image" or "too_large"."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code = code
        self.message = message


def open_image(data: bytes, *, max_pixels: int = DEFAULT_MAX_PIXELS) -> Image.Image:
    """Open (lazily: header only) an image of an allowed format within the pixel budget."""
    if not data:
        raise ImageError("not_image", "the file is empty")
    try:
        with warnings.catch_warnings():
            # Pillow's own bomb check only warns below 2x its limit; ours is explicit below.
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)
            img = Image.open(io.BytesIO(data), formats=list(ALLOWED_FORMATS))
    except Image.DecompressionBombError:
        raise ImageError("too_large", "the image has too many pixels") from None
    except (OSError, ValueError, SyntaxError):
        raise ImageError("not_image", "the file is not a PNG, JPEG, WebP or GIF image") from None
    width, height = img.size
    if width <= 0 or height <= 0:
        raise ImageError("not_image", "the image has no pixels")
    if width * height > max_pixels:
        raise ImageError("too_large", f"the image is {width}x{height}, more pixels than allowed")
    return img


def load_image(data: bytes, *, max_pixels: int = DEFAULT_MAX_PIXELS) -> Image.Image:
    """Open and fully decode (first frame), turning truncated or corrupt data into ImageError."""
    img = open_image(data, max_pixels=max_pixels)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)
            img.load()
    except Image.DecompressionBombError:
        raise ImageError("too_large", "the image has too many pixels") from None
    except (OSError, ValueError, SyntaxError, EOFError):
        raise ImageError("not_image", "the image data is corrupt or truncated") from None
    return img


def verify_image(data: bytes, *, max_pixels: int = DEFAULT_MAX_PIXELS) -> Image.Image:
    """Check the whole file is well formed without decoding pixels; returns the header-only
    image (size, format) for the caller to read. Pillow's verify() walks chunks and checksums
    (PNG) or nothing beyond the header (JPEG, WebP, GIF): it never allocates the pixel buffer,
    so a huge-dimension file costs no more than its bytes (tests/media/test_decoding_budget.py
    measures it)."""
    img = open_image(data, max_pixels=max_pixels)
    try:
        # verify() consumes the image object, so check a second, throwaway one
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)
            probe = Image.open(io.BytesIO(data), formats=[img.format or "PNG"])
            probe.verify()
    except (OSError, ValueError, SyntaxError, EOFError, Image.DecompressionBombError):
        raise ImageError("not_image", "the image data is corrupt or truncated") from None
    return img


def is_mp4(data: bytes) -> bool:
    """An ISO base media file (MP4): its first box is `ftyp`. Midjourney's video results are."""
    return len(data) >= 12 and data[4:8] == b"ftyp"


def mime_of(fmt: str | None) -> str:
    return ALLOWED_FORMATS.get((fmt or "").upper(), "application/octet-stream")
