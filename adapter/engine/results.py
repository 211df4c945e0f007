"""Turning Midjourney's expiring CDN links into images we host: the result (and its four grid
tiles), the progress previews, and the caller's own input images."""

from __future__ import annotations

import msgspec

from adapter.backends.base import ImageInput, JobOutput
from adapter.domain.actions import Action
from adapter.domain.buttons import parse_custom_id
from adapter.domain.jobs import ImageRef, Job
from adapter.media.fetch import ImageFetcher
from adapter.media.fresh import FreshImages
from adapter.media.images import preview_async, split_grid_async
from adapter.media.store import ImageStore

_EXT = {"image/png": "png", "image/jpeg": "jpg", "image/webp": "webp", "image/gif": "gif", "video/mp4": "mp4"}


def is_grid(output: JobOutput) -> bool:
    """A result is a 2x2 grid when it offers U1..U4 (upscales of a grid image)."""
    for b in output.buttons:
        if b.custom_id and (parsed := parse_custom_id(b.custom_id)) and parsed.action is Action.UPSCALE and not parsed.solo:
            return True
    return False


class ResultImages(msgspec.Struct, frozen=True):
    image: ImageRef
    tiles: list[ImageRef]


class ResultIngester:
    def __init__(self, fetcher: ImageFetcher, store: ImageStore, *, preview_side: int = 512) -> None:
        self.fetcher = fetcher
        self.store = store
        self.preview_side = preview_side

    async def ingest(self, job: Job, output: JobOutput) -> ResultImages | None:
        if not output.image_url:
            return None
        # the result comes from the account's own source: a video (Midjourney's video upscales) is fine
        fetched = await self.fetcher.fetch(output.image_url, video_ok=True)
        ext = _EXT.get(fetched.content_type, "png")
        image = await self.store.put(fetched.data, fetched.content_type, job_id=job.id, name=f"result.{ext}")
        if fetched.content_type == "video/mp4":
            return ResultImages(image=image, tiles=[image])
        # the answer that carries the images' bytes (b64_json) comes for them next: handed over
        # in memory rather than read back from the store
        fresh = FreshImages.for_store(self.store)
        if not is_grid(output):
            fresh.offer(image.key, fetched.data, image.content_type)
            return ResultImages(image=image, tiles=[image])
        parts = await split_grid_async(fetched.data)
        tiles = [
            await self.store.put(part, "image/png", job_id=job.id, name=f"{i}.png") for i, part in enumerate(parts, start=1)
        ]
        for tile, part in zip(tiles, parts):
            fresh.offer(tile.key, part, tile.content_type)
        return ResultImages(image=image, tiles=tiles)

    async def preview(self, job: Job, url: str, step: int) -> ImageRef:
        fetched = await self.fetcher.fetch(url)
        if fetched.format == "webp" and 0 < max(fetched.width, fetched.height) <= self.preview_side:
            small = fetched.data  # Midjourney's previews are small WebPs already: kept as they are
        else:
            small = await preview_async(fetched.data, self.preview_side, "webp")
        # replaced by the next one within seconds and worthless once the job ends: not fsynced
        return await self.store.put(small, "image/webp", job_id=job.id, name=f"preview-{step}.webp", durable=False)

    async def keep_input(self, job_id: str, image: ImageInput, name: str) -> ImageRef:
        return await self.store.put(image.data, image.content_type, job_id=job_id, name=name)

    async def load_input(self, ref: ImageRef, filename: str) -> ImageInput:
        stored = await self.store.get(ref.key)
        if stored is None:
            raise FileNotFoundError(ref.key)
        return ImageInput(filename=filename, content_type=ref.content_type, data=stored.data)
