"""A result's images handed from the ingester to the answer in memory (adapter/media/fresh.py):
what ResultIngester offers, and SharedImages taking it instead of reading the file back."""

from __future__ import annotations

import io
from pathlib import Path

from PIL import Image

from adapter.api.openai.shared_images import SharedImages
from adapter.backends.base import JobOutput
from adapter.domain.actions import Action
from adapter.domain.buttons import Button
from adapter.domain.jobs import Job
from adapter.engine.results import ResultIngester
from adapter.media.fetch import FetchedImage
from adapter.media.fresh import FreshImages
from adapter.media.store import LocalImageStore, StoredImage

JOB = Job(id="j_fresh", owner="o", action=Action.IMAGINE, prompt="p")
GRID_BUTTONS = [Button(custom_id=f"MJ::JOB::upsample::{i}::0b2e7c36-0000-4000-8000-000000000000", label=f"U{i}") for i in range(1, 5)]


def _png(size: tuple[int, int]) -> bytes:
    buf = io.BytesIO()
    Image.new("RGB", size, (30, 90, 150)).save(buf, "PNG")
    return buf.getvalue()


class Fetcher:
    def __init__(self, data: bytes, content_type: str = "image/png", size: tuple[int, int] = (64, 48)) -> None:
        self.fetched = FetchedImage(data, content_type, size[0], size[1], content_type.split("/")[1], "http://127.0.0.1/x")

    async def fetch(self, url: str, **_: object) -> FetchedImage:
        return self.fetched


class CountingStore(LocalImageStore):
    def __init__(self, root: Path) -> None:
        super().__init__(root)
        self.gets = 0

    async def get(self, key: str) -> StoredImage | None:
        self.gets += 1
        return await super().get(key)


async def test_the_tiles_are_offered_as_stored_and_taken_by_the_answer(tmp_path: Path) -> None:
    store = CountingStore(tmp_path)
    output = JobOutput(account_id="a", image_url="http://127.0.0.1/grid.png", buttons=GRID_BUTTONS)
    result = await ResultIngester(Fetcher(_png((64, 48))), store).ingest(JOB, output)  # type: ignore[arg-type]
    assert result is not None and len(result.tiles) == 4
    fresh = FreshImages.for_store(store)
    shared = SharedImages(store)
    for tile in result.tiles:
        encoded = await shared.encoded(tile, "png")
        on_disk = await LocalImageStore.get(store, tile.key)
        assert encoded is not None and on_disk is not None and encoded.data == on_disk.data
    assert (store.gets, fresh.taken, fresh.held_bytes) == (0, 4, 0)
    # the grid itself was not offered: an answer asking for it reads it
    assert await shared.encoded(result.image, "png") is not None and store.gets == 1


async def test_an_upscale_is_offered_a_video_is_not(tmp_path: Path) -> None:
    store = CountingStore(tmp_path)
    fresh = FreshImages.for_store(store)
    single = await ResultIngester(Fetcher(_png((64, 64))), store).ingest(  # type: ignore[arg-type]
        JOB, JobOutput(account_id="a", image_url="http://127.0.0.1/u.png")
    )
    assert single is not None and fresh.take(single.image.key) is not None
    video = b"\x00\x00\x00\x18ftypmp42" + bytes(100)
    clip = await ResultIngester(Fetcher(video, "video/mp4", (0, 0)), store).ingest(  # type: ignore[arg-type]
        JOB, JobOutput(account_id="a", image_url="http://127.0.0.1/v.mp4")
    )
    assert clip is not None and fresh.take(clip.image.key) is None and fresh.held_bytes == 0
