"""Images a caller hands us (chat image parts, edit/variation uploads), checked before any job.

URLs go through the SSRF-safe fetcher, except our own image URLs, which are read straight from
the image store (the URL's unguessable key is the capability; fetching ourselves over the
network would need the private-address rule relaxed). Uploads get the same checks the fetcher
applies: a byte cap, a pixel cap, and a sniff of the bytes (the declared type is not trusted).
The pixel cap is the user-image budget (decoding.USER_IMAGE_MAX_PIXELS), stricter than the one
for Midjourney's results, whichever way the image came in. Every refusal is an OpenAI 400
naming the parameter.
"""

from __future__ import annotations

import asyncio

import msgspec

from adapter.api.openai.errors import invalid
from adapter.backends.base import ImageInput
from adapter.media.decoding import USER_IMAGE_MAX_PIXELS
from adapter.media.fetch import FetchError, ImageFetcher, sniff_image
from adapter.media.store import ImageStore, key_from_url

MAX_INPUT_IMAGES = 5
_INLINE_SNIFF_BYTES = 256 * 1024
_EXT = {"image/png": "png", "image/jpeg": "jpg", "image/webp": "webp", "image/gif": "gif"}


class InputImage(msgspec.Struct, frozen=True, kw_only=True):
    data: bytes
    content_type: str
    width: int
    height: int
    our_key: str | None = None  # set when the image is one we host (read from the store)

    def __repr__(self) -> str:
        return f"InputImage({self.content_type}, {self.width}x{self.height}, {len(self.data)} bytes)"

    def as_input(self, index: int) -> ImageInput:
        return ImageInput(filename=f"image{index}.{_EXT.get(self.content_type, 'png')}", content_type=self.content_type, data=self.data)


class ImageInputs:
    def __init__(self, fetcher: ImageFetcher, store: ImageStore, *, max_bytes: int, max_pixels: int = USER_IMAGE_MAX_PIXELS) -> None:
        self.fetcher = fetcher
        self.store = store
        self.max_bytes = max_bytes
        self.max_pixels = max_pixels

    async def from_url(self, url: str, *, param: str, label: str) -> InputImage:
        """An http(s) or data URL -> a checked image; `label` names it in the error message."""
        if key := key_from_url(url):
            stored = await self.store.get(key)
            if stored is not None:
                return await self._checked(stored.data, param=param, label=label, our_key=key)
        try:
            fetched = await self.fetcher.fetch(url)
        except FetchError as exc:
            raise invalid(f"{label} could not be used: {exc.message}.", param, code=f"image_{exc.code}") from None
        # the fetcher's own pixel cap may be the looser one it uses for results
        self._check_pixels(fetched.width, fetched.height, param=param, label=label)
        return InputImage(data=fetched.data, content_type=fetched.content_type, width=fetched.width, height=fetched.height)

    async def from_upload(self, data: bytes, *, param: str, label: str) -> InputImage:
        if not data:
            raise invalid(f"{label} is empty.", param, code="image_empty")
        return await self._checked(data, param=param, label=label)

    async def _checked(self, data: bytes, *, param: str, label: str, our_key: str | None = None) -> InputImage:
        if len(data) > self.max_bytes:
            raise invalid(f"{label} is larger than {self.max_bytes} bytes.", param, code="image_too_large")
        try:
            if len(data) > _INLINE_SNIFF_BYTES:
                _fmt, mime, width, height = await asyncio.to_thread(sniff_image, data, self.max_pixels)
            else:
                _fmt, mime, width, height = sniff_image(data, self.max_pixels)
        except FetchError as exc:
            if exc.code == "too_large":
                raise invalid(f"{label} has too many pixels: {exc.message} (at most {self.max_pixels / 1e6:g} Mpx).", param, code="image_too_large") from None
            raise invalid(f"{label} is not a PNG, JPEG, WebP or GIF image.", param, code="invalid_image") from None
        return InputImage(data=data, content_type=mime, width=width, height=height, our_key=our_key)

    def _check_pixels(self, width: int, height: int, *, param: str, label: str) -> None:
        if width * height > self.max_pixels:
            raise invalid(
                f"{label} has too many pixels: it is {width}x{height}, at most {self.max_pixels / 1e6:g} Mpx are accepted.",
                param,
                code="image_too_large",
            )
