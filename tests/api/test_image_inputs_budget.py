"""ImageInputs applies the user-image pixel budget to uploads and to URLs (the fetcher's own cap
may be the looser one for Midjourney's results)."""

from __future__ import annotations

import base64
import io
import urllib.parse
from typing import Any

import pytest
from PIL import Image

from adapter.api.openai.errors import OpenAIError
from adapter.api.openai.image_inputs import ImageInputs
from adapter.media.decoding import DEFAULT_MAX_PIXELS, USER_IMAGE_MAX_PIXELS
from adapter.media.fetch import FetchPolicy, ImageFetcher


def png(size: tuple[int, int]) -> bytes:
    buf = io.BytesIO()
    Image.new("1", size).save(buf, "PNG")  # a few kB whatever the size
    return buf.getvalue()


class NoStore:
    async def get(self, key: str) -> Any:
        return None


@pytest.fixture
async def inputs() -> Any:
    fetcher = ImageFetcher(FetchPolicy(max_pixels=DEFAULT_MAX_PIXELS))  # data URLs only: no network
    yield ImageInputs(fetcher, NoStore(), max_bytes=20 * 1024 * 1024)  # type: ignore[arg-type]
    await fetcher.aclose()


async def test_default_budget_is_the_user_one(inputs: ImageInputs) -> None:
    assert inputs.max_pixels == USER_IMAGE_MAX_PIXELS < DEFAULT_MAX_PIXELS


async def test_upload_at_and_over_the_budget(inputs: ImageInputs) -> None:
    ok = await inputs.from_upload(png((5000, 5000)), param="image", label="The image")
    assert (ok.width, ok.height) == (5000, 5000)
    with pytest.raises(OpenAIError) as err:
        await inputs.from_upload(png((5001, 5000)), param="image", label="The image")
    assert (err.value.status, err.value.body.param, err.value.body.code) == (400, "image", "image_too_large")
    assert "25 Mpx" in err.value.body.message


async def test_data_url_over_the_budget_though_within_the_fetchers(inputs: ImageInputs) -> None:
    url = "data:image/png;base64," + base64.b64encode(png((6000, 5000))).decode()
    with pytest.raises(OpenAIError) as err:
        await inputs.from_url(url, param="image", label="Image 2")
    body = err.value.body
    assert (body.param, body.code) == ("image", "image_too_large") and "6000x5000" in body.message and body.message.startswith("Image 2")
    small = "data:image/png;base64," + base64.b64encode(png((4000, 3000))).decode()
    assert (await inputs.from_url(small, param="image", label="Image 2")).width == 4000


async def test_a_data_url_is_not_pinned_by_urllibs_cache(inputs: ImageInputs) -> None:
    """urllib.parse.urlsplit keeps its last 128 inputs in an lru_cache: a data URL that went
    through it would stay in memory after the request."""
    urllib.parse.urlsplit.cache_clear()
    url = "data:image/png;base64," + base64.b64encode(png((300, 200))).decode()
    assert (await inputs.from_url(url, param="image", label="The image")).width == 300
    assert urllib.parse.urlsplit.cache_info().currsize == 0
    # our own http(s) URLs are still looked up in the store
    await inputs.from_url("data:image/png;base64," + base64.b64encode(png((30, 20))).decode(), param="image", label="x")
    with pytest.raises(OpenAIError):
        await inputs.from_url("http://127.0.0.1:1/images/j_abc/def.png", param="image", label="x")
    assert urllib.parse.urlsplit.cache_info().currsize >= 1
