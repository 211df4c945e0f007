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

# A Midjourney 4x upscale of a 2:1 image is ~ 4096 x 2048 (8 Mpx); 64 Mpx leaves plenty of room.
DEFAULT_MAX_PIXELS = 64_000_000


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
    """Check the whole file is well formed without keeping the pixels; returns the header-only
    image (size, format) for the caller to read."""
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
