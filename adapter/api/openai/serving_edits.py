"""Images edits and variations -> Midjourney jobs; the answer is built by ImageServing, as for
generations.

- edit without a mask: imagine with the uploaded images (1-5) as image prompts;
- edit with a mask on one of the caller's results: Vary (Region) of it with the prompt. Vary
  (Region) exists only on a single (upscaled) image, so a grid tile is upscaled first (or an
  existing upscale of it is reused);
- a mask on any other image: a 400, since Midjourney can only repaint its own results;
- variation of one of the caller's results: V<i> of its grid for a tile, Vary (Strong) for a
  single image, a reroll for a whole grid; of any other image: imagine with it as image prompt.

`size` still sets `--ar` for new imagines; a variation or a repainted region keeps the aspect
of the image it starts from, so there it is ignored.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable

import msgspec

from adapter.api.openai.errors import OpenAIError, from_engine, from_failed_job, invalid
from adapter.api.openai.image_inputs import MAX_INPUT_IMAGES, ImageInputs, InputImage
from adapter.api.openai.result_lookup import OurResult, ResultFinder
from adapter.api.openai.protocol_images import ImageEditRequest, ImageOptions, ImageVariationRequest
from adapter.api.openai.serving_images import ImagePlan, job_meta, make_plan
from adapter.domain.actions import Action
from adapter.domain.buttons import ButtonAction, parse_custom_id
from adapter.domain.jobs import Job, JobStatus
from adapter.domain.models import ModelCatalog
from adapter.engine.errors import EngineError
from adapter.engine.service import JobService
from adapter.engine.specs import ActSpec, RequestMeta, SubmitSpec
from adapter.media.decoding import ImageError
from adapter.media.masks import MaskError, check_mask, midjourney_mask

_PLACEHOLDER = "variation"


class Upload(msgspec.Struct, frozen=True, kw_only=True):
    """One `image` / `image[]` / `mask` form value: a file, or a URL sent as text."""

    data: bytes | None = None
    url: str | None = None

    def __repr__(self) -> str:
        return f"Upload({len(self.data)} bytes)" if self.data is not None else "Upload(url)"


def _button(job: Job, want: Callable[[ButtonAction], bool]) -> str | None:
    for b in job.buttons:
        parsed = parse_custom_id(b.custom_id) if b.custom_id else None
        if parsed is not None and want(parsed):
            return b.custom_id
    return None


def _mask_refused(exc: ImageError) -> OpenAIError:
    return invalid(str(exc), "mask", code="image_too_large" if exc.code == "too_large" else "invalid_image")


class EditServing:
    def __init__(self, service: JobService, catalog: ModelCatalog, inputs: ImageInputs, finder: ResultFinder) -> None:
        self.service = service
        self.catalog = catalog
        self.inputs = inputs
        self.finder = finder

    # --- inputs -----------------------------------------------------------------------------------

    async def _load(self, upload: Upload, *, param: str, label: str) -> InputImage:
        if upload.url is not None:
            return await self.inputs.from_url(upload.url, param=param, label=label)
        return await self.inputs.from_upload(upload.data or b"", param=param, label=label)

    async def _images(self, uploads: tuple[Upload, ...], *, most: int) -> list[InputImage]:
        if not uploads:
            raise invalid("image is required: send it as a file in the `image` field (or several as `image[]`).", "image")
        if len(uploads) > most:
            raise invalid(f"At most {most} image{'s' if most > 1 else ''} can be sent here; got {len(uploads)}.", "image")
        label = (lambda i: "The image") if len(uploads) == 1 else (lambda i: f"Image {i}")
        return [await self._load(u, param="image", label=label(i)) for i, u in enumerate(uploads, start=1)]

    async def _ours(self, image: InputImage, owner: str) -> OurResult | None:
        if image.our_key is not None:
            return await self.finder.by_key(image.our_key, owner)
        return await self.finder.by_content(image.data, image.width, image.height, owner)

    def _plan(self, opts: ImageOptions, prompt: str, *, keep_size: bool = True, event_prefix: str = "image_generation") -> ImagePlan:
        # a repainted region keeps the aspect of its image: `size` means nothing there
        opts = opts if keep_size else msgspec.structs.replace(opts, size=None)
        return make_plan(self.catalog, opts, prompt, event_prefix=event_prefix)

    # --- jobs -------------------------------------------------------------------------------------

    async def _submit(self, plan: ImagePlan, meta: RequestMeta) -> list[Job]:
        return await self._each(plan, lambda m: self.service.submit(
            SubmitSpec(meta=m, action=Action.IMAGINE, prompt=plan.prompt, mode=plan.mode, bot=plan.bot, images=plan.images)
        ), meta)

    async def _act(self, plan: ImagePlan, meta: RequestMeta, parent: Job, custom_id: str, *, explicit_model: bool, prompt: str | None = None, mask: bytes | None = None) -> list[Job]:
        mode = plan.mode if explicit_model else None
        return await self._each(plan, lambda m: self.service.act(
            ActSpec(meta=m, parent_id=parent.id, custom_id=custom_id, prompt=prompt, mask_png=mask, mode=mode)
        ), meta)

    async def _each(self, plan: ImagePlan, start: Callable[[RequestMeta], object], meta: RequestMeta) -> list[Job]:
        """ceil(n/4) jobs; if a later one is refused, the accepted ones are still served."""
        jobs: list[Job] = []
        try:
            for i in range(plan.job_count):
                jobs.append(await start(job_meta(meta, i)))  # type: ignore[misc]
        except EngineError as exc:
            if not jobs:
                raise from_engine(exc) from None
        return jobs

    async def _upscaled(self, tile: OurResult, owner: str) -> Job:
        """The upscale of a grid tile: an existing one of the caller's, or a new U<i>."""
        grid, index = tile.job, tile.index or 1
        done = await self.service.store.list_jobs(owner=owner, parent_id=grid.id, action=Action.UPSCALE, status=JobStatus.SUCCESS, limit=20)
        for job in done:
            if job.index == index and job.image is not None:
                return job
        custom_id = _button(grid, lambda p: p.action is Action.UPSCALE and p.index == index)
        if custom_id is None:
            raise invalid(f"Image {index} of that grid cannot be upscaled (Midjourney offers no U{index} on it).", "image")
        try:
            job = await self.service.act(ActSpec(meta=RequestMeta(owner=owner), parent_id=grid.id, custom_id=custom_id))
        except EngineError as exc:
            raise from_engine(exc) from None
        final = await self.service.wait(job.id, owner)
        if final.status is not JobStatus.SUCCESS:
            raise from_failed_job(final)
        return final

    # --- the two endpoints ------------------------------------------------------------------------

    async def edit(
        self, uploads: tuple[Upload, ...], mask: Upload | None, req: ImageEditRequest, meta: RequestMeta
    ) -> tuple[ImagePlan, list[Job]]:
        images = await self._images(uploads, most=MAX_INPUT_IMAGES)
        if mask is None:
            plan = self._plan(req, req.prompt, event_prefix="image_edit")
            plan = msgspec.structs.replace(plan, images=tuple(img.as_input(i) for i, img in enumerate(images, start=1)))
            return plan, await self._submit(plan, meta)

        plan = self._plan(req, req.prompt, keep_size=False, event_prefix="image_edit")
        mask_image = await self._load(mask, param="mask", label="The mask")
        try:
            check_mask(mask_image.data)  # before an upscale job may be spent on its image
        except MaskError as exc:
            raise _mask_refused(exc) from None
        if len(images) > 1:
            raise invalid("A mask edits exactly one image: send the image to repaint alone with its mask.", "image")
        ours = await self._ours(images[0], meta.owner)
        if ours is None:
            raise invalid(
                "A mask can only be used on an image this service generated for your API key: Midjourney repaints a region "
                "(Vary (Region)) of its own results only, and this image is not one of them. Send the image without a mask "
                "to use it as an image prompt, or send one of your results (its file or its URL) with the mask.",
                "mask",
                code="mask_needs_own_result",
            )
        if ours.kind == "grid":
            raise invalid(
                "That image is a whole 2x2 grid; Vary (Region) works on one image. Send one of its four images instead.", "image"
            )
        target = ours.job if ours.kind == "single" else await self._upscaled(ours, meta.owner)
        custom_id = _button(target, lambda p: p.action is Action.VARY_REGION)
        if custom_id is None or target.image is None:
            raise invalid("Midjourney offers no Vary (Region) on that image.", "image")
        try:
            mask_png = await asyncio.to_thread(midjourney_mask, mask_image.data, target.image.width, target.image.height)
        except ImageError as exc:  # MaskError included
            raise _mask_refused(exc) from None
        jobs = await self._act(plan, meta, target, custom_id, explicit_model=req.model is not None, prompt=req.prompt.strip(), mask=mask_png)
        return plan, jobs

    async def variation(self, uploads: tuple[Upload, ...], opts: ImageVariationRequest, meta: RequestMeta) -> tuple[ImagePlan, list[Job]]:
        [image] = await self._images(uploads, most=1)
        plan = self._plan(opts, _PLACEHOLDER)
        ours = await self._ours(image, meta.owner)
        explicit = opts.model is not None
        if ours is not None:
            job = ours.job
            if ours.kind == "tile":
                custom_id = _button(job, lambda p: p.action is Action.VARIATION and p.index == ours.index)
            elif ours.kind == "single":
                custom_id = _button(job, lambda p: p.action is Action.VARY_STRONG) or _button(job, lambda p: p.action is Action.VARY_SUBTLE)
            else:
                custom_id = _button(job, lambda p: p.action is Action.REROLL)
            if custom_id is not None:
                return plan, await self._act(plan, meta, job, custom_id, explicit_model=explicit)
        # a foreign image (or one of ours without a variation button): an image prompt
        flags = plan.prompt[len(_PLACEHOLDER) :].strip()
        plan = msgspec.structs.replace(plan, prompt=flags, images=(image.as_input(1),))
        return plan, await self._submit(plan, meta)

