"""Images API logic: an OpenAI images request -> Midjourney jobs -> OpenAI's answer.

`n` up to 4 comes from one grid; more use ceil(n/4) grids in parallel. `quality` hd/high turns
each image into a Midjourney upscale (U<i>, then Upscale (Subtle) where offered) instead of a
grid tile. `size` becomes `--ar` unless the prompt has one; `style: natural` becomes
`--style raw`. The model picks the bot and the speed; a speed flag in the prompt wins.
"""

from __future__ import annotations

import asyncio
import contextlib
import math
import time
from collections.abc import AsyncIterator, Callable, Sequence

import msgspec

from adapter.api.common.fast_lane import JobMark
from adapter.api.common.sse import ServerSentEvent
from adapter.api.openai.errors import OpenAIError, from_engine, from_failed_job, invalid, unknown_model
from adapter.api.openai.protocol_images import (
    CompletedImageEvent,
    ImageData,
    ImageOptions,
    ImagesResponse,
    PartialImageEvent,
)
from adapter.backends.base import ImageInput
from adapter.domain.actions import Action, Bot, Mode
from adapter.domain.buttons import parse_custom_id
from adapter.domain.jobs import ImageRef, Job, JobStatus
from adapter.domain.models import ModelCatalog
from adapter.domain.prompt import MODE_FLAGS, parse_prompt
from adapter.domain.sizing import SizeError, aspect_for_size
from adapter.engine.errors import EngineError, ServiceClosing
from adapter.engine.service import JobService
from adapter.engine.specs import ActSpec, RequestMeta, SubmitSpec
from adapter.api.openai.shared_images import Encoded, SharedImages, sse_frame
from adapter.media.store import ImageStore, image_url

GRID = 4
_UPSCALED_QUALITIES = {"hd", "high"}


class ImagePlan(msgspec.Struct, frozen=True, kw_only=True):
    """A validated request, ready to become jobs."""

    prompt: str
    mode: Mode
    bot: Bot
    n: int
    upscale: bool
    response_format: str
    output_format: str
    compression: int | None
    partial_images: int | None  # None = every preview
    quality: str
    background: str
    images: tuple[ImageInput, ...] = ()
    event_prefix: str = "image_generation"

    @property
    def job_count(self) -> int:
        return math.ceil(self.n / GRID)


def make_plan(
    catalog: ModelCatalog,
    opts: ImageOptions,
    prompt: str,
    *,
    style: str | None = None,
    images: tuple[ImageInput, ...] = (),
    event_prefix: str = "image_generation",
) -> ImagePlan:
    """A decoded request (types and ranges already checked by its Struct) -> the plan."""
    text = prompt.strip()
    if not text:
        raise invalid("prompt is required and must be a non-empty string.", "prompt")
    spec = catalog.resolve(opts.model)
    if spec is None:
        raise unknown_model(opts.model, catalog.names())
    flags = parse_prompt(text).flags
    try:
        ar = aspect_for_size(opts.size)
    except SizeError as exc:
        raise invalid(str(exc), "size") from None
    if ar and "ar" not in flags and "aspect" not in flags:
        text += f" --ar {ar}"
    if style == "natural" and "style" not in flags:
        text += " --style raw"
    mode = next((Mode(f) for f in MODE_FLAGS if f in flags), spec.mode)
    return ImagePlan(
        prompt=text,
        mode=mode,
        bot=spec.bot,
        n=opts.n or 1,
        upscale=opts.quality in _UPSCALED_QUALITIES,
        response_format=opts.response_format or "url",
        output_format=opts.output_format or "png",
        compression=opts.output_compression,
        partial_images=opts.partial_images,
        quality=opts.quality or "auto",
        background=opts.background or "auto",
        images=images,
        event_prefix=event_prefix,
    )


def job_meta(meta: RequestMeta, i: int) -> RequestMeta:
    """One request may start several jobs: each gets its own idempotency identity."""
    return msgspec.structs.replace(
        meta,
        idempotency_key=f"{meta.idempotency_key}#{i}" if meta.idempotency_key else None,
        fingerprint=f"{meta.fingerprint}#{i}" if meta.fingerprint else None,
    )


class _Results(msgspec.Struct, frozen=True):
    """The end of a request's progress: its (job, image) pairs."""

    pairs: list[tuple[Job, ImageRef]]


_WORKER_DONE = None  # what the worker puts in its queue last


class ImageServing:
    def __init__(self, service: JobService, store: ImageStore, catalog: ModelCatalog, shared: SharedImages | None = None) -> None:
        self.service = service
        self.store = store
        self.catalog = catalog
        # conversions and converted copies, shared with every request on the same job
        self.shared = shared or SharedImages.for_store(store)

    # --- jobs -----------------------------------------------------------------------------------

    async def submit(self, plan: ImagePlan, meta: RequestMeta) -> list[Job]:
        """Start ceil(n/4) grid jobs. Per-job idempotency keys keep retries from spending more."""
        jobs: list[Job] = []
        try:
            for i in range(plan.job_count):
                jobs.append(
                    await self.service.submit(
                        SubmitSpec(meta=job_meta(meta, i), action=Action.IMAGINE, prompt=plan.prompt, mode=plan.mode, bot=plan.bot, images=plan.images)
                    )
                )
        except EngineError as exc:
            if not jobs:
                raise from_engine(exc) from None
            # some grids were accepted: serve those rather than lose them
        return jobs

    async def _finish_grid(self, plan: ImagePlan, job: Job, owner: str, wanted: int, on_update: Callable[[Job], None] | None) -> list[tuple[Job, ImageRef]]:
        """Wait for a grid, then (hd) upscale the wanted tiles. Returns (job, image) pairs."""
        final = await self._follow(job, owner, on_update)
        if not plan.upscale:
            return _tiles(final, wanted)
        if final.status is not JobStatus.SUCCESS:
            raise from_failed_job(final)
        upscales = [self._upscale(final, i, owner, on_update) for i in range(1, wanted + 1)]
        return list(await asyncio.gather(*upscales))

    async def _upscale(self, grid: Job, index: int, owner: str, on_update: Callable[[Job], None] | None) -> tuple[Job, ImageRef]:
        u = await self._press(grid, owner, lambda a: a.action is Action.UPSCALE and a.index == index, on_update)
        if u is None:
            return grid, grid.images[index - 1]
        subtle = await self._press(u, owner, lambda a: a.action is Action.UPSCALE_SUBTLE, on_update)
        best = subtle or u
        assert best.image is not None
        return best, best.image

    async def _press(self, parent: Job, owner: str, want: Callable[..., bool], on_update: Callable[[Job], None] | None) -> Job | None:
        button = next((b for b in parent.buttons if b.custom_id and (p := parse_custom_id(b.custom_id)) and want(p)), None)
        if button is None or button.custom_id is None:
            return None
        try:
            child = await self.service.act(ActSpec(meta=RequestMeta(owner=owner), parent_id=parent.id, custom_id=button.custom_id))
        except EngineError as exc:
            raise from_engine(exc) from None
        done = await self._follow(child, owner, on_update)
        if done.status is not JobStatus.SUCCESS:
            raise from_failed_job(done)
        return done

    async def _follow(self, job: Job, owner: str, on_update: Callable[[Job], None] | None) -> Job:
        last = job
        async for snapshot in self.service.watch(job.id, owner):
            last = snapshot
            if on_update is not None:
                on_update(snapshot)
        if last.status.finished:
            self.shared.job_ended(last.id)
        return last

    async def results(self, plan: ImagePlan, jobs: Sequence[Job], owner: str, on_update: Callable[[Job], None] | None = None) -> list[tuple[Job, ImageRef]]:
        wanted = [min(GRID, plan.n - i * GRID) for i in range(len(jobs))]
        groups = await asyncio.gather(*(self._finish_grid(plan, j, owner, w, on_update) for j, w in zip(jobs, wanted)))
        return [pair for group in groups for pair in group]

    async def _progress(self, plan: ImagePlan, jobs: Sequence[Job], owner: str) -> AsyncIterator[Job | _Results]:
        """The request's jobs as they change, then its results. A stream that falls behind gets
        the newest snapshot of each job, not every step in between (JobService.watch coalesces
        likewise), so a slow client skips previews, never the end."""
        if len(jobs) == 1 and not plan.upscale:
            # the common case, followed in place: no worker task, no queue per stream
            final = jobs[0]
            async for snapshot in self.service.watch(final.id, owner):
                final = snapshot
                yield snapshot
            if final.status.finished:
                self.shared.job_ended(final.id)
            yield _Results(_tiles(final, min(GRID, plan.n)))
            return
        updates: asyncio.Queue[Job | None] = asyncio.Queue()

        async def run() -> list[tuple[Job, ImageRef]]:
            try:
                return await self.results(plan, jobs, owner, updates.put_nowait)
            finally:
                updates.put_nowait(_WORKER_DONE)

        worker = asyncio.create_task(run())
        try:
            done = False
            while not done:
                newest: dict[str, Job] = {}
                item = await updates.get()
                while True:
                    if item is _WORKER_DONE:
                        done = True
                    else:
                        newest.pop(item.id, None)
                        newest[item.id] = item
                    if updates.empty():
                        break
                    item = updates.get_nowait()
                for snapshot in newest.values():
                    yield snapshot
            yield _Results(await worker)
        finally:
            if not worker.done():
                # the client went away: the Midjourney jobs keep running and can be fetched later
                worker.cancel()

    # --- encoding -------------------------------------------------------------------------------

    async def _encoded(self, ref: ImageRef, plan: ImagePlan) -> Encoded:
        encoded = await self.shared.encoded(ref, plan.output_format, plan.compression)
        if encoded is None:
            raise OpenAIError(500, "A result image is missing from the image store.", type="server_error")
        return encoded

    async def _url(self, job: Job, ref: ImageRef, plan: ImagePlan, public_base: str) -> str:
        converted = await self.shared.stored(job.id, ref, plan.output_format, plan.compression)
        if converted is None:
            raise OpenAIError(500, "A result image is missing from the image store.", type="server_error")
        return image_url(public_base, converted.key)

    async def _datum(self, job: Job, ref: ImageRef, plan: ImagePlan, public_base: str) -> ImageData:
        revised = job.final_prompt or job.prompt
        if plan.response_format == "b64_json":
            return ImageData(b64_json=(await self._encoded(ref, plan)).b64_text, revised_prompt=revised, job_id=job.id)
        return ImageData(url=await self._url(job, ref, plan, public_base), revised_prompt=revised, job_id=job.id)

    # --- answers --------------------------------------------------------------------------------

    async def respond(self, plan: ImagePlan, jobs: Sequence[Job], owner: str, public_base: str) -> ImagesResponse:
        return await self.answer(plan, jobs, await self.results(plan, jobs, owner), public_base)

    async def answer(self, plan: ImagePlan, jobs: Sequence[Job], pairs: Sequence[tuple[Job, ImageRef]], public_base: str) -> ImagesResponse:
        data = [await self._datum(job, ref, plan, public_base) for job, ref in pairs]
        first = pairs[0][1] if pairs else None
        return ImagesResponse(
            created=int(time.time()),
            data=data,
            output_format=plan.output_format,
            size=f"{first.width}x{first.height}" if first else None,
            quality=plan.quality,
            background=plan.background,
            usage=_usage(len(data)),
            job_ids=[j.id for j in jobs],
        )

    def replay_marks(self, plan: ImagePlan, meta: RequestMeta, jobs: Sequence[Job], pairs: Sequence[tuple[Job, ImageRef]]) -> list[JobMark]:
        """What an answer to this request was made from, for giving it again to an idempotent retry
        (fast_lane.py): each grid as the retry's look-up by key finds it. Nothing for requests
        without an Idempotency-Key, for upscaled results (made from further jobs), or when not
        every grid was accepted."""
        if plan.upscale or not meta.idempotency_key or len(jobs) != plan.job_count:
            return []
        finals = {job.id: job for job, _ in pairs}
        out: list[JobMark] = []
        for i, job in enumerate(jobs):
            final = finals.get(job.id)
            mark = self.service.finished_mark(final) if final is not None else None
            key = job_meta(meta, i).idempotency_key
            if mark is None or key is None:
                return []
            out.append(JobMark(job.id, mark, owner=meta.owner, key=key))
        return out

    async def stream(self, plan: ImagePlan, jobs: Sequence[Job], owner: str, public_base: str) -> AsyncIterator[ServerSentEvent | bytes]:
        """partial_image events for previews (capped by partial_images), then one completed event
        per image; a failure becomes an `error` event (the SDK raises it).

        Every request watching the same job shares the work: an image is converted once per
        output format (and stored once, for its URL), and its base64 text is spliced into each
        stream's event as it is; per stream only the small rest of the event is encoded."""
        sent = 0
        seen: set[str] = set()
        pairs: list[tuple[Job, ImageRef]] = []
        try:
            # closed with the stream: a client that goes away stops the worker (not the jobs)
            async with contextlib.aclosing(self._progress(plan, jobs, owner)) as progress:
                async for item in progress:
                    if isinstance(item, _Results):
                        pairs = item.pairs
                        continue
                    preview = item.preview_image
                    if preview is None or preview.key in seen or item.status.finished:
                        continue
                    seen.add(preview.key)
                    if plan.partial_images is not None and sent >= plan.partial_images:
                        continue
                    encoded = await self._encoded(preview, plan)
                    event = PartialImageEvent(
                        type=f"{plan.event_prefix}.partial_image",
                        b64_json="",
                        partial_image_index=sent,
                        created_at=int(time.time()),
                        size=f"{preview.width}x{preview.height}",
                        quality=plan.quality,
                        background=plan.background,
                        output_format=plan.output_format,
                        job_id=item.id,
                        progress=item.progress,
                    )
                    sent += 1
                    yield sse_frame(event.type, event, "b64_json", encoded.b64)
            for i, (job, ref) in enumerate(pairs):
                encoded = await self._encoded(ref, plan)
                done = CompletedImageEvent(
                    type=f"{plan.event_prefix}.completed",
                    b64_json="",
                    created_at=int(time.time()),
                    size=f"{ref.width}x{ref.height}",
                    quality=plan.quality,
                    background=plan.background,
                    output_format=plan.output_format,
                    usage=_usage(1),
                    job_id=job.id,
                    url=await self._url(job, ref, plan, public_base),
                    revised_prompt=job.final_prompt or job.prompt,
                    index=i,
                )
                yield sse_frame(done.type, done, "b64_json", encoded.b64)
        except OpenAIError as exc:
            yield ServerSentEvent(data=msgspec.json.encode(exc.envelope()).decode(), event="error")
        except ServiceClosing:
            ids = ", ".join(j.id for j in jobs)
            closing = OpenAIError(
                503,
                f"The service is restarting; job {ids} keeps running. Send the request again with the same "
                "Idempotency-Key (or GET /v1/jobs/{id}) to get its result.",
                type="server_error",
                code="service_shutting_down",
            )
            yield ServerSentEvent(data=msgspec.json.encode(closing.envelope()).decode(), event="error")
        yield ServerSentEvent(data="[DONE]")


def _tiles(final: Job, wanted: int) -> list[tuple[Job, ImageRef]]:
    """A finished grid's first `wanted` images (a failed job raises its OpenAI error)."""
    if final.status is not JobStatus.SUCCESS:
        raise from_failed_job(final)
    return [(final, ref) for ref in final.images[:wanted]]


def _usage(images: int) -> dict[str, object]:
    # Midjourney does not count tokens; report the images so clients that sum usage get numbers.
    return {"total_tokens": 0, "input_tokens": 0, "output_tokens": 0, "images": images}
