"""yokonsan/midjourney-api logic over the one engine.

Mapping (the project's names -> ours):
- `trigger_id`: a business id the project embeds in the prompt (`<#id#>`) so that every
  Discord message of the task, follow-ups included, carries it back. Here it is kept on the job
  (`Job.state = "yokonsan:<trigger_id>"`) and echoed in every callback. /imagine answers our job
  id as its trigger_id; a follow-up keeps the trigger_id the caller sends (as the project does).
- `msg_id`: the Discord message id of a finished job (`Job.message_id`), the callback's `id`.
- `msg_hash`: Midjourney's job hash (`Job.job_hash`), the tail of the callback's attachment file
  name. A follow-up finds its parent by msg_id (and checks msg_hash), among the caller's jobs.
- the button pressed is the project's own custom_id (`MJ::JOB::upsample::<index>::<hash>`...).
"""

from __future__ import annotations

import re

from adapter.api.yokonsan.errors import from_engine, params
from adapter.api.yokonsan.protocol import (
    SendMessageResponse,
    TriggerDescribeIn,
    TriggerExpandIn,
    TriggerImagineIn,
    TriggerResetIn,
    TriggerResponse,
    TriggerUVIn,
    TriggerZoomOutIn,
    UploadResponse,
)
from adapter.backends.base import ImageInput
from adapter.domain.actions import Action, Mode
from adapter.domain.buttons import parse_custom_id
from adapter.domain.job_ids import new_job_id
from adapter.domain.jobs import Job, JobStatus
from adapter.domain.prompt import MODE_FLAGS, parse_prompt
from adapter.engine.errors import EngineError
from adapter.engine.service import JobService
from adapter.engine.specs import ActSpec, RequestMeta, SubmitSpec
from adapter.media.fetch import FetchError, ImageFetcher, sniff_image
from adapter.media.store import ImageStore, image_url, is_valid_key, job_id_from_key, key_from_url

STATE_PREFIX = "yokonsan:"
_EXTS = {"image/png": "png", "image/jpeg": "jpg", "image/webp": "webp", "image/gif": "gif"}
_DIRECTIONS = ("left", "right", "up", "down")
_ZOOMOUT = (50, 75)
_TRIGGER_ID = re.compile(r"^[A-Za-z0-9_.:-]{1,64}$")
_UPLOAD_JOB = "upload"  # the name stem of uploaded files in the image store


def trigger_id_of(job: Job) -> str | None:
    if job.state and job.state.startswith(STATE_PREFIX):
        return job.state[len(STATE_PREFIX) :]
    return None


def _answer(trigger_id: str, trigger_type: str) -> TriggerResponse:
    return TriggerResponse(trigger_id=trigger_id, trigger_type=trigger_type)


class YokonsanServing:
    def __init__(self, service: JobService, images: ImageStore, fetcher: ImageFetcher, *, max_bytes: int) -> None:
        self.service = service
        self.images = images
        self.fetcher = fetcher  # URLs callers send: public addresses only
        self.max_bytes = max_bytes

    # --- helpers ------------------------------------------------------------------------------

    @staticmethod
    def _meta(meta: RequestMeta, trigger_id: str) -> RequestMeta:
        return RequestMeta(
            owner=meta.owner,
            idempotency_key=meta.idempotency_key,
            fingerprint=meta.fingerprint,
            is_retry=meta.is_retry,
            state=STATE_PREFIX + trigger_id,
        )

    @staticmethod
    def _check_trigger_id(trigger_id: str) -> str:
        value = trigger_id.strip()
        if not _TRIGGER_ID.match(value):
            raise params("trigger_id must be 1-64 letters, digits or _ . : -")
        return value

    async def _own_image(self, url: str) -> ImageInput | None:
        """An image prompt URL that is one of ours (an /upload, a result): read from the store."""
        if key := key_from_url(url):
            stored = await self.images.get(key)
            if stored is not None:
                return ImageInput(filename=f"image.{_EXTS.get(stored.content_type, 'png')}", content_type=stored.content_type, data=stored.data)
        return None

    async def _parent(self, msg_id: str, msg_hash: str, owner: str) -> Job:
        msg_id, msg_hash = msg_id.strip(), msg_hash.strip()
        if not msg_id:
            raise params("msg_id is required")
        job = await self.service.store.find_by_message(msg_id)
        if job is None or job.owner != owner:
            raise params(f"message {msg_id} is unknown (or belongs to another key)")
        if msg_hash and job.job_hash and msg_hash != job.job_hash:
            raise params(f"msg_hash {msg_hash} is not the hash of message {msg_id}")
        if job.status is not JobStatus.SUCCESS:
            raise params(f"message {msg_id} is not finished ({job.status.value})")
        return job

    @staticmethod
    def _button(parent: Job, wanted: str) -> str:
        """The parent's button for the project's custom_id: the same id, else one that does the
        same thing (Midjourney has renamed a few over time)."""
        if any(b.custom_id == wanted for b in parent.buttons):
            return wanted
        want = parse_custom_id(wanted)
        if want is not None:
            for b in parent.buttons:
                got = parse_custom_id(b.custom_id) if b.custom_id else None
                if got is None or got.action is not want.action:
                    continue
                if (got.index, got.pan, got.zoom) == (want.index, want.pan, want.zoom) or want.action is Action.REROLL:
                    return b.custom_id
            if want.action is Action.VARIATION and want.solo:
                # /solo_variation presses "Make Variations" (MJ::JOB::variation::1::<hash>::SOLO),
                # which Midjourney replaced on upscales from v5.2 on by "Vary (Strong)", the same
                # strong variation of the one image
                for b in parent.buttons:
                    got = parse_custom_id(b.custom_id) if b.custom_id else None
                    if got is not None and got.action is Action.VARY_STRONG:
                        return b.custom_id
        offered = ", ".join(b.label or b.emoji or "?" for b in parent.buttons if b.custom_id) or "none"
        raise params(f"message {parent.message_id} has no such button (it offers: {offered})")

    async def _act(self, msg_id: str, msg_hash: str, trigger_id: str, custom_id: str, trigger_type: str, meta: RequestMeta) -> TriggerResponse:
        trigger_id = self._check_trigger_id(trigger_id)
        parent = await self._parent(msg_id, msg_hash, meta.owner)
        button = self._button(parent, custom_id.replace("{hash}", parent.job_hash or msg_hash.strip()))
        try:
            await self.service.act(ActSpec(meta=self._meta(meta, trigger_id), parent_id=parent.id, custom_id=button))
        except EngineError as exc:
            raise from_engine(exc) from None
        return _answer(trigger_id, trigger_type)

    # --- endpoints ----------------------------------------------------------------------------

    async def imagine(self, req: TriggerImagineIn, meta: RequestMeta) -> TriggerResponse:
        prompt, picurl = req.prompt.strip(), (req.picurl or "").strip() or None
        if not picurl and prompt.startswith(("http://", "https://")):
            picurl, _, prompt = prompt.partition(" ")
        if not prompt:
            raise params("request params error: prompt is required", status=400)
        images: tuple[ImageInput, ...] = ()
        if picurl:
            # ours: attached as an image prompt; any other URL goes in front of the prompt text,
            # as the project sends it (Midjourney fetches it, not us)
            own = await self._own_image(picurl)
            if own is not None:
                images = (own,)
            else:
                if not picurl.startswith(("http://", "https://")) or any(c.isspace() for c in picurl):
                    raise params("picurl must be an http(s) URL")
                prompt = f"{picurl} {prompt}"
        flags = parse_prompt(prompt).flags
        mode = next((Mode(f) for f in MODE_FLAGS if f in flags), Mode.FAST)
        # a fresh trigger_id (a stable alias kept on the job; the job id itself stays ours)
        trigger_id = new_job_id()
        try:
            job = await self.service.submit(SubmitSpec(meta=self._meta(meta, trigger_id), action=Action.IMAGINE, prompt=prompt, mode=mode, images=images))
        except EngineError as exc:
            raise from_engine(exc) from None
        return _answer(trigger_id_of(job) or trigger_id, "generate")

    async def upscale(self, req: TriggerUVIn, meta: RequestMeta) -> TriggerResponse:
        if not 1 <= req.index <= 4:
            raise params("index must be 1, 2, 3 or 4")
        return await self._act(req.msg_id, req.msg_hash, req.trigger_id, f"MJ::JOB::upsample::{req.index}::{{hash}}", "upscale", meta)

    async def variation(self, req: TriggerUVIn, meta: RequestMeta) -> TriggerResponse:
        if not 1 <= req.index <= 4:
            raise params("index must be 1, 2, 3 or 4")
        return await self._act(req.msg_id, req.msg_hash, req.trigger_id, f"MJ::JOB::variation::{req.index}::{{hash}}", "variation", meta)

    async def solo(self, req: TriggerUVIn, meta: RequestMeta, verb: str, trigger_type: str) -> TriggerResponse:
        return await self._act(req.msg_id, req.msg_hash, req.trigger_id, f"MJ::JOB::{verb}::1::{{hash}}::SOLO", trigger_type, meta)

    async def reset(self, req: TriggerResetIn, meta: RequestMeta) -> TriggerResponse:
        return await self._act(req.msg_id, req.msg_hash, req.trigger_id, "MJ::JOB::reroll::0::{hash}::SOLO", "reset", meta)

    async def expand(self, req: TriggerExpandIn, meta: RequestMeta) -> TriggerResponse:
        direction = req.direction.strip().lower()
        if direction not in _DIRECTIONS:
            raise params("direction must be left, right, up or down")
        return await self._act(req.msg_id, req.msg_hash, req.trigger_id, f"MJ::JOB::pan_{direction}::1::{{hash}}::SOLO", "expand", meta)

    async def zoomout(self, req: TriggerZoomOutIn, meta: RequestMeta) -> TriggerResponse:
        if req.zoomout not in _ZOOMOUT:
            raise params("zoomout must be 50 (2x) or 75 (1.5x)")
        return await self._act(req.msg_id, req.msg_hash, req.trigger_id, f"MJ::Outpaint::{req.zoomout}::1::{{hash}}::SOLO", "zoomout", meta)

    async def describe(self, req: TriggerDescribeIn, meta: RequestMeta) -> TriggerResponse:
        trigger_id = self._check_trigger_id(req.trigger_id)
        stored = await self._upload(req.upload_filename)
        image = ImageInput(filename=f"image.{_EXTS.get(stored[1], 'png')}", content_type=stored[1], data=stored[0])
        try:
            await self.service.submit(SubmitSpec(meta=self._meta(meta, trigger_id), action=Action.DESCRIBE, images=(image,)))
        except EngineError as exc:
            raise from_engine(exc) from None
        return _answer(trigger_id, "describe")

    # --- uploads ------------------------------------------------------------------------------

    async def upload(self, data: bytes, content_type: str | None, base: str) -> UploadResponse:
        """Kept in the image store under a fresh id; `upload_filename` is the store key (its
        unguessable token is the capability), `trigger_id` that id, `upload_url` its URL."""
        if content_type is not None and not content_type.startswith("image/"):
            raise params("must image")
        if not data:
            raise params("must image")
        if len(data) > self.max_bytes:
            raise params(f"the image is larger than {self.max_bytes} bytes")
        try:
            _fmt, mime, _w, _h = sniff_image(data, 64_000_000)
        except FetchError:
            raise params("must image") from None
        trigger_id = new_job_id()
        ref = await self.images.put(data, mime, job_id=trigger_id, name=_UPLOAD_JOB)
        return UploadResponse(upload_filename=ref.key, upload_url=image_url(base, ref.key), trigger_id=trigger_id)

    async def _upload(self, upload_filename: str) -> tuple[bytes, str]:
        key = upload_filename.strip()
        if not is_valid_key(key) or job_id_from_key(key) is None:
            raise params("upload_filename is not a file uploaded here")
        stored = await self.images.get(key)
        if stored is None:
            raise params("upload_filename is not a file uploaded here")
        return stored.data, stored.content_type

    async def message(self, upload_filename: str, base: str) -> SendMessageResponse:
        """The project posts the upload to Discord and answers its CDN link, for image prompts;
        our image URL serves the same purpose (and /imagine reads it straight from the store)."""
        await self._upload(upload_filename)
        return SendMessageResponse(picurl=image_url(base, upload_filename.strip()))
