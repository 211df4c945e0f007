"""One conversion per image and output format, shared by every watcher (issue 13).

In process: SharedImages itself (single flight, one stored copy, bounds, lifetime), and
ImageServing.stream with twenty streams on one job driven by a stand-in JobService (one
conversion per preview and format, the same bytes in every stream, a slow stream skips previews
but gets the end). The same over HTTP against a real demo server: twenty concurrent streams with
one Idempotency-Key and output_format webp store exactly one converted copy.
"""

from __future__ import annotations

import asyncio
import base64
import io
import json
import sys
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import httpx
import msgspec
import pytest
from PIL import Image

import adapter.api.openai.shared_images as shared_mod
from adapter.api.common.sse import ServerSentEvent
from adapter.api.openai.protocol_images import CompletedImageEvent, ImageOptions, PartialImageEvent
from adapter.api.openai.serving_images import ImageServing, make_plan
from adapter.api.openai.shared_images import B64_SLOT, SharedImages, SingleFlight, spliced_frame, sse_frame
from adapter.domain.actions import Action
from adapter.domain.jobs import ImageRef, Job, JobStatus
from adapter.domain.models import ModelCatalog
from adapter.media.store import LocalImageStore

sys.path.insert(0, str(Path(__file__).parent))
from server_process import KEY_A, ServerProcess  # noqa: E402


def picture(fmt: str, colour: tuple[int, int, int] = (30, 120, 200), side: int = 64) -> bytes:
    out = io.BytesIO()
    Image.new("RGB", (side, side), colour).save(out, fmt)
    return out.getvalue()


class CountingConvert:
    """convert_async, counted (and slowed a little so that concurrent callers overlap)."""

    def __init__(self, monkeypatch: pytest.MonkeyPatch) -> None:
        self.calls = 0
        self._real = shared_mod.convert_async
        monkeypatch.setattr(shared_mod, "convert_async", self)

    async def __call__(self, data: bytes, fmt: str, compression: int | None = None) -> bytes:
        self.calls += 1
        await asyncio.sleep(0.02)
        return await self._real(data, fmt, compression)


class CountingStore(LocalImageStore):
    def __init__(self, root: Path) -> None:
        super().__init__(root)
        self.puts = 0
        self.gets = 0

    async def put(self, data: bytes, content_type: str, *, job_id: str, name: str, durable: bool = True, seed: str | None = None) -> ImageRef:
        self.puts += 1
        return await super().put(data, content_type, job_id=job_id, name=name, durable=durable, seed=seed)

    async def get(self, key: str) -> Any:
        self.gets += 1
        return await super().get(key)


@pytest.fixture
def store(tmp_path: Path) -> CountingStore:
    return CountingStore(tmp_path)


# --- SharedImages -----------------------------------------------------------------------------------


async def test_twenty_callers_one_conversion(store: CountingStore, monkeypatch: pytest.MonkeyPatch) -> None:
    convert = CountingConvert(monkeypatch)
    shared = SharedImages(store)
    ref = await store.put(picture("WEBP"), "image/webp", job_id="j_one", name="preview-1.webp")
    got = await asyncio.gather(*(shared.encoded(ref, "png") for _ in range(20)))
    assert convert.calls == 1 and store.gets == 1 and shared.conversions == 1
    assert all(g is got[0] for g in got)
    assert got[0] is not None and Image.open(io.BytesIO(got[0].data)).format == "PNG"
    assert got[0].b64 == base64.b64encode(got[0].data) and got[0].b64 is got[0].b64  # made once
    # later callers are served from memory; another format is another conversion
    assert await shared.encoded(ref, "png") is got[0]
    await shared.encoded(ref, "jpeg")
    assert convert.calls == 2 and store.gets == 2


async def test_same_format_is_not_converted(store: CountingStore, monkeypatch: pytest.MonkeyPatch) -> None:
    convert = CountingConvert(monkeypatch)
    shared = SharedImages(store)
    data = picture("PNG")
    ref = await store.put(data, "image/png", job_id="j_same", name="1.png")
    got = await shared.encoded(ref, "png")
    assert got is not None and got.data == data and convert.calls == 0
    # asked with a compression, it is re-encoded (once)
    await asyncio.gather(*(shared.encoded(ref, "png", 50) for _ in range(5)))
    assert convert.calls == 1


async def test_one_stored_copy_per_format(store: CountingStore, monkeypatch: pytest.MonkeyPatch) -> None:
    convert = CountingConvert(monkeypatch)
    shared = SharedImages(store)
    tile = await store.put(picture("PNG"), "image/png", job_id="j_copy", name="1.png")
    refs = await asyncio.gather(*(shared.stored("j_copy", tile, "webp") for _ in range(20)))
    assert store.puts == 2 and convert.calls == 1 and shared.copies_stored == 1
    assert {r.key for r in refs if r} == {refs[0].key}  # type: ignore[union-attr]
    assert refs[0] is not None and refs[0].content_type == "image/webp"
    # named after the original's token (result_lookup recognises a converted copy by it)
    assert refs[0].key.split("/")[1].split("-")[1] == tile.key.split("/")[1].split("-")[0]
    # a request long after (the bytes dropped) still gets the same copy, stored nowhere new
    shared._bytes.clear()
    assert (await shared.stored("j_copy", tile, "webp")) == refs[0]
    assert store.puts == 2
    # the asked format already: the original itself, nothing stored
    assert await shared.stored("j_copy", tile, "png") is tile
    files = sorted(p.name.split("-", 1)[1] for p in (store.root / "images" / "j_copy").iterdir())
    assert len(files) == 2 and sum(f.endswith(".webp") for f in files) == 1


async def test_another_process_finds_the_stored_copy(store: CountingStore, monkeypatch: pytest.MonkeyPatch) -> None:
    """A restart or another replica on the same image store: the converted copy's key is derived
    from the original's, so it is found and not made again."""
    convert = CountingConvert(monkeypatch)
    tile = await store.put(picture("PNG"), "image/png", job_id="j_twice", name="1.png")
    first = await SharedImages(store).stored("j_twice", tile, "webp")
    second = await SharedImages(store).stored("j_twice", tile, "webp")
    assert first is not None and second is not None and second.key == first.key
    assert (second.width, second.height, second.content_type) == (first.width, first.height, "image/webp")
    assert store.puts == 2 and convert.calls == 1
    other = await SharedImages(store).stored("j_twice", tile, "jpeg")
    assert other is not None and other.key != first.key and store.puts == 3


async def test_a_caller_that_goes_away_does_not_cancel_the_others(store: CountingStore, monkeypatch: pytest.MonkeyPatch) -> None:
    convert = CountingConvert(monkeypatch)
    shared = SharedImages(store)
    ref = await store.put(picture("WEBP"), "image/webp", job_id="j_gone", name="preview-1.webp")
    first = asyncio.create_task(shared.encoded(ref, "png"))
    await asyncio.sleep(0.005)
    others = [asyncio.create_task(shared.encoded(ref, "png")) for _ in range(5)]
    await asyncio.sleep(0)
    first.cancel()
    results = await asyncio.gather(*others)
    assert all(r is not None for r in results) and convert.calls == 1
    with pytest.raises(asyncio.CancelledError):
        await first


async def test_failures_are_shared_but_not_remembered() -> None:
    flight = SingleFlight()
    attempts = 0

    async def boom() -> int:
        nonlocal attempts
        attempts += 1
        await asyncio.sleep(0.01)
        if attempts == 1:
            raise ValueError("broken")
        return 7

    outcomes = await asyncio.gather(*(flight.do("k", boom) for _ in range(4)), return_exceptions=True)
    assert attempts == 1 and all(isinstance(o, ValueError) for o in outcomes)
    assert await flight.do("k", boom) == 7 and attempts == 2 and flight.running() == 0


async def test_missing_image_is_none(store: CountingStore) -> None:
    shared = SharedImages(store)
    gone = ImageRef(key="j_x/" + "a" * 26 + "-1.png")
    assert await shared.encoded(gone, "webp") is None
    assert await shared.stored("j_x", gone, "webp") is None
    assert len(shared) == 0


async def test_bounded_by_bytes_and_dropped_after_the_job(store: CountingStore) -> None:
    now = [1000.0]
    data = picture("PNG", side=32)
    held = len(data) + -(-len(data) // 3) * 4
    shared = SharedImages(store, max_bytes=held * 5, idle_seconds=600, grace_seconds=30, clock=lambda: now[0])
    refs = [await store.put(data, "image/png", job_id=f"j_{i}", name="1.png") for i in range(8)]
    for ref in refs:
        await shared.encoded(ref, "png")
    assert len(shared) == 5 and shared.cached_bytes <= shared.max_bytes  # least recently used went
    kept = {k[0] for k in shared._bytes}
    assert kept == {r.key for r in refs[3:]}
    # the job ends: its images go after the grace period, the others stay
    shared.job_ended("j_7")
    now[0] += 29
    await shared.encoded(refs[3], "png")
    assert refs[7].key in {k[0] for k in shared._bytes}
    now[0] += 2
    await shared.encoded(refs[3], "png")
    assert refs[7].key not in {k[0] for k in shared._bytes} and len(shared) == 4
    # idle entries go too
    now[0] += 601
    await shared.encoded(refs[0], "png")
    assert {k[0] for k in shared._bytes} == {refs[0].key}


def test_one_instance_per_store(tmp_path: Path) -> None:
    a, b = LocalImageStore(tmp_path / "a"), LocalImageStore(tmp_path / "b")
    assert SharedImages.for_store(a) is SharedImages.for_store(a)
    assert SharedImages.for_store(a) is not SharedImages.for_store(b)


@pytest.mark.parametrize("prompt", ['a "quoted"\nprompt', "\x00b64\x00 in the prompt", "ünïcödé ✨"])
def test_sse_frame_is_the_event_as_sse_starlette_writes_it(prompt: str) -> None:
    b64 = base64.b64encode(b"\x89PNG some image bytes" * 50)
    event = CompletedImageEvent(
        type="image_generation.completed",
        b64_json=b64.decode(),
        created_at=1,
        size="64x64",
        quality="auto",
        background="auto",
        output_format="png",
        usage={"images": 1},
        job_id="j_1",
        url="http://x/images/j_1/a.png",
        revised_prompt=prompt,
        index=0,
    )
    expected = ServerSentEvent(data=msgspec.json.encode(event).decode(), event=event.type).encode()
    assert sse_frame(event.type, msgspec.structs.replace(event, b64_json=""), "b64_json", b64) == expected
    with pytest.raises(TypeError):
        sse_frame("x", event, "no_such_field", b64)


def test_spliced_frame_puts_each_image_in_its_own_slot_in_order() -> None:
    class Item(msgspec.Struct):
        id: str
        result: str | None
        prompt: str

    class Event(msgspec.Struct):
        type: str
        items: list[Item]

    images = [base64.b64encode(bytes([i]) * 300) for i in range(2)]
    whole = Event("response.completed", [Item("a", images[0].decode(), "x \x00b64\x00 y"), Item("b", images[1].decode(), "z")])
    slotted = Event(whole.type, [msgspec.structs.replace(whole.items[0], result=B64_SLOT), msgspec.structs.replace(whole.items[1], result=B64_SLOT)])
    expected = ServerSentEvent(data=msgspec.json.encode(whole).decode(), event=whole.type).encode()
    assert spliced_frame(whole.type, slotted, images) == expected
    no_images = Event(whole.type, [Item("c", None, "w")])
    assert spliced_frame(whole.type, no_images, ()) == ServerSentEvent(data=msgspec.json.encode(no_images).decode(), event=whole.type).encode()
    with pytest.raises(ValueError):
        spliced_frame(whole.type, slotted, images[:1] * 3)


# --- ImageServing.stream: twenty streams on one job, in process -------------------------------------


class OneJobService:
    """What ImageServing needs of JobService for one job: watch() replays the job now, then every
    published snapshot, coalescing to the newest like JobService.watch."""

    def __init__(self, job: Job) -> None:
        self.job = job
        self._queues: list[asyncio.Queue[Job]] = []

    def publish(self, job: Job) -> None:
        self.job = job
        for q in self._queues:
            q.put_nowait(job)

    async def watch(self, job_id: str, owner: str | None = None) -> AsyncIterator[Job]:
        q: asyncio.Queue[Job] = asyncio.Queue()
        self._queues.append(q)
        try:
            last = self.job
            yield last
            while not last.status.finished:
                nxt = await q.get()
                while not q.empty() and not nxt.status.finished:
                    nxt = q.get_nowait()
                last = nxt
                yield nxt
        finally:
            self._queues.remove(q)

    def watchers(self) -> int:
        return len(self._queues)


def _parse(frames: list[bytes | ServerSentEvent]) -> list[tuple[str, dict[str, Any] | str]]:
    out: list[tuple[str, dict[str, Any] | str]] = []
    for f in frames:
        raw = f.encode() if isinstance(f, ServerSentEvent) else f
        name, data = "", ""
        for line in raw.decode().split("\r\n"):
            if line.startswith("event: "):
                name = line[7:]
            elif line.startswith("data: "):
                data = line[6:]
        out.append((name, data if data == "[DONE]" else json.loads(data)))
    return out


@pytest.mark.parametrize("fmt", ["png", "webp"])
async def test_twenty_streams_share_each_conversion(store: CountingStore, monkeypatch: pytest.MonkeyPatch, fmt: str) -> None:
    convert = CountingConvert(monkeypatch)
    job = Job(id="j_fanout", owner="", action=Action.IMAGINE, prompt="p", status=JobStatus.SUBMITTED)
    service = OneJobService(job)
    shared = SharedImages(store)
    serving = ImageServing(service, store, ModelCatalog(), shared)  # type: ignore[arg-type]
    plan = make_plan(ModelCatalog(), ImageOptions(output_format=fmt), "p")

    async def consume(slow: bool) -> list[bytes | ServerSentEvent]:
        frames: list[bytes | ServerSentEvent] = []
        async for frame in serving.stream(plan, [job], "", "http://adapter"):
            frames.append(frame)
            if slow:
                await asyncio.sleep(0.3)  # a client that reads slowly
        return frames

    streams = [asyncio.create_task(consume(slow=i == 0)) for i in range(20)]
    while service.watchers() < 20:
        await asyncio.sleep(0.001)
    for step, progress in enumerate((15, 31, 46, 62), start=1):
        preview = await store.put(picture("WEBP", (step * 40, 90, 90)), "image/webp", job_id=job.id, name=f"preview-{step}.webp")
        service.publish(msgspec.structs.replace(service.job, status=JobStatus.IN_PROGRESS, progress=progress, preview_image=preview))
        await asyncio.sleep(0.1)
    tiles = [await store.put(picture("PNG", (i * 50, 10, 10)), "image/png", job_id=job.id, name=f"{i}.png") for i in range(1, 5)]
    service.publish(msgspec.structs.replace(service.job, status=JobStatus.SUCCESS, progress=100, image=tiles[0], images=tiles))
    results = [_parse(f) for f in await asyncio.gather(*streams)]

    completed = [[d for n, d in r if n.endswith(".completed")] for r in results]
    assert all(len(c) == 1 for c in completed)
    assert len({c[0]["url"] for c in completed}) == 1  # type: ignore[index]
    assert len({c[0]["b64_json"] for c in completed}) == 1  # type: ignore[index]
    assert all(r[-1] == ("", "[DONE]") for r in results)
    fast = results[1:]
    partials = [[d for n, d in r if n.endswith(".partial_image")] for r in fast]
    assert all([p["progress"] for p in ps] == [15, 31, 46, 62] for ps in partials)  # type: ignore[index]
    for i in range(4):
        assert len({ps[i]["b64_json"] for ps in partials}) == 1  # type: ignore[index]
    for p in partials[0]:
        PartialImageEvent(**p)  # type: ignore[arg-type]  # the wire shape is the Struct's
        Image.open(io.BytesIO(base64.b64decode(p["b64_json"]))).load()  # type: ignore[index]
    # the slow stream skipped previews it was too late for, never the end
    slow_partials = [d for n, d in results[0] if n.endswith(".partial_image")]
    assert len(slow_partials) < 4 and [p["partial_image_index"] for p in slow_partials] == list(range(len(slow_partials)))  # type: ignore[index]
    # one conversion per preview (webp -> png) or one for the result (png -> webp), whatever
    # the number of streams; one stored copy of the result per format
    assert convert.calls == (4 if fmt == "png" else 1)
    copies = [p for p in (store.root / "images" / job.id).iterdir() if p.suffix == ".webp" and "preview" not in p.name]
    assert len(copies) == (0 if fmt == "png" else 1)
    assert service.watchers() == 0


async def test_a_stream_closed_early_stops_its_worker(store: CountingStore) -> None:
    job = Job(id="j_close", owner="", action=Action.IMAGINE, prompt="p", status=JobStatus.SUBMITTED)
    service = OneJobService(job)
    serving = ImageServing(service, store, ModelCatalog(), SharedImages(store))  # type: ignore[arg-type]
    plan = make_plan(ModelCatalog(), ImageOptions(n=8), "p")  # two grids: the worker path
    stream = serving.stream(plan, [job, job], "", "http://adapter")
    preview = await store.put(picture("WEBP"), "image/webp", job_id=job.id, name="preview-1.webp")
    first = asyncio.create_task(stream.__anext__())
    while service.watchers() < 2:
        await asyncio.sleep(0.001)
    service.publish(msgspec.structs.replace(job, status=JobStatus.IN_PROGRESS, progress=30, preview_image=preview))
    assert b"partial_image" in await first  # type: ignore[operator]
    await stream.aclose()  # type: ignore[attr-defined]
    for _ in range(10):
        await asyncio.sleep(0)
    assert service.watchers() == 0


# --- over HTTP: twenty concurrent streams on one job ------------------------------------------------


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerProcess]:
    s = ServerProcess(tmp_path_factory.mktemp("shared"), env={"MJ_ADAPTER_SIMULATOR_SPEED": "100"}).start()
    yield s
    s.stop()


async def _stream(server: ServerProcess, body: dict[str, Any], key: str) -> list[tuple[str, dict[str, Any] | str]]:
    events: list[tuple[str, dict[str, Any] | str]] = []
    headers = {"Authorization": f"Bearer {KEY_A}", "Idempotency-Key": key}
    async with httpx.AsyncClient(timeout=60) as client:
        async with client.stream("POST", server.v1 + "/images/generations", json=body, headers=headers) as r:
            assert r.status_code == 200
            name = ""
            async for line in r.aiter_lines():
                if line.startswith("event: "):
                    name = line[7:]
                elif line.startswith("data: "):
                    data = line[6:]
                    events.append((name, data if data == "[DONE]" else json.loads(data)))
                    name = ""
    return events


@pytest.mark.slow
async def test_twenty_streams_one_stored_copy(server: ServerProcess) -> None:
    body = {"model": "midjourney", "prompt": "twenty watchers --relax", "n": 1, "stream": True, "output_format": "webp"}
    first = asyncio.create_task(_stream(server, body, "shared-twenty"))
    await asyncio.sleep(0.3)  # the first request makes the job, the others attach to it
    results = [await first, *await asyncio.gather(*(_stream(server, body, "shared-twenty") for _ in range(19)))]
    completed = [[d for n, d in r if n == "image_generation.completed"] for r in results]
    assert all(len(c) == 1 for c in completed), [len(c) for c in completed]
    urls = {c[0]["url"] for c in completed}  # type: ignore[index]
    assert len(urls) == 1
    job_ids = {c[0]["job_id"] for c in completed}  # type: ignore[index]
    assert len(job_ids) == 1
    job_id = job_ids.pop()
    url = urls.pop()
    assert isinstance(url, str) and url.endswith(".webp")
    folder = server.data_dir / "images" / job_id
    webp_copies = [p.name for p in folder.iterdir() if p.suffix == ".webp" and not p.name.split("-", 1)[1].startswith("preview")]
    assert len(webp_copies) == 1, webp_copies
    assert url.endswith(webp_copies[0])
    r = httpx.get(url, timeout=10)
    assert r.status_code == 200 and r.headers["content-type"] == "image/webp"
    assert all(r[-1] == ("", "[DONE]") for r in results)
