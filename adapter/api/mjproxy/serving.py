"""/mj API logic: midjourney-proxy requests -> engine specs -> the protocol's answers.

Handlers (router.py) only authenticate and decode; everything that decides lives here. One
engine serves every front door, so a task is just a job: a job made through the OpenAI API is a
task here, and a follow-up pressed here is a job there.
"""

from __future__ import annotations

import re
from typing import Any


from adapter.api.mjproxy import errors as E
from adapter.api.mjproxy.errors import MjError, from_engine, task_not_found, validation
from adapter.api.mjproxy.protocol import (
    ActionRequest,
    BlendRequest,
    ChangeRequest,
    DescribeRequest,
    ImagineRequest,
    ModalRequest,
    ShortenRequest,
    SimpleChangeRequest,
    SubmitResult,
    TaskView,
)
from adapter.api.mjproxy.views import BOT_TYPES, task_view
from adapter.backends.base import ImageInput
from adapter.domain.actions import Action, Bot, Mode
from adapter.domain.buttons import parse_custom_id
from adapter.domain.jobs import Job, JobStatus
from adapter.domain.prompt import MODE_FLAGS, parse_prompt, strip_flags
from adapter.engine.errors import ActionNotAvailable, EngineError, JobNotFound, SeedUnavailable
from adapter.engine.scheduler import Scheduler
from adapter.engine.service import JobService
from adapter.engine.specs import ActSpec, RequestMeta, SubmitSpec
from adapter.engine.webhooks import hook_url_problem
from adapter.media.fetch import FetchError, ImageFetcher
from adapter.media.decoding import ImageError
from adapter.media.images import run_image_op
from adapter.media.masks import region_mask_png
from adapter.media.store import ImageStore

MAX_IMAGE_PROMPTS = 5
_DIMENSIONS = {"PORTRAIT": "portrait", "SQUARE": "square", "LANDSCAPE": "landscape"}
_CHANGE_ACTIONS = {"UPSCALE": Action.UPSCALE, "VARIATION": Action.VARIATION, "REROLL": Action.REROLL}
_SIMPLE_CHANGE = re.compile(r"^\s*(?P<id>\S+)\s+(?:(?P<kind>[UuVv])(?P<index>[1-4])|(?P<reroll>[Rr]))\s*$")
# Describe / shorten answers offer one button per suggested prompt: pressing one imagines it.
_PICK = re.compile(r"^MJ::Job::(?:PicReader|PromptAnalyzer)::(?P<n>\d+)$")
_DESCRIBE_RETRY = "MJ::Picread::Retry"
_EXTS = {"image/png": "png", "image/jpeg": "jpg", "image/webp": "webp", "image/gif": "gif"}


def _submitted(job: Job, code: int = E.SUBMITTED, description: str = "Submitted", **properties: Any) -> SubmitResult:
    props: dict[str, Any] = {k: v for k, v in properties.items() if v is not None}
    if job.account_id:
        props.setdefault("discordInstanceId", job.account_id)
    return SubmitResult(code=code, description=description, result=job.id, properties=props)


class MjServing:
    def __init__(
        self, service: JobService, scheduler: Scheduler, images: ImageStore, fetcher: ImageFetcher, *, webhook_allow_hosts: tuple[str, ...]
    ) -> None:
        self.service = service
        self.scheduler = scheduler
        self.store = images
        self.fetcher = fetcher  # for URLs callers send: public addresses only
        self._hook_allow = webhook_allow_hosts

    # --- input checks -------------------------------------------------------------------------

    def check_hook(self, url: str | None) -> str | None:
        if url is None or not url.strip():
            return None
        problem = hook_url_problem(url.strip(), self._hook_allow)
        if problem:
            raise validation(f"notifyHook {problem}")
        return url.strip()

    async def image(self, value: object, field: str) -> ImageInput:
        if not isinstance(value, str) or not value.strip():
            raise validation(f"{field} must be a non-empty data URL (data:image/png;base64,...).")
        text = value.strip()
        if not text.lower().startswith(("data:", "http://", "https://")):
            # some clients send bare base64; the bytes are sniffed anyway
            text = "data:image/png;base64," + text
        try:
            fetched = await self.fetcher.fetch(text)
        except FetchError as exc:
            raise validation(f"{field} is not a usable image: {exc.message}.") from None
        ext = _EXTS.get(fetched.content_type, "png")
        return ImageInput(filename=f"image.{ext}", content_type=fetched.content_type, data=fetched.data)

    async def images(self, values: list[str], field: str) -> tuple[ImageInput, ...]:
        return tuple([await self.image(v, f"{field}[{i}]") for i, v in enumerate(values)])

    @staticmethod
    def bot(bot_type: str | None) -> Bot:
        if bot_type is None or not bot_type.strip():
            return Bot.MIDJOURNEY
        bot = BOT_TYPES.get(bot_type.strip().upper())
        if bot is None:
            raise validation(f"botType must be one of {', '.join(BOT_TYPES)}.")
        return bot

    @staticmethod
    def prompt_and_mode(prompt: str, forced: Mode | None) -> tuple[str, Mode]:
        """A mode prefix (/mj-relax/...) wins over a speed flag in the prompt, so the flag goes."""
        if forced is not None:
            return strip_flags(prompt, *MODE_FLAGS), forced
        flags = parse_prompt(prompt).flags
        return prompt, next((Mode(f) for f in MODE_FLAGS if f in flags), Mode.FAST)

    # --- engine calls -------------------------------------------------------------------------

    async def _submit(self, spec: SubmitSpec) -> Job:
        try:
            return await self.service.submit(spec)
        except EngineError as exc:
            raise self._refusal(exc, spec.prompt) from None

    async def _act(self, spec: ActSpec) -> Job:
        try:
            return await self.service.act(spec)
        except JobNotFound:
            raise task_not_found(spec.parent_id) from None
        except EngineError as exc:
            raise self._refusal(exc, spec.prompt) from None

    @staticmethod
    def _refusal(exc: EngineError, prompt: str | None) -> MjError:
        err = from_engine(exc)
        if err.code == E.BANNED_PROMPT and prompt:
            err.properties["promptEn"] = prompt
        return err

    async def _parent(self, task_id: str, owner: str) -> Job:
        if not task_id.strip():
            raise validation("taskId is required.")
        try:
            return await self.service.get(task_id.strip(), owner)
        except JobNotFound:
            raise task_not_found(task_id) from None

    def _accepted(self, job: Job) -> SubmitResult:
        """Code 1, or 22 with the number of jobs ahead when the job waits behind others."""
        if job.status is JobStatus.NOT_START and job.account_id and self.scheduler.is_queued(job.id):
            st = next((s for s in self.scheduler.statuses() if s.id == job.account_id), None)
            if st is not None and st.running >= st.concurrency:
                ahead = max(0, st.waiting - 1)
                return _submitted(job, E.IN_QUEUE, f"queued, {ahead} ahead", numberOfQueues=ahead)
        return _submitted(job)

    # --- submit endpoints ---------------------------------------------------------------------

    async def imagine(self, req: ImagineRequest, meta: RequestMeta, forced: Mode | None) -> SubmitResult:
        raw = [*req.base64_array, *([req.base64] if req.base64 else [])]
        if not req.prompt.strip():
            raise validation("prompt is required.")
        if len(raw) > MAX_IMAGE_PROMPTS:  # base64Array and base64 together
            raise validation(f"base64Array takes at most {MAX_IMAGE_PROMPTS} image prompts, got {len(raw)}.")
        bot = self.bot(req.bot_type)
        images = await self.images(raw, "base64Array")
        prompt, mode = self.prompt_and_mode(req.prompt.strip(), forced)
        job = await self._submit(SubmitSpec(meta=meta, action=Action.IMAGINE, prompt=prompt, mode=mode, bot=bot, images=images))
        return self._accepted(job)

    async def action(self, req: ActionRequest, meta: RequestMeta, forced: Mode | None) -> SubmitResult:
        if not req.custom_id.strip():
            raise validation("customId is required.")
        parent = await self._parent(req.task_id, meta.owner)
        custom_id = req.custom_id.strip()
        if parent.status is JobStatus.SUCCESS and any(b.custom_id == custom_id for b in parent.buttons):
            picked = await self._pick(parent, custom_id, meta, forced)
            if picked is not None:
                return picked
        job = await self._act(ActSpec(meta=meta, parent_id=parent.id, custom_id=custom_id, mode=forced, defer_modal=True))
        if job.status is JobStatus.MODAL:
            return _submitted(job, E.MODAL, "Waiting for window confirm", finalPrompt=job.prompt, remix=True)
        return self._accepted(job)

    async def _pick(self, parent: Job, custom_id: str, meta: RequestMeta, forced: Mode | None) -> SubmitResult | None:
        """Describe/shorten buttons are not Midjourney jobs on a message: a pick imagines the
        chosen prompt, a retry describes the same image again."""
        if parent.action not in (Action.DESCRIBE, Action.SHORTEN):
            return None
        mode = forced or parent.mode
        if m := _PICK.match(custom_id):
            n = int(m["n"])
            if not 1 <= n <= len(parent.result_texts):
                raise validation(f"Task {parent.id} has no suggestion #{n}.")
            prompt, mode = self.prompt_and_mode(parent.result_texts[n - 1], forced or mode)
            job = await self._submit(SubmitSpec(meta=meta, action=Action.IMAGINE, prompt=prompt, mode=mode, bot=parent.bot))
            return self._accepted(job)
        if custom_id == _DESCRIBE_RETRY and parent.action is Action.DESCRIBE and parent.inputs:
            stored = await self.store.get(parent.inputs[0].key)
            if stored is None:
                raise validation(f"The image of task {parent.id} is no longer stored.")
            image = ImageInput(filename="image.png", content_type=stored.content_type, data=stored.data)
            job = await self._submit(SubmitSpec(meta=meta, action=Action.DESCRIBE, mode=mode, bot=parent.bot, images=(image,)))
            return self._accepted(job)
        raise validation(f"The button {custom_id!r} cannot be pressed through this API; press one of the numbered picks.")

    async def modal(self, req: ModalRequest, owner: str) -> SubmitResult:
        job = await self._parent(req.task_id, owner)
        if job.status is not JobStatus.MODAL:
            raise validation(f"Task {job.id} is {job.status.value}, not waiting for a modal (code 21) answer.")
        mask: bytes | None = None
        if req.mask_base64 and req.mask_base64.strip():
            image = await self.image(req.mask_base64, "maskBase64")
            try:
                # decoded under the mask budget, whatever its format: a small file can still be
                # a huge picture
                mask = await run_image_op(region_mask_png, image.data)
            except ImageError as exc:
                raise validation(f"maskBase64 is not a usable mask: {exc.message}") from None
        if job.action is Action.VARY_REGION and mask is None:
            raise validation("maskBase64 is required for Vary (Region): a PNG where white marks the region to redo.")
        prompt = (req.prompt or "").strip()
        if not prompt:
            if job.action is Action.CUSTOM_ZOOM:
                raise validation("prompt is required for Custom Zoom (the prompt with --zoom 1-2).")
            prompt = job.prompt
        if job.action is Action.CUSTOM_ZOOM and "zoom" not in parse_prompt(prompt).flags:
            raise validation("Custom Zoom needs --zoom <1-2> in the prompt.")
        try:
            job = await self.service.submit_modal(job.id, owner, prompt, mask)
        except EngineError as exc:
            raise self._refusal(exc, prompt) from None
        return self._accepted(job)

    async def blend(self, req: BlendRequest, meta: RequestMeta, forced: Mode | None) -> SubmitResult:
        if not 2 <= len(req.base64_array) <= 5:
            raise validation(f"base64Array must hold 2 to 5 images, got {len(req.base64_array)}.")
        dims = _DIMENSIONS.get((req.dimensions or "SQUARE").strip().upper())
        if dims is None:
            raise validation(f"dimensions must be one of {', '.join(_DIMENSIONS)}.")
        bot = self.bot(req.bot_type)
        images = await self.images(req.base64_array, "base64Array")
        job = await self._submit(
            SubmitSpec(meta=meta, action=Action.BLEND, mode=forced or Mode.FAST, bot=bot, images=images, dimensions=dims)  # type: ignore[arg-type]
        )
        return self._accepted(job)

    async def describe(self, req: DescribeRequest, meta: RequestMeta, forced: Mode | None) -> SubmitResult:
        bot = self.bot(req.bot_type)
        if req.base64 and req.base64.strip():
            image = await self.image(req.base64, "base64")
        elif req.link and req.link.strip():
            image = await self.image(req.link.strip(), "link")
        else:
            raise validation("base64 is required: the image to describe, as a data URL.")
        job = await self._submit(SubmitSpec(meta=meta, action=Action.DESCRIBE, mode=forced or Mode.FAST, bot=bot, images=(image,)))
        return self._accepted(job)

    async def shorten(self, req: ShortenRequest, meta: RequestMeta, forced: Mode | None) -> SubmitResult:
        if not req.prompt.strip():
            raise validation("prompt is required.")
        bot = self.bot(req.bot_type)
        job = await self._submit(SubmitSpec(meta=meta, action=Action.SHORTEN, prompt=req.prompt.strip(), mode=forced or Mode.FAST, bot=bot))
        return self._accepted(job)

    async def change(self, req: ChangeRequest, meta: RequestMeta, forced: Mode | None) -> SubmitResult:
        action = _CHANGE_ACTIONS.get((req.action or "").strip().upper())
        if action is None:
            raise validation("action must be UPSCALE, VARIATION or REROLL.")
        if action is not Action.REROLL and req.index is None:
            raise validation("index must be 1 to 4 for UPSCALE and VARIATION.")
        parent = await self._parent(req.task_id, meta.owner)
        if parent.status is not JobStatus.SUCCESS:
            raise validation(f"Task {parent.id} is {parent.status.value}; changes need a finished task.")
        custom_id = _find_button(parent, action, req.index)
        if custom_id is None:
            label = "reroll" if action is Action.REROLL else f"{action.value[0]}{req.index}"
            raise validation(f"Task {parent.id} has no {label} button (only grids offer U1-U4 and V1-V4).")
        return await self.action(ActionRequest(task_id=parent.id, custom_id=custom_id, state=req.state, notify_hook=req.notify_hook), meta, forced)

    async def simple_change(self, req: SimpleChangeRequest, meta: RequestMeta, forced: Mode | None) -> SubmitResult:
        m = _SIMPLE_CHANGE.match(req.content or "")
        if m is None:
            raise validation("content must look like '<taskId> U2', '<taskId> V3' or '<taskId> R'.")
        if m["reroll"]:
            change = ChangeRequest(task_id=m["id"], action="REROLL", state=req.state, notify_hook=req.notify_hook)
        else:
            kind = "UPSCALE" if m["kind"].upper() == "U" else "VARIATION"
            change = ChangeRequest(task_id=m["id"], action=kind, index=int(m["index"]), state=req.state, notify_hook=req.notify_hook)
        return await self.change(change, meta, forced)

    # --- tasks --------------------------------------------------------------------------------

    async def task(self, task_id: str, owner: str) -> Job:
        try:
            return await self.service.get(task_id, owner)
        except JobNotFound:
            raise task_not_found(task_id, status=404) from None

    async def list_by_ids(self, ids: list[str], owner: str, base: str) -> list[TaskView]:
        wanted = [i.strip() for i in ids if isinstance(i, str) and i.strip()][:500]
        jobs = await self.service.store.get_many(wanted)
        return [task_view(j, base) for j in jobs if j.owner == owner]

    async def recent(self, owner: str, base: str, limit: int = 100) -> list[TaskView]:
        return [task_view(j, base) for j in await self.service.store.list_jobs(owner=owner, limit=limit)]

    async def cancel(self, task_id: str, owner: str) -> SubmitResult:
        job = await self._parent(task_id, owner)
        if job.status.finished:
            raise validation(f"Task {job.id} already ended ({job.status.value}); nothing to cancel.")
        job = await self.service.cancel(job.id, owner)
        if job.status is not JobStatus.CANCEL:
            raise validation(f"Task {job.id} ended ({job.status.value}) before it could be cancelled.")
        return SubmitResult(code=E.SUBMITTED, description="Cancelled", result=job.id, properties={"status": job.status.value})

    async def image_seed(self, task_id: str, owner: str) -> SubmitResult:
        """As midjourney-proxy Plus answers it: code 1 with the seed in `result`; 404 + code 3
        for an unknown task; 400 + code 4 for a task without an image (yet); code 9 when
        Midjourney did not tell the seed (the message is gone, no DM came in time)."""
        try:
            seed = await self.service.seed(task_id.strip(), owner)
        except JobNotFound:
            raise task_not_found(task_id, status=404) from None
        except ActionNotAvailable as exc:
            raise MjError(E.VALIDATION_ERROR, exc.message, status=400) from None
        except SeedUnavailable as exc:
            raise MjError(E.SYSTEM_ERROR, exc.message, properties={"errorCategory": exc.category.value}) from None
        except EngineError as exc:
            raise from_engine(exc) from None
        return SubmitResult(code=E.SUBMITTED, description="Success", result=seed)


def _find_button(parent: Job, action: Action, index: int | None) -> str | None:
    for b in parent.buttons:
        if not b.custom_id:
            continue
        parsed = parse_custom_id(b.custom_id)
        if parsed is None or parsed.action is not action:
            continue
        if action is Action.REROLL or (parsed.index == index and not parsed.solo):
            return b.custom_id
    return None
