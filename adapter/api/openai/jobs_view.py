"""/v1/jobs (vendor extension, owner-scoped like everything else):

- `GET /v1/jobs/{id}`: a job as JSON, with the buttons its result offers (`actions`, each with
  Midjourney's own label, including buttons this adapter has no name for) and its seed once known;
- `POST /v1/jobs/{id}/actions` `{"custom_id", "prompt"?}`: press one of those buttons;
- `GET /v1/jobs/{id}/seed`: Midjourney's seed of a finished image (asked of Midjourney once).
"""

from __future__ import annotations

from typing import Annotated, Any

import msgspec
from litestar import Request, get, post
from litestar.params import FromPath

from adapter.api.common.bodies import CustomId, PromptText, body_operation, decode_json
from adapter.api.context import ctx_of, request_meta
from adapter.api.openai.errors import OpenAIError, invalid, responses
from adapter.api.openai.router_images import openai_owner
from adapter.domain.buttons import parse_custom_id
from adapter.domain.errors import ErrorCategory
from adapter.domain.jobs import Job
from adapter.engine.errors import SeedUnavailable
from adapter.engine.specs import ActSpec
from adapter.media.store import image_url


class JobAction(msgspec.Struct, omit_defaults=True):
    """A button of the result. `action` is what pressing it does, in this adapter's words;
    CUSTOM means a button it has no name for, pressed exactly as Midjourney offers it."""

    custom_id: str
    label: str = ""
    emoji: str | None = None
    action: str | None = None


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
    actions: list[JobAction] = []
    texts: list[str] = []
    seed: str | None = None
    error: dict[str, str] | None = None
    finished_at: int | None = None


class JobActionRequest(msgspec.Struct, kw_only=True):
    custom_id: Annotated[CustomId, msgspec.Meta(min_length=1)]
    prompt: PromptText | None = None  # the answer to the dialog the button opens


class SeedView(msgspec.Struct):
    id: str
    object: str
    seed: str


def job_view(job: Job, base: str) -> JobView:
    actions = []
    for b in job.buttons:
        if not b.custom_id:
            continue
        parsed = parse_custom_id(b.custom_id)
        actions.append(JobAction(custom_id=b.custom_id, label=b.label, emoji=b.emoji, action=parsed.action.value if parsed else None))
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
        buttons=[a.custom_id for a in actions],
        actions=actions,
        texts=list(job.result_texts),
        seed=job.seed,
        error={"message": job.fail_reason or "", "category": job.error_category.value if job.error_category else ""} if job.fail_reason else None,
        finished_at=job.finished_at,
    )


@get("/v1/jobs/{job_id:str}", responses=responses(JobView, "The job."))
async def get_job(request: Request[Any, Any, Any], job_id: FromPath[str]) -> JobView:
    """A job (any front door's): status, progress, images, the buttons its result offers."""
    owner = openai_owner(request)
    ctx = ctx_of(request)
    job = await ctx.service.get(job_id, owner)
    # a finished job's answer is given again to the same request without this handler (fast_lane.py)
    return ctx.answers.json(request, job_view(job, ctx.public_base(request)), ctx.answers.marks([job]) or ())  # type: ignore[return-value]


@post(
    "/v1/jobs/{job_id:str}/actions",
    status_code=200,
    operation_class=body_operation(JobActionRequest),
    responses=responses(JobView, "The new job."),
)
async def act_on_job(request: Request[Any, Any, Any], job_id: FromPath[str]) -> JobView:
    """Press a button of a finished job's result: any `custom_id` from its `actions`, also ones
    this adapter has no name for. `prompt` answers the dialog the button opens (remix, custom
    zoom with --zoom). Answers the new job; follow it with GET /v1/jobs/{id}."""
    owner = openai_owner(request)
    ctx = ctx_of(request)
    body = await request.body()
    req = decode_json(body, JobActionRequest)
    if not req.custom_id.strip():
        raise invalid("custom_id is required: one of the job's actions[].custom_id.", "custom_id")
    spec = ActSpec(meta=request_meta(request, owner, body), parent_id=job_id, custom_id=req.custom_id.strip(), prompt=(req.prompt or "").strip() or None)
    job = await ctx.service.act(spec)
    return job_view(job, ctx.public_base(request))


@get("/v1/jobs/{job_id:str}/seed", responses=responses(SeedView, "The seed."))
async def get_job_seed(request: Request[Any, Any, Any], job_id: FromPath[str]) -> SeedView:
    """Midjourney's seed of a finished image job (Midjourney tells it in a direct message when
    asked; the answer is kept, so only the first call waits for it)."""
    owner = openai_owner(request)
    ctx = ctx_of(request)
    try:
        seed = await ctx.service.seed(job_id, owner)
    except SeedUnavailable as exc:
        raise _seed_error(exc) from None
    return SeedView(id=job_id, object="midjourney.seed", seed=seed)


def _seed_error(exc: SeedUnavailable) -> OpenAIError:
    if exc.category is ErrorCategory.INVALID_REQUEST:
        return OpenAIError(400, exc.message, param="job_id", code="seed_unavailable")
    if exc.category is ErrorCategory.TIMEOUT:
        return OpenAIError(504, exc.message, type="server_error", code="timeout")
    if exc.category in (ErrorCategory.ACCOUNT, ErrorCategory.QUEUE_FULL):
        return OpenAIError(503, exc.message, type="server_error", code="no_account_available", headers={"Retry-After": "30"})
    return OpenAIError(502, exc.message, type="server_error", code="seed_unavailable")
