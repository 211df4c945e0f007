"""MCP tool logic over the one engine: arguments -> engine specs -> the job, followed to its end.

SDK-free on purpose: server.py maps these onto MCP tools (and their errors onto MCP tool
errors). Follow-ups are named the way a chat user names them ("U2", "vary strong", "zoom out 2x",
"pan left", "reroll"): the domain chat grammar turns a name into one of the job's buttons.
"""

from __future__ import annotations

import asyncio
import re
from collections.abc import Awaitable, Callable, Sequence

import msgspec

from adapter.api.openai.errors import OpenAIError
from adapter.api.openai.image_inputs import MAX_INPUT_IMAGES, ImageInputs
from adapter.backends.base import ImageInput
from adapter.config import Timeouts
from adapter.domain.actions import Action, Mode
from adapter.domain.chat_grammar import describe_available, parse_chat_command, resolve_button, resolve_label
from adapter.domain.jobs import Job, JobStatus, is_grid_job
from adapter.domain.prompt import MODE_FLAGS, parse_prompt, strip_flags
from adapter.engine.errors import EngineError, JobNotFound
from adapter.engine.service import JobService
from adapter.engine.specs import ActSpec, RequestMeta, SubmitSpec
from adapter.media.images import preview_async
from adapter.media.store import ImageStore, image_url

PREVIEW_SIDE = 512  # the image content sent back to the model: enough to judge, cheap in tokens
WAIT_SLACK_SECONDS = 30.0  # the engine fails a job at its mode's timeout; wait a little longer
_ASPECT = re.compile(r"^\s*(\d{1,3})\s*:\s*(\d{1,3})\s*$")
_CUSTOM_ID = re.compile(r"^MJ::\S+$")

Progress = Callable[[int, str], Awaitable[None]]


class ToolFailure(Exception):
    """A failure the calling model should read: bad arguments, a refused or failed job."""

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


class ToolImage(msgspec.Struct, frozen=True):
    data: bytes
    mime_type: str


class ToolOutput(msgspec.Struct, frozen=True):
    text: str
    images: list[ToolImage] = []


async def _no_progress(progress: int, message: str) -> None:
    return None


class McpTools:
    def __init__(self, service: JobService, inputs: ImageInputs, images: ImageStore, timeouts: Timeouts) -> None:
        self.service = service
        self.inputs = inputs
        self.images = images
        self.timeouts = timeouts

    # --- tools ----------------------------------------------------------------------------------

    async def imagine(
        self,
        owner: str,
        base: str,
        prompt: str,
        *,
        aspect_ratio: str | None = None,
        mode: str | None = None,
        image_urls: Sequence[str] = (),
        include_image: bool = True,
        progress: Progress = _no_progress,
    ) -> ToolOutput:
        text = prompt.strip()
        if not text:
            raise ToolFailure("prompt is required: describe the picture to make.")
        chosen = _mode(mode)
        if chosen is not None:
            text = strip_flags(text, *MODE_FLAGS)
        else:
            flags = parse_prompt(text).flags
            chosen = next((Mode(f) for f in MODE_FLAGS if f in flags), Mode.FAST)
        if aspect_ratio and aspect_ratio.strip():
            m = _ASPECT.match(aspect_ratio)
            if m is None or int(m[1]) < 1 or int(m[2]) < 1:
                raise ToolFailure(f"aspect_ratio must look like 16:9 or 2:3, not {aspect_ratio!r}.")
            text = strip_flags(text, "ar", "aspect") + f" --ar {int(m[1])}:{int(m[2])}"
        if len(image_urls) > MAX_INPUT_IMAGES:
            raise ToolFailure(f"At most {MAX_INPUT_IMAGES} image prompt URLs.")
        images = await self._load(image_urls, "image_urls")
        spec = SubmitSpec(meta=RequestMeta(owner=owner), action=Action.IMAGINE, prompt=text, mode=chosen, images=images)
        return await self._run(lambda: self.service.submit(spec), owner, base, include_image, progress)

    async def act(
        self,
        owner: str,
        base: str,
        job_id: str,
        action: str,
        *,
        prompt: str | None = None,
        include_image: bool = True,
        progress: Progress = _no_progress,
    ) -> ToolOutput:
        parent = await self._get(job_id, owner)
        if not parent.status.finished:
            raise ToolFailure(f"Job {parent.id} is still running ({parent.progress}%); wait for it (job_status) before acting on it.")
        if parent.status is not JobStatus.SUCCESS:
            raise ToolFailure(f"Job {parent.id} did not succeed ({parent.status.value}), so it has no buttons to press.")
        name = action.strip()
        if not name:
            raise ToolFailure("action is required, e.g. U2, V3, reroll, vary strong, zoom out 2x, pan left.")
        custom_id, remix = self._button(parent, name)
        remix = (prompt or "").strip() or remix
        spec = ActSpec(meta=RequestMeta(owner=owner), parent_id=parent.id, custom_id=custom_id, prompt=remix or None)
        return await self._run(lambda: self.service.act(spec), owner, base, include_image, progress)

    async def describe(self, owner: str, base: str, image_url_: str, *, progress: Progress = _no_progress) -> ToolOutput:
        images = await self._load([image_url_], "image_url")
        spec = SubmitSpec(meta=RequestMeta(owner=owner), action=Action.DESCRIBE, images=images)
        return await self._run(lambda: self.service.submit(spec), owner, base, False, progress)

    async def blend(
        self,
        owner: str,
        base: str,
        image_urls: Sequence[str],
        *,
        dimensions: str = "square",
        mode: str | None = None,
        include_image: bool = True,
        progress: Progress = _no_progress,
    ) -> ToolOutput:
        if not 2 <= len(image_urls) <= 5:
            raise ToolFailure("blend takes 2 to 5 image URLs.")
        if dimensions not in ("portrait", "square", "landscape"):
            raise ToolFailure("dimensions must be portrait, square or landscape.")
        images = await self._load(image_urls, "image_urls")
        spec = SubmitSpec(
            meta=RequestMeta(owner=owner), action=Action.BLEND, images=images, mode=_mode(mode) or Mode.FAST, dimensions=dimensions  # type: ignore[arg-type]
        )
        return await self._run(lambda: self.service.submit(spec), owner, base, include_image, progress)

    async def shorten(self, owner: str, base: str, prompt: str, *, progress: Progress = _no_progress) -> ToolOutput:
        if not prompt.strip():
            raise ToolFailure("prompt is required: the prompt to analyse.")
        spec = SubmitSpec(meta=RequestMeta(owner=owner), action=Action.SHORTEN, prompt=prompt.strip())
        return await self._run(lambda: self.service.submit(spec), owner, base, False, progress)

    async def job_status(self, owner: str, base: str, job_id: str) -> ToolOutput:
        return ToolOutput(text=render(await self._get(job_id, owner), base))

    # --- helpers --------------------------------------------------------------------------------

    async def _get(self, job_id: str, owner: str) -> Job:
        try:
            return await self.service.get(job_id.strip(), owner)
        except JobNotFound:
            raise ToolFailure(f"No job {job_id!r} (job ids come from imagine, act, describe, blend or shorten).") from None

    async def _load(self, urls: Sequence[str], param: str) -> tuple[ImageInput, ...]:
        loaded = []
        for i, url in enumerate(urls, start=1):
            try:
                img = await self.inputs.from_url(url.strip(), param=param, label=f"Image {i}")
            except OpenAIError as exc:
                raise ToolFailure(str(exc)) from None
            loaded.append(img.as_input(i))
        return tuple(loaded)

    @staticmethod
    def _button(job: Job, name: str) -> tuple[str, str | None]:
        """A follow-up's name -> (the button's custom_id, a remix prompt typed after a colon)."""
        if _CUSTOM_ID.match(name):
            if any(b.custom_id == name for b in job.buttons):
                return name, None
        else:
            cmd = parse_chat_command(name)
            button = resolve_button(cmd, job.buttons)
            remix = cmd.prompt or None
            if button is not None and cmd.action is Action.CUSTOM_ZOOM and cmd.zoom:
                remix = strip_flags(cmd.prompt or job.final_prompt or job.prompt, "zoom", *MODE_FLAGS) + f" --zoom {cmd.zoom:g}"
            if button is None:
                button = resolve_label(name, job.buttons)
                remix = None
            if button is not None and button.custom_id:
                return button.custom_id, remix
        labels = describe_available(job.buttons)
        offered = ", ".join(labels) if labels else "nothing"
        hint = ""
        if is_grid_job(job):
            hint = " It is a 2x2 grid: upscale one image first (U1-U4) to vary, zoom or pan it."
        elif labels:
            hint = " It is a single image: U1-U4 / V1-V4 only apply to grids."
        raise ToolFailure(f"Job {job.id} has no {name!r} button.{hint} It offers: {offered}.")

    async def _run(self, start: Callable[[], Awaitable[Job]], owner: str, base: str, include_image: bool, progress: Progress) -> ToolOutput:
        try:
            job = await start()
        except EngineError as exc:
            raise ToolFailure(exc.message) from None
        await progress(job.progress, f"job {job.id} {job.status.value.lower()}")
        limit = self.timeouts.for_mode(job.mode) + WAIT_SLACK_SECONDS
        last_key = (job.status, job.progress)
        try:
            async with asyncio.timeout(limit):
                async for snap in self.service.watch(job.id, owner):
                    job = snap
                    key = (snap.status, snap.progress)
                    if key != last_key and not snap.status.finished:
                        last_key = key
                        await progress(snap.progress, f"job {snap.id} {snap.status.value.lower()} {snap.progress}%")
        except TimeoutError:
            return ToolOutput(text=f"Job {job.id} is still running after {limit:.0f}s ({job.progress}%). Check it later with job_status.\n\n" + render(job, base))
        except EngineError:  # the service is shutting down: the job goes on
            return ToolOutput(text=f"The server is restarting; job {job.id} goes on. Check it later with job_status.\n\n" + render(job, base))
        if job.status is not JobStatus.SUCCESS:
            reason = job.fail_reason or job.status.value.lower()
            raise ToolFailure(f"Midjourney job {job.id} ended with {job.status.value}: {reason}")
        await progress(100, f"job {job.id} done")
        images: list[ToolImage] = []
        if include_image and job.image is not None:
            stored = await self.images.get(job.image.key)
            if stored is not None:
                images.append(ToolImage(data=await preview_async(stored.data, PREVIEW_SIDE, "webp"), mime_type="image/webp"))
        return ToolOutput(text=render(job, base), images=images)


def _mode(mode: str | None) -> Mode | None:
    if mode is None or not mode.strip():
        return None
    try:
        return Mode(mode.strip().lower())
    except ValueError:
        raise ToolFailure("mode must be fast, relax or turbo.") from None


def render(job: Job, base: str) -> str:
    """A job as text for a model: what it is, where its images are, what can follow."""
    lines = [f"job_id: {job.id}", f"status: {job.status.value}", f"action: {job.action.value}", f"mode: {job.mode.value}", f"progress: {job.progress}%"]
    if job.prompt:
        lines.append(f"prompt: {job.prompt}")
    if job.fail_reason:
        lines.append(f"error: {job.fail_reason}")
    if job.image is not None:
        lines.append(f"image_url: {image_url(base, job.image.key)}")
    if len(job.images) > 1:
        lines.append("images (1-4, left to right, top to bottom):")
        lines += [f"  {i}. {image_url(base, r.key)}" for i, r in enumerate(job.images, start=1)]
    if job.result_texts:
        lines.append("results:")
        lines += [f"  {i}. {t}" for i, t in enumerate(job.result_texts, start=1)]
    if job.status is JobStatus.SUCCESS:
        labels = describe_available(job.buttons)
        if labels:
            kind = "a 2x2 grid" if is_grid_job(job) else "a single image"
            lines.append(f"result: {kind}; available actions (pass one to act with this job_id): {', '.join(labels)}")
        if job.action in (Action.DESCRIBE, Action.SHORTEN) and job.result_texts:
            lines.append("Use one of the results as a prompt for imagine.")
    elif not job.status.finished:
        lines.append("still running: call job_status again in a little while.")
    return "\n".join(lines)
