"""/midjourney API logic: that API's requests -> engine specs -> its answers.

Ids: a task's `task_id` and its `image_id` are both our job id. `image_id` names the image a
follow-up acts on; for a grid the index comes from the action itself (upscale2 = U2 of that
grid), for an upscaled image the action is one of its own buttons (upscale_2x, variation_subtle,
zoom_out_2x, pan_left, ...). A follow-up is pressing the matching button of that job, so a task
made here is the same job /v1/jobs and /mj see, and the other way round.

Trace ids: that API gives every request a `trace_id` (in its error bodies, echoed in its task
records) and its Tasks API retrieves a task by it. A request that makes (or attaches to) a task
answers the task's id as its trace id, so `retrieve` by `trace_id` needs no second index; other
refusals carry a fresh uuid.

NDJSON: with `accept: application/x-ndjson` (that API's OpenAPI document of /midjourney/imagine;
its web client AceDataCloud/Nexior sends that header and reads the body line by line, splitting on
CRLF and parsing the last line) /imagine answers one JSON object per line as the task moves: the
result shape with its progress so far, ending with the finished result, or with that API's error
object when the task fails or `timeout` passes. Lines end in CRLF (NDJSON allows it; a client
splitting on LF gets a trailing space JSON ignores).
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import re
from collections.abc import AsyncIterator
from typing import Any

import msgspec

from adapter.api.acedata import errors as E
from adapter.api.acedata.errors import AceError, bad_request, from_engine, job_error, not_found, not_offered
from adapter.api.acedata.protocol import (
    DescribeRequest,
    DescribeResult,
    ErrorDetail,
    ImagineRequest,
    ImagineResult,
    SeedRequest,
    SeedResult,
    ShortenRequest,
    ShortenResult,
    TaskBatch,
    TaskRecord,
    TaskRequestEcho,
    TasksRequest,
    TranslateRequest,
    TranslateResult,
    VideoResult,
    VideosRequest,
)
from adapter.api.acedata.tags import HOOK_FORMAT, TAG_ACTION, TAG_SPLIT
from adapter.api.acedata.videos import VideoServing, is_video_task, render_video_job
from adapter.backends.base import ImageInput
from adapter.domain.actions import Action, Mode
from adapter.domain.buttons import parse_custom_id
from adapter.domain.jobs import Job, JobStatus
from adapter.domain.prompt import parse_prompt
from adapter.engine.errors import ActionNotAvailable, EngineError, JobNotFound, SeedUnavailable, ServiceClosing
from adapter.engine.webhooks import FINAL_ONLY, HOOK_EVENTS
from adapter.engine.service import JobService
from adapter.engine.specs import ActSpec, RequestMeta, SubmitSpec
from adapter.engine.webhooks import hook_url_problem
from adapter.media.decoding import ImageError
from adapter.media.fetch import FetchError, ImageFetcher
from adapter.media.images import run_image_op
from adapter.media.masks import region_mask_png
from adapter.media.store import image_url

DEFAULT_TIMEOUT = 480  # seconds a call without `async` waits (that API's documented default)
_VERSION = re.compile(r"^(?:niji\s*)?[0-9](?:\.[0-9])?$")
_QUALITY = re.compile(r"^(?:\.25|\.5|0\.25|0\.5|1|2|4)$")
_EXTS = {"image/png": "png", "image/jpeg": "jpg", "image/webp": "webp", "image/gif": "gif"}
_TEXT_ACTIONS = (Action.DESCRIBE, Action.SHORTEN)
_TYPES = {Action.DESCRIBE: "describe", Action.SHORTEN: "shorten"}
_CUSTOM_VERBS = {"upsample_v5_2x": "upscale_2x", "upsample_v5_4x": "upscale_4x", "upsample_v6_2x": "upscale_2x", "upsample_v6_4x": "upscale_4x"}


def action_name(custom_id: str) -> str | None:
    """This API's name for what a button does (None: a button it has no name for)."""
    parsed = parse_custom_id(custom_id)
    if parsed is None:
        return None
    a = parsed.action
    if a is Action.UPSCALE and not parsed.solo:
        return f"upscale{parsed.index}"
    if a is Action.VARIATION and not parsed.solo:
        return f"variation{parsed.index}"
    if a is Action.REROLL:
        return "reroll"
    if a is Action.VARY_SUBTLE:
        return "variation_subtle"
    if a is Action.VARY_STRONG:
        return "variation_strong"
    if a is Action.VARY_REGION:
        return "variation_region"
    if a is Action.ZOOM and parsed.zoom in (2.0, 1.5):
        return "zoom_out_2x" if parsed.zoom == 2.0 else "zoom_out_1_5x"
    if a is Action.PAN and parsed.pan is not None:
        return f"pan_{parsed.pan.value}"
    if a is Action.UPSCALE_SUBTLE:
        return "upscale_2x"  # v6+ "Upscale (Subtle)": the image at twice the size
    if a is Action.CUSTOM and parsed.verb in _CUSTOM_VERBS:
        return _CUSTOM_VERBS[parsed.verb]
    return None


def actions_of(job: Job) -> dict[str, str]:
    """What may follow a finished job: this API's action name -> the button's custom_id."""
    out: dict[str, str] = {}
    if job.status is not JobStatus.SUCCESS:
        return out
    for b in job.buttons:
        if b.custom_id and (name := action_name(b.custom_id)) and name not in out:
            out[name] = b.custom_id
    return out


_error = job_error


def task_type(job: Job) -> str:
    return "videos" if is_video_task(job) else _TYPES.get(job.action, "imagine")


def result_of(job: Job, base: str) -> ImagineResult | DescribeResult | ShortenResult:
    """The job as this API answers it (the sync answer, a tasks `response`, a callback body)."""
    failed = job.status in (JobStatus.FAILURE, JobStatus.CANCEL)
    progress = 100 if job.status is JobStatus.SUCCESS else max(0, min(job.progress, 99))
    error = _error(job) if failed else None
    if job.action is Action.DESCRIBE:
        source = image_url(base, job.inputs[0].key) if job.inputs else job.extra.get("link")
        return DescribeResult(success=not failed, task_id=job.id, descriptions=list(job.result_texts), image_url=source, progress=progress, error=error, trace_id=job.id)
    if job.action is Action.SHORTEN:
        return ShortenResult(success=not failed, task_id=job.id, prompts=list(job.result_texts), progress=progress, error=error, trace_id=job.id)
    out = ImagineResult(success=not failed, task_id=job.id, image_id=job.id, progress=progress, error=error, trace_id=job.id)
    if job.status is JobStatus.SUCCESS and job.image is not None:
        url = image_url(base, job.image.key)
        out.image_url = out.raw_image_url = url
        out.image_width = out.raw_image_width = job.image.width or None
        out.image_height = out.raw_image_height = job.image.height or None
        if job.extra.get(TAG_SPLIT) and len(job.images) == 4:
            out.sub_image_urls = [image_url(base, ref.key) for ref in job.images]
        out.actions = list(actions_of(job))
    elif not job.status.finished and job.preview_image is not None:
        out.image_url = image_url(base, job.preview_image.key)
    return out


_encoder = msgspec.json.Encoder()


def callback_json(job: Job, base: str) -> bytes:
    """The body POSTed to a task's `callback_url`: its result as the tasks API shows it (a video
    task's comes from its last video's job: videos.py)."""
    video = render_video_job(job, base)
    return _encoder.encode(video if video is not None else result_of(job, base))


def _seconds(ms: int | None) -> float | None:
    return ms / 1000 if ms else None


def task_record(job: Job, base: str, video: VideoResult | None = None) -> TaskRecord:
    """`video`: a video task's result (its videos are other jobs: the caller looks them up)."""
    created = job.created_at / 1000
    finished = _seconds(job.finished_at) if job.status.finished else None
    echo = TaskRequestEcho(
        action=job.extra.get(TAG_ACTION) or ("generate" if job.action is Action.IMAGINE and not job.parent_id else job.action.value.lower()),
        prompt=(job.extra.get("user_prompt") or job.prompt or None) if job.action is not Action.DESCRIBE else None,
        image_id=job.parent_id,
        mode=job.mode.value,
        callback_url=job.webhook_url,
        trace_id=job.id,
    )
    if video is not None:
        echo.image_id = None
        done = video.progress == 100 or not video.success
        record = TaskRecord(
            id=job.id,
            type=task_type(job),
            created_at=created,
            started_at=_seconds(job.started_at),
            finished_at=finished if done else None,
            duration=round(finished - created, 3) if finished and done else None,
            request=echo,
            response=msgspec.to_builtins(video),
        )
        if done:
            record.success, record.error, record.image_url, record.video_urls = video.success, video.error, video.image_url, video.video_urls
        return record
    result = result_of(job, base)
    record = TaskRecord(
        id=job.id,
        type=task_type(job),
        image_id=job.id if isinstance(result, ImagineResult) else None,
        created_at=created,
        started_at=_seconds(job.started_at),
        finished_at=finished,
        duration=round(finished - created, 3) if finished else None,
        request=echo,
        response=msgspec.to_builtins(result),
    )
    if job.status.finished:
        record.success = result.success
        record.error = result.error
        record.image_url = result.image_url if isinstance(result, ImagineResult) else None
    return record


_CRLF = b"\r\n"


def _mask_bytes(value: str) -> bytes | None:
    """Bare base64 (that API's MCP server and CLI send the mask so); None: not base64."""
    text = "".join(value.split())
    if len(text) < 16 or len(text) % 4 not in (0, 2, 3):
        return None
    try:
        return base64.b64decode(text + "=" * (-len(text) % 4), validate=True)
    except (binascii.Error, ValueError):
        return None


class AceServing:
    def __init__(self, service: JobService, fetcher: ImageFetcher, *, webhook_allow_hosts: tuple[str, ...]) -> None:
        self.service = service
        self.fetcher = fetcher  # for URLs callers send: public addresses only
        self._hook_allow = webhook_allow_hosts
        self.video = VideoServing(service, self._image)

    # --- inputs -------------------------------------------------------------------------------

    def check_callback(self, url: str | None) -> str | None:
        if url is None or not url.strip():
            return None
        if problem := hook_url_problem(url.strip(), self._hook_allow):
            raise bad_request(f"callback_url {problem}")
        return url.strip()

    async def _image(self, url: str, field: str) -> ImageInput:
        if not url.strip().lower().startswith(("http://", "https://", "data:")):
            raise bad_request(f"{field} must be an http(s) URL of an image.")
        try:
            fetched = await self.fetcher.fetch(url.strip())
        except FetchError as exc:
            raise bad_request(f"{field} is not a usable image: {exc.message}.") from None
        return ImageInput(filename=f"image.{_EXTS.get(fetched.content_type, 'png')}", content_type=fetched.content_type, data=fetched.data)

    @staticmethod
    def _meta(meta: RequestMeta, action: str, *, split: bool = False) -> RequestMeta:
        # callback_url receives the result once, when the task ends, as that API sends it
        tags = {"hook_format": HOOK_FORMAT, HOOK_EVENTS: FINAL_ONLY, TAG_ACTION: action}
        if split:
            tags[TAG_SPLIT] = "1"
        return msgspec.structs.replace(meta, tags={**meta.tags, **tags})

    def _prompt(self, req: ImagineRequest) -> str:
        prompt = (req.prompt or "").strip()
        flags = parse_prompt(prompt).flags
        if req.version and req.version.strip():
            version = req.version.strip()
            if not _VERSION.match(version):
                raise bad_request("version must be a Midjourney model version such as '6.1', '7' or 'niji 6'.")
            if "v" not in flags and "version" not in flags and "niji" not in flags:
                prompt += f" --niji {version.split()[-1]}" if version.startswith("niji") else f" --v {version}"
        if req.quality and req.quality.strip():
            if not _QUALITY.match(req.quality.strip()):
                raise bad_request("quality must be one of .25, .5, 1, 2, 4.")
            if "q" not in flags and "quality" not in flags:
                prompt += f" --q {req.quality.strip()}"
        return prompt

    # --- engine -------------------------------------------------------------------------------

    async def _wait(self, job: Job, owner: str, timeout: int | None) -> Job:
        try:
            return await self.service.wait(job.id, owner, timeout=float(timeout or DEFAULT_TIMEOUT))
        except TimeoutError:
            raise AceError(E.TIMEOUT, f"Task {job.id} did not end within {timeout or DEFAULT_TIMEOUT} s; it goes on: retrieve it by task_id.", task_id=job.id) from None

    def _finished(self, job: Job, base: str) -> Any:
        if job.status is JobStatus.SUCCESS:
            return result_of(job, base)
        detail = _error(job)
        raise AceError(detail.code, detail.message, task_id=job.id)

    async def _run(self, job: Job, owner: str, asynchronous: bool | None, timeout: int | None, base: str, *, ndjson: bool = False) -> Any:
        if asynchronous:
            return result_of(job, base)
        if ndjson:
            return self._lines(job, owner, timeout, base)
        return self._finished(await self._wait(job, owner, timeout), base)

    async def _lines(self, job: Job, owner: str, timeout: int | None, base: str) -> AsyncIterator[bytes]:
        """The NDJSON body: a line per change of the task (progress, preview), then its end."""
        limit = float(timeout or DEFAULT_TIMEOUT)
        last = b""
        try:
            async with asyncio.timeout(limit):
                async for state in self.service.watch(job.id, owner):
                    if state.status.finished and state.status is not JobStatus.SUCCESS:
                        detail = _error(state)
                        yield _encoder.encode(AceError(detail.code, detail.message, task_id=job.id).body()) + _CRLF
                        return
                    line = _encoder.encode(result_of(state, base))
                    if line != last:
                        last = line
                        yield line + _CRLF
        except TimeoutError:
            err = AceError(E.TIMEOUT, f"Task {job.id} did not end within {timeout or DEFAULT_TIMEOUT} s; it goes on: retrieve it by task_id.", task_id=job.id)
            yield _encoder.encode(err.body()) + _CRLF
        except (JobNotFound, ServiceClosing):
            err = AceError(E.API_ERROR, f"Task {job.id} is no longer followed by this server (shutting down); retrieve it by task_id.", task_id=job.id)
            yield _encoder.encode(err.body()) + _CRLF

    # --- endpoints ----------------------------------------------------------------------------

    async def imagine(self, req: ImagineRequest, meta: RequestMeta, base: str, *, ndjson: bool = False) -> Any:
        """The result, or with `ndjson` (and no `async`) an async iterator of NDJSON lines."""
        ndjson = ndjson or bool(req.stream)
        if req.hd:
            raise not_offered("hd is not offered: Midjourney over Discord has no separate high-definition output; use upscale_2x / upscale_4x on an upscaled image.")
        if req.translation and self.service.translator is None:
            raise not_offered("translation is not available: this server has no translator configured (MJ_ADAPTER_TRANSLATE_BASE_URL).")
        meta = self._meta(meta, req.action, split=bool(req.split_images))
        mode = Mode(req.mode) if req.mode else None
        if req.action == "generate":
            if req.image_id:
                raise bad_request("image_id is for follow-up actions; action generate takes a prompt.")
            prompt = self._prompt(req)
            if not prompt:
                raise bad_request("prompt is required for action generate.")
            if mode is None:
                mode = next((Mode(f) for f in ("fast", "relax", "turbo") if f in parse_prompt(prompt).flags), Mode.FAST)
            try:
                job = await self.service.submit(SubmitSpec(meta=meta, action=Action.IMAGINE, prompt=prompt, mode=mode))
            except EngineError as exc:
                raise from_engine(exc) from None
            return await self._run(job, meta.owner, req.async_, req.timeout, base, ndjson=ndjson)
        return await self._follow_up(req, meta, mode, base, ndjson)

    async def _mask(self, value: str) -> bytes:
        value = value.strip()
        if value.lower().startswith(("http://", "https://", "data:")):
            data = (await self._image(value, "mask")).data
        elif (raw := _mask_bytes(value)) is not None:
            data = raw
        else:
            raise bad_request("mask must be an image URL, a data URL or base64 of an image (white marks the region to redo).")
        try:
            return await run_image_op(region_mask_png, data)
        except ImageError as exc:
            raise bad_request(f"mask is not a usable mask: {exc.message}") from None

    async def _follow_up(self, req: ImagineRequest, meta: RequestMeta, mode: Mode | None, base: str, ndjson: bool = False) -> Any:
        if not req.image_id or not req.image_id.strip():
            raise bad_request(f"image_id is required for action {req.action}: the image_id of an earlier result.")
        try:
            parent = await self.service.get(req.image_id.strip(), meta.owner)
        except JobNotFound:
            raise not_found(f"Image {req.image_id!r}") from None
        if parent.status is not JobStatus.SUCCESS:
            raise bad_request(f"Image {parent.id} is not ready ({parent.status.value}); act on it once its task has succeeded.")
        offered = actions_of(parent)
        custom_id = offered.get(req.action)
        if custom_id is None:
            names = ", ".join(offered) or "none"
            raise bad_request(f"Image {parent.id} does not offer {req.action} (it offers: {names}).")
        mask: bytes | None = None
        if req.action == "variation_region":
            if not req.mask or not req.mask.strip():
                raise bad_request("mask is required for variation_region: an image (URL or base64) where white marks the region to redo.")
            mask = await self._mask(req.mask)
        elif req.mask:
            raise bad_request("mask is only for action variation_region.")
        prompt = (req.prompt or "").strip() or None
        try:
            job = await self.service.act(ActSpec(meta=meta, parent_id=parent.id, custom_id=custom_id, prompt=prompt, mask_png=mask, mode=mode))
        except JobNotFound:
            raise not_found(f"Image {req.image_id!r}") from None
        except EngineError as exc:
            raise from_engine(exc) from None
        return await self._run(job, meta.owner, req.async_, req.timeout, base, ndjson=ndjson)

    async def videos(self, req: VideosRequest, meta: RequestMeta, base: str) -> VideoResult:
        job = await self.video.start(req, meta)
        return await self.video.run(job, meta.owner, req.async_, req.timeout, base)

    async def _record(self, job: Job, base: str) -> TaskRecord:
        if is_video_task(job):
            return task_record(job, base, await self.video.view(job, base))
        return task_record(job, base)

    async def describe(self, req: DescribeRequest, meta: RequestMeta, base: str) -> Any:
        image = await self._image(req.image_url, "image_url")
        try:
            job = await self.service.submit(SubmitSpec(meta=self._meta(meta, "describe"), action=Action.DESCRIBE, images=(image,)))
        except EngineError as exc:
            raise from_engine(exc) from None
        return await self._run(job, meta.owner, req.async_, req.timeout, base)

    async def shorten(self, req: ShortenRequest, meta: RequestMeta, base: str) -> Any:
        if not req.prompt.strip():
            raise bad_request("prompt is required.")
        try:
            job = await self.service.submit(SubmitSpec(meta=self._meta(meta, "shorten"), action=Action.SHORTEN, prompt=req.prompt.strip()))
        except EngineError as exc:
            raise from_engine(exc) from None
        return await self._run(job, meta.owner, req.async_, req.timeout, base)

    async def tasks(self, req: TasksRequest, owner: str, base: str) -> TaskRecord | TaskBatch:
        # a trace id of a task-making request is the task's id (module docstring)
        if req.action == "retrieve":
            wanted_id = (req.id or "").strip() or (req.trace_id or "").strip()
            if not wanted_id:
                raise bad_request("id (or trace_id) is required for action retrieve.")
            try:
                job = await self.service.get(wanted_id, owner)
            except JobNotFound:
                raise not_found(f"Task {wanted_id!r}") from None
            return await self._record(job, base)
        offset = req.offset or 0
        wanted = [i.strip() for i in (*(req.ids or ()), *(req.trace_ids or ())) if i.strip()]
        if not wanted:
            # neither ids nor trace_ids: the caller's newest tasks, paged (defaults 0 and 12)
            limit = req.limit or 12
            jobs = await self.service.store.list_jobs(owner=owner, limit=offset + limit)
            items = [await self._record(j, base) for j in jobs[offset : offset + limit]]
            return TaskBatch(items=items, count=len(items))
        found = {j.id: j for j in await self.service.store.get_many(list(dict.fromkeys(wanted))) if j.owner == owner}
        ordered = [found[i] for i in dict.fromkeys(wanted) if i in found]
        end = offset + req.limit if req.limit else None
        items = [await self._record(j, base) for j in ordered[offset:end]]
        return TaskBatch(items=items, count=len(items))

    async def seed(self, req: SeedRequest, owner: str) -> SeedResult:
        image_id = (req.image_id or req.task_id or "").strip()
        if not image_id:
            raise bad_request("image_id is required: the image_id of a finished result.")
        try:
            seed = await self.service.seed(image_id, owner)
        except JobNotFound:
            raise not_found(f"Image {image_id!r}") from None
        except ActionNotAvailable as exc:
            raise bad_request(exc.message) from None
        except SeedUnavailable as exc:
            raise AceError(E.API_ERROR, exc.message) from None
        except EngineError as exc:
            raise from_engine(exc) from None
        return SeedResult(seed=seed)

    async def translate(self, req: TranslateRequest) -> TranslateResult:
        translator = self.service.translator
        if translator is None:
            raise not_offered("Translation is not available: this server has no translator configured (set MJ_ADAPTER_TRANSLATE_BASE_URL).")
        if not req.content.strip():
            raise bad_request("content is required.")
        try:
            return TranslateResult(content=await translator.to_english(req.content.strip()))
        except EngineError as exc:
            raise from_engine(exc) from None



