"""ResultIngester on its own: what it stores for a result and for a progress preview, and how
(a preview is not fsynced; the result and its tiles are)."""

from __future__ import annotations

import io
from pathlib import Path

from PIL import Image

from adapter.backends.base import JobOutput
from adapter.domain.actions import Action
from adapter.domain.buttons import Button
from adapter.domain.jobs import ImageRef, Job
from adapter.engine.results import ResultIngester
from adapter.media.fetch import FetchedImage
from adapter.media.store import LocalImageStore


def _image(fmt: str, size: tuple[int, int]) -> bytes:
    buf = io.BytesIO()
    Image.new("RGB", size, (30, 90, 150)).save(buf, fmt)
    return buf.getvalue()


class Fetcher:
    def __init__(self, data: bytes, fmt: str, size: tuple[int, int]) -> None:
        self.fetched = FetchedImage(data, f"image/{fmt}", size[0], size[1], fmt, "http://127.0.0.1/x")

    async def fetch(self, url: str, **_: object) -> FetchedImage:
        return self.fetched


class RecordingStore(LocalImageStore):
    def __init__(self, root: Path) -> None:
        super().__init__(root)
        self.puts: list[tuple[str, bool]] = []

    async def put(self, data: bytes, content_type: str, *, job_id: str, name: str, durable: bool = True) -> ImageRef:
        self.puts.append((name, durable))
        return await super().put(data, content_type, job_id=job_id, name=name, durable=durable)


JOB = Job(id="j_ingest", owner="o", action=Action.IMAGINE, prompt="p")


async def test_a_preview_is_stored_not_durable_and_a_small_webp_as_it_came(tmp_path: Path) -> None:
    webp = _image("WEBP", (256, 256))
    store = RecordingStore(tmp_path)
    ref = await ResultIngester(Fetcher(webp, "webp", (256, 256)), store).preview(JOB, "http://x/p.webp", 3)  # type: ignore[arg-type]
    assert store.puts == [("preview-3.webp", False)]
    stored = await store.get(ref.key)
    assert stored is not None and stored.data == webp  # not decoded and encoded again


async def test_a_big_or_other_preview_is_made_small_webp(tmp_path: Path) -> None:
    png = _image("PNG", (1024, 512))
    store = RecordingStore(tmp_path)
    ref = await ResultIngester(Fetcher(png, "png", (1024, 512)), store, preview_side=256).preview(JOB, "http://x/p.png", 1)  # type: ignore[arg-type]
    assert (ref.content_type, ref.width, ref.height) == ("image/webp", 256, 128)
    assert store.puts == [("preview-1.webp", False)]


async def test_the_result_and_its_tiles_are_durable(tmp_path: Path) -> None:
    grid = _image("PNG", (64, 48))
    store = RecordingStore(tmp_path)
    output = JobOutput(
        account_id="a",
        image_url="http://127.0.0.1/grid.png",
        buttons=[Button(custom_id=f"MJ::JOB::upsample::{i}::0b2e7c36-0000-4000-8000-000000000000", label=f"U{i}") for i in range(1, 5)],
    )
    result = await ResultIngester(Fetcher(grid, "png", (64, 48)), store).ingest(JOB, output)  # type: ignore[arg-type]
    assert result is not None and len(result.tiles) == 4
    assert store.puts == [("result.png", True), ("1.png", True), ("2.png", True), ("3.png", True), ("4.png", True)]
