"""GET /v1/jobs/{id}: a job as JSON (vendor extension, owner-scoped like everything else)."""

from __future__ import annotations

from typing import Any

import msgspec
from litestar import Request, get
from litestar.params import FromPath

from adapter.api.context import ctx_of
from adapter.api.openai.router_images import openai_owner
from adapter.media.store import image_url


class JobView(msgspec.Struct, omit_defaults=True):
    id: str
    object: str
    action: str
    status: str
    progress: int
    prompt: str
    final_prompt: str
    mode: str
    created_at: int
    parent_id: str | None = None
    index: int | None = None
    image_url: str | None = None
    image_urls: list[str] = []
    preview_url: str | None = None
    buttons: list[str] = []
    texts: list[str] = []
    error: dict[str, str] | None = None
    finished_at: int | None = None


@get("/v1/jobs/{job_id:str}")
async def get_job(request: Request[Any, Any, Any], job_id: FromPath[str]) -> JobView:
    owner = openai_owner(request)
    ctx = ctx_of(request)
    job = await ctx.service.get(job_id, owner)
    base = ctx.public_base(request)
    return JobView(
        id=job.id,
        object="midjourney.job",
        action=job.action.value,
        status=job.status.value,
        progress=job.progress,
        prompt=job.prompt,
        final_prompt=job.final_prompt,
        mode=job.mode.value,
        created_at=job.created_at,
        parent_id=job.parent_id,
        index=job.index,
        image_url=image_url(base, job.image.key) if job.image else None,
        image_urls=[image_url(base, r.key) for r in job.images],
        preview_url=image_url(base, job.preview_image.key) if job.preview_image else None,
        buttons=[b.custom_id for b in job.buttons if b.custom_id],
        texts=list(job.result_texts),
        error={"message": job.fail_reason or "", "category": job.error_category.value if job.error_category else ""} if job.fail_reason else None,
        finished_at=job.finished_at,
    )
