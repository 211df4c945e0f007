"""/midjourney/videos: that API's video tasks, made of Midjourney's own video buttons on Discord.

What Discord offers (adapter/simulator/README.md, "Animate" and "Prompt video"): an upscaled v7
image has `Animate (High motion)` / `Animate (Low motion)`; `/imagine <image link> [text] --video
--motion low|high [--loop] [--end <link>]` animates any image. Either answers with a grid of
videos (an animated WebP, not a video file) under which `U1..U4`
(`MJ::JOB::video_virtual_upscale::<n>::<h>`) give each video as an MP4, and each MP4 offers
`Extend (High motion)` / `Extend (Low motion)`, which makes a new grid of longer videos.

That API answers one task with four MP4 links (`video_urls`), so a task here is:

1. the job that makes the grid: the Animate press (an `image_id`, or one of our URLs of an
   upscale, with no `prompt`, `loop` or `end_image_url`), a prompt video (any other first frame),
   or the Extend press of video `video_index` of task `video_id`. Its id is the `task_id` and
   the `video_id`.
2. the grid's U presses, one job per video, made by this door once the grid is done (idempotency
   key `acedata-video:<task>:<n>`, so a retry, a second waiter or a restart attaches to the same
   jobs instead of pressing again). The last one is pressed after the others have ended and
   carries the task's `callback_url` and the others' files, so its signed callback is the whole
   task's result. The grid's job carries the same URL for its failure only (FAILURE_ONLY): a
   grid that fails has no video to carry the callback.

Ids: `video_id` = `task_id` = the grid job's id (as /v1/jobs and /mj see it).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from typing import Any

import msgspec

from adapter.api.acedata import errors as E
from adapter.api.acedata.errors import AceError, bad_request, from_engine, job_error, not_found, not_offered
from adapter.api.acedata.protocol import ErrorDetail, VideoResult, VideosRequest
from adapter.api.acedata.tags import HOOK_FORMAT, TAG_ACTION
from adapter.backends.base import ImageInput
from adapter.domain.actions import Action, Mode
from adapter.domain.buttons import parse_custom_id
from adapter.domain.jobs import ImageRef, Job, JobStatus, is_grid_job
from adapter.domain.prompt import parse_prompt
from adapter.engine.errors import EngineError, JobNotFound
from adapter.engine.service import JobService
from adapter.engine.specs import ActSpec, RequestMeta, SubmitSpec
from adapter.engine.webhooks import FAILURE_ONLY, FINAL_ONLY, HOOK_EVENTS
from adapter.media.store import image_url, job_id_from_key, key_from_url

log = logging.getLogger(__name__)

TAG_KIND = "acedata_kind"  # "video" on a video task's job (the one that makes the grid)
TAG_CALLBACK = "acedata_callback"  # the task's callback_url, handed to its last video
TAG_COVER = "acedata_cover"  # the first frame: "<store key> <width> <height>"
TAG_VIDEO_OF = "acedata_video_of"  # on each video's job: the task's id
TAG_LAST = "acedata_last_video"  # on the last video's job: its callback is the task's result
TAG_VIDEOS = "acedata_videos"  # on the last video's job: the other videos' store keys
TAG_FAILED = "acedata_videos_failed"  # on the last video's job: why another video failed
VIDEO = "video"
VIDEO_UPSCALE_VERB = "video_virtual_upscale"
DEFAULT_TIMEOUT = 480
_EXTS = {"image/png": "png", "image/jpeg": "jpg", "image/webp": "webp", "image/gif": "gif"}

ImageLoader = Callable[[str, str], Awaitable[ImageInput]]


def is_video_task(job: Job) -> bool:
    return job.extra.get(TAG_KIND) == VIDEO


def video_key(task_id: str, n: int) -> str:
    return f"acedata-video:{task_id}:{n}"


def video_buttons(job: Job) -> list[tuple[int, str]]:
    """The grid's U buttons (one per video), by video number."""
    out: dict[int, str] = {}
    for b in job.buttons:
        parsed = parse_custom_id(b.custom_id) if b.custom_id else None
        if parsed is not None and parsed.action is Action.CUSTOM and parsed.verb == VIDEO_UPSCALE_VERB:
            out.setdefault(parsed.index, b.custom_id)
    return sorted(out.items())


def _animate_button(job: Job, motion: str, *, extend: bool) -> str | None:
    for b in job.buttons:
        parsed = parse_custom_id(b.custom_id) if b.custom_id else None
        if parsed is not None and parsed.action is Action.ANIMATE and parsed.extend is extend and parsed.motion == motion:
            return b.custom_id
    return None


def _cover_tag(ref: ImageRef | None) -> str | None:
    return f"{ref.key} {ref.width} {ref.height}" if ref is not None else None


def _cover(job: Job) -> tuple[str, int, int] | None:
    tag = job.extra.get(TAG_COVER)
    if tag:
        key, w, h = (tag.split(" ") + ["0", "0"])[:3]
        return key, int(w) if w.isdigit() else 0, int(h) if h.isdigit() else 0
    if job.inputs:  # a prompt video: the first frame the caller sent, as the engine kept it
        ref = job.inputs[0]
        return ref.key, ref.width, ref.height
    return None


def _with_cover(out: VideoResult, job: Job, base: str) -> VideoResult:
    if cover := _cover(job):
        out.image_url = image_url(base, cover[0])
        out.image_width = cover[1] or None
        out.image_height = cover[2] or None
    return out


def video_result(task: Job, videos: list[Job | None], base: str) -> VideoResult:
    """The task as that API shows it: the grid job, then its videos' jobs (None: not pressed
    yet). Progress: the grid's 0-90, the videos' 90-99, 100 once every MP4 is here."""
    out = _with_cover(VideoResult(success=True, task_id=task.id, video_id=task.id, progress=0, trace_id=task.id), task, base)
    if task.status in (JobStatus.FAILURE, JobStatus.CANCEL):
        out.success, out.error, out.progress = False, job_error(task), min(90, task.progress * 9 // 10)
        return out
    if task.status is not JobStatus.SUCCESS:
        out.progress = max(0, min(task.progress, 100)) * 9 // 10
        return out
    if not videos:
        out.progress = 90
        return out
    failed = next((v for v in videos if v is not None and v.status in (JobStatus.FAILURE, JobStatus.CANCEL)), None)
    if failed is not None:
        out.success, out.error, out.progress = False, job_error(failed), 90
        return out
    done = [v for v in videos if v is not None and v.status is JobStatus.SUCCESS and v.image is not None]
    if len(done) == len(videos):
        out.video_urls = [image_url(base, v.image.key) for v in done if v.image is not None]
        out.progress = 100
    else:
        out.progress = 90 + 9 * len(done) // len(videos)
    return out


def last_video_callback(job: Job, base: str) -> VideoResult:
    """The callback of a task's last video: the whole task's result (the other videos' files are
    on the job, put there when it was pressed)."""
    task_id = job.extra.get(TAG_VIDEO_OF, job.id)
    out = _with_cover(VideoResult(success=True, task_id=task_id, video_id=task_id, progress=90, trace_id=task_id), job, base)
    if reason := job.extra.get(TAG_FAILED):
        out.success, out.error = False, ErrorDetail(code=E.API_ERROR, message=reason)
    elif job.status in (JobStatus.FAILURE, JobStatus.CANCEL):
        out.success, out.error = False, job_error(job)
    elif job.status is JobStatus.SUCCESS and job.image is not None:
        keys = [k for k in job.extra.get(TAG_VIDEOS, "").split(" ") if k]
        out.video_urls = [image_url(base, k) for k in (*keys, job.image.key)]
        out.progress = 100
    else:
        out.progress = 90 + min(job.progress, 99) * 9 // 100
    return out


def render_video_job(job: Job, base: str) -> VideoResult | None:
    """A callback / webhook body for a job of a video task (None: not one)."""
    if job.extra.get(TAG_LAST):
        return last_video_callback(job, base)
    if is_video_task(job):
        return video_result(job, [], base)
    return None


def _motion(req: VideosRequest, prompt: str, default: str = "low") -> str:
    return req.motion or parse_prompt(prompt).flags.get("motion") or default


class VideoServing:
    def __init__(self, service: JobService, load_url: ImageLoader) -> None:
        self.service = service
        self._load_url = load_url  # a caller's URL -> image bytes (public addresses only)
        self._finishers: dict[str, asyncio.Task[None]] = {}

    # --- the request ----------------------------------------------------------------------------

    @staticmethod
    def _meta(meta: RequestMeta, action: str, cover: str | None) -> RequestMeta:
        # the grid's job reports its own failure only: its last video carries the success
        # (module docstring)
        tags = {**meta.tags, "hook_format": HOOK_FORMAT, HOOK_EVENTS: FAILURE_ONLY, TAG_ACTION: action, TAG_KIND: VIDEO}
        if meta.webhook_url:
            tags[TAG_CALLBACK] = meta.webhook_url
        if cover:
            tags[TAG_COVER] = cover
        return msgspec.structs.replace(meta, tags=tags)

    async def start(self, req: VideosRequest, meta: RequestMeta) -> Job:
        """Make the task's first job (the grid of videos); its videos follow (finish)."""
        mode = Mode(req.mode) if req.mode else None
        try:
            if req.action == "extend":
                return await self._extend(req, meta, mode)
            return await self._generate(req, meta, mode)
        except EngineError as exc:
            raise from_engine(exc) from None

    async def _generate(self, req: VideosRequest, meta: RequestMeta, mode: Mode | None) -> Job:
        if req.video_id or req.video_index is not None:
            raise bad_request("video_id and video_index are for action extend; action generate takes image_url (the first frame).")
        image_url_ = (req.image_url or "").strip()
        image_id = (req.image_id or "").strip()
        if image_url_ and image_id:
            raise bad_request("Give the first frame once: image_url or image_id, not both.")
        if not image_url_ and not image_id:
            raise bad_request("image_url is required for action generate: Midjourney makes videos from a first-frame image (there is no text-to-video).")
        prompt = (req.prompt or "").strip()
        plain = not prompt and not req.loop and not (req.end_image_url or "").strip()
        source: Job | None = None  # one of our results the frame is
        start: ImageInput | None = None
        if image_id:
            try:
                source = await self.service.get(image_id, meta.owner)
            except JobNotFound:
                raise not_found(f"Image {image_id!r}") from None
            self._check_source(source)
            if source.image is None:
                raise bad_request(f"Image {source.id} has no image to animate.")
            cover = source.image
        else:
            source, start, cover = await self._frame(image_url_, meta.owner)
        motion = _motion(req, prompt)
        if source is not None and plain and (button := _animate_button(source, motion, extend=False)):
            # Discord's own way: the Animate button of that upscale (its prompt, the chosen motion)
            spec = ActSpec(meta=self._meta(meta, "generate", _cover_tag(cover)), parent_id=source.id, custom_id=button, mode=mode)
            return await self.service.act(spec)
        if start is None:
            assert source is not None and source.image is not None
            start = await self._stored(source.image.key)
        text = await self._video_prompt(req, prompt, motion)
        return await self.service.submit(SubmitSpec(meta=self._meta(meta, "generate", None), action=Action.IMAGINE, prompt=text, mode=mode or Mode.FAST, images=(start,)))

    @staticmethod
    def _check_source(job: Job) -> None:
        if is_video_task(job) or job.extra.get(TAG_VIDEO_OF):
            raise bad_request(f"{job.id} is a video; to continue it use action extend with video_id (the video task's task_id) and video_index.")
        if job.status is not JobStatus.SUCCESS:
            raise bad_request(f"Image {job.id} is not ready ({job.status.value}); animate it once its task has succeeded.")
        if is_grid_job(job):
            raise bad_request(
                f"Image {job.id} is a grid of four images and Midjourney animates one image: upscale one first "
                "(POST /midjourney/imagine with action upscale1-4 and this image_id), then pass that result's image_id "
                "(or image_url) here; with split_images, one of its sub_image_urls works as image_url too."
            )

    async def _frame(self, url: str, owner: str) -> tuple[Job | None, ImageInput | None, ImageRef | None]:
        """The first frame by URL: one of our results (its job, when the caller's), one of our
        images (its bytes from the store), or anyone's image (fetched: public addresses only)."""
        if key := key_from_url(url):
            job_id = job_id_from_key(key)
            job: Job | None = None
            if job_id:
                try:
                    job = await self.service.get(job_id, owner)
                except JobNotFound:
                    job = None
            if job is not None and job.image is not None and job.image.key == key:
                self._check_source(job)
                return job, None, job.image
            return None, await self._stored(key), None
        return None, await self._load_url(url, "image_url"), None

    async def _stored(self, key: str) -> ImageInput:
        stored = await self.service.ingester.store.get(key)
        if stored is None or stored.content_type not in _EXTS:
            raise bad_request("image_url names an image this server no longer has (or not an image).")
        return ImageInput(filename=f"image.{_EXTS[stored.content_type]}", content_type=stored.content_type, data=stored.data)

    async def _video_prompt(self, req: VideosRequest, prompt: str, motion: str) -> str:
        """`[text] --video --motion <m> [--loop] [--end <link>]`: the engine puts the uploaded
        first frame's link in front."""
        flags = parse_prompt(prompt).flags
        parts = [prompt] if prompt else []
        if "video" not in flags:
            parts.append("--video")
        if "motion" not in flags:
            parts.append(f"--motion {motion}")
        elif req.motion and flags.get("motion") != req.motion:
            raise bad_request(f"motion {req.motion!r} and the prompt's --motion {flags.get('motion')!r} disagree.")
        if req.loop and "loop" not in flags:
            parts.append("--loop")
        end = (req.end_image_url or "").strip()
        if end:
            if "end" in flags:
                raise bad_request("end_image_url and the prompt's --end disagree: give the end frame once.")
            # Midjourney reads the end frame by its link (it is not uploaded like the first
            # frame): a link of ours is taken as it is, anyone else's must be a usable image
            if not key_from_url(end):
                await self._load_url(end, "end_image_url")
            parts.append(f"--end {end}")
        return " ".join(parts)

    async def _extend(self, req: VideosRequest, meta: RequestMeta, mode: Mode | None) -> Job:
        video_id = (req.video_id or "").strip()
        if not video_id:
            raise bad_request("video_id is required for action extend: the task_id (video_id) of an earlier video task.")
        if (req.image_url or "").strip() or (req.image_id or "").strip():
            raise bad_request("image_url / image_id are for action generate; extend takes video_id and video_index.")
        if (req.end_image_url or "").strip():
            raise not_offered("end_image_url is not offered with extend: Midjourney's Extend button takes no end frame.")
        if req.loop:
            raise not_offered("loop is not offered with extend: Midjourney's Extend button takes no --loop.")
        try:
            task = await self.service.get(video_id, meta.owner)
        except JobNotFound:
            raise not_found(f"Video {video_id!r}") from None
        if not is_video_task(task):
            raise bad_request(f"{video_id} is not a video task: video_id is the task_id of a /midjourney/videos task.")
        index = req.video_index or 0
        count = len(video_buttons(task))
        if task.status is not JobStatus.SUCCESS or not count:
            raise bad_request(f"Video task {task.id} is not ready ({task.status.value}); extend it once it has succeeded.")
        if index >= count:
            raise bad_request(f"video_index {index} is out of range: task {task.id} has {count} videos (0-{count - 1}).")
        video = await self.service.store.find_by_idempotency(meta.owner, video_key(task.id, index + 1))
        if video is None or video.status is not JobStatus.SUCCESS:
            raise bad_request(f"Video {index} of task {task.id} is not ready yet; retrieve the task until it shows video_urls.")
        motion = _motion(req, task.final_prompt or task.prompt)
        button = _animate_button(video, motion, extend=True)
        if button is None:
            raise bad_request(f"Video {index} of task {task.id} offers no Extend ({motion} motion).")
        prompt = (req.prompt or "").strip() or None
        cover = task.extra.get(TAG_COVER) or _cover_tag(task.inputs[0] if task.inputs else None)
        # `prompt` answers the Extend dialog Midjourney opens when the account has Remix on
        spec = ActSpec(meta=self._meta(meta, "extend", cover), parent_id=video.id, custom_id=button, prompt=prompt, mode=mode)
        return await self.service.act(spec)

    # --- the videos -------------------------------------------------------------------------------

    def finisher(self, task_id: str, owner: str) -> asyncio.Task[None]:
        """The one running task that presses a video task's U buttons once its grid is done."""
        running = self._finishers.get(task_id)
        if running is None or running.done():
            running = asyncio.get_running_loop().create_task(self._finish(task_id, owner), name=f"acedata-videos-{task_id}")
            self._finishers[task_id] = running
            running.add_done_callback(lambda t: self._finished(task_id, t))
        return running

    def _finished(self, task_id: str, task: asyncio.Task[None]) -> None:
        if self._finishers.get(task_id) is task:
            del self._finishers[task_id]
        if not task.cancelled() and (exc := task.exception()) is not None:
            log.warning("video task %s: its videos were not all pressed (%s); retrieving the task tries again", task_id, exc)

    async def _press(self, task: Job, n: int, custom_id: str, *, last: bool = False, earlier: list[Job] | None = None) -> Job:
        tags = {"hook_format": HOOK_FORMAT, HOOK_EVENTS: FINAL_ONLY, TAG_ACTION: VIDEO, TAG_VIDEO_OF: task.id}
        if cover := task.extra.get(TAG_COVER) or _cover_tag(task.inputs[0] if task.inputs else None):
            tags[TAG_COVER] = cover
        hook = None
        if last:
            tags[TAG_LAST] = "1"
            earlier = earlier or []
            tags[TAG_VIDEOS] = " ".join(j.image.key for j in earlier if j.image is not None)
            if failed := next((j for j in earlier if j.status is not JobStatus.SUCCESS or j.image is None), None):
                tags[TAG_FAILED] = f"Video {failed.index or '?'} of the task failed: {job_error(failed).message}"
            hook = task.extra.get(TAG_CALLBACK)
        meta = RequestMeta(owner=task.owner, idempotency_key=video_key(task.id, n), webhook_url=hook, tags=tags)
        return await self.service.act(ActSpec(meta=meta, parent_id=task.id, custom_id=custom_id))

    async def _finish(self, task_id: str, owner: str) -> None:
        task = await self.service.wait(task_id, owner)
        if task.status is not JobStatus.SUCCESS:
            return
        buttons = video_buttons(task)
        if not buttons:
            return
        *first, (last_n, last_id) = buttons
        pressed = [await self._press(task, n, cid) for n, cid in first]
        earlier = list(await asyncio.gather(*(self.service.wait(j.id, owner) for j in pressed)))
        job = await self._press(task, last_n, last_id, last=True, earlier=earlier)
        await self.service.wait(job.id, owner)

    async def videos_of(self, task: Job) -> list[Job | None]:
        if task.status is not JobStatus.SUCCESS:
            return []
        return [await self.service.store.find_by_idempotency(task.owner, video_key(task.id, n)) for n, _ in video_buttons(task)]

    async def view(self, task: Job, base: str, *, resume: bool = True) -> VideoResult:
        """The task now; a grid whose videos were never all pressed (a restart, a full queue)
        gets them pressed now."""
        videos = await self.videos_of(task)
        if resume and task.status is JobStatus.SUCCESS and videos and any(v is None for v in videos):
            self.finisher(task.id, task.owner)
        return video_result(task, videos, base)

    async def run(self, job: Job, owner: str, asynchronous: bool | None, timeout: int | None, base: str) -> Any:
        """`async`: the task id now (its videos follow in the background); else wait for them."""
        fin = self.finisher(job.id, owner)
        if asynchronous:
            return video_result(job, [], base)
        limit = timeout or DEFAULT_TIMEOUT
        try:
            await asyncio.wait_for(asyncio.shield(fin), float(limit))
        except TimeoutError:
            raise AceError(E.TIMEOUT, f"Task {job.id} did not end within {limit} s; it goes on: retrieve it by task_id.", task_id=job.id) from None
        except EngineError as exc:
            raise from_engine(exc) from None
        out = await self.view(await self.service.get(job.id, owner), base, resume=False)
        if not out.success and out.error is not None:
            raise AceError(out.error.code, out.error.message, task_id=job.id)
        if out.video_urls is None:
            raise AceError(E.API_ERROR, f"Task {job.id} made no videos (Midjourney offered no video buttons).", task_id=job.id)
        return out
