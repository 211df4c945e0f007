"""The /midjourney routes (the hosted action-style "Midjourney Imagine API"). Handlers
authenticate (`Authorization: Bearer <key>`, the same keys and owners as every front door),
decode strictly and hand over to AceServing."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from litestar import Request, Router, post, route
from litestar.handlers import HTTPRouteHandler
from litestar.params import FromPath
from litestar.response import Stream

from adapter.api.acedata import errors as E
from adapter.api.acedata.errors import EXCEPTION_HANDLERS, AceError, responses
from adapter.api.acedata.protocol import (
    DescribeRequest,
    DescribeResult,
    ImagineRequest,
    ImagineResult,
    SeedRequest,
    SeedResult,
    ShortenRequest,
    ShortenResult,
    TaskBatch,
    TaskRecord,
    TasksRequest,
    TranslateRequest,
    TranslateResult,
    VideoResult,
    VideosRequest,
)
from adapter.api.acedata.serving import AceServing
from adapter.api.common.auth import bearer
from adapter.api.common.bodies import body_operation, decode_json
from adapter.api.context import ctx_of, request_meta
from adapter.engine.specs import RequestMeta

TAGS = ["midjourney-imagine-api"]


def serving_of(request: Request[Any, Any, Any]) -> AceServing:
    serving = ctx_of(request).ace_serving
    assert serving is not None
    return serving


def owner_of(request: Request[Any, Any, Any]) -> str:
    owner = ctx_of(request).keys.owner(bearer(request.headers.get("authorization")))
    if owner is None:
        raise AceError(E.INVALID_TOKEN, "Missing or wrong API key: send 'Authorization: Bearer <key>'.")
    return owner


async def _read(request: Request[Any, Any, Any], model: type[Any]) -> tuple[str, Any, bytes]:
    owner = owner_of(request)
    body = await request.body()
    return owner, decode_json(body, model), body


async def _job_call(request: Request[Any, Any, Any], model: type[Any]) -> tuple[AceServing, Any, RequestMeta, str]:
    owner, req, body = await _read(request, model)
    serving = serving_of(request)
    hook = serving.check_callback(getattr(req, "callback_url", None))
    return serving, req, request_meta(request, owner, body, webhook_url=hook), ctx_of(request).public_base(request)


NDJSON = "application/x-ndjson"


def wants_ndjson(request: Request[Any, Any, Any]) -> bool:
    return NDJSON in request.headers.get("accept", "").lower()


async def imagine(request: Request[Any, Any, Any]) -> Any:
    """`action` generate (with `prompt`) or a follow-up on `image_id`: upscale1-4, variation1-4,
    reroll on a grid; upscale_2x/4x, variation_subtle/strong/region (`mask`), zoom_out_2x/1_5x,
    pan_left/right/up/down on an upscaled image (whatever its `actions` list). Waits for the
    result unless `async` is true (then answers the `task_id` at once). With
    `accept: application/x-ndjson` (or `stream: true`) the wait is a stream of JSON lines, one
    per change of progress, the last being the result or the error object."""
    serving, req, meta, base = await _job_call(request, ImagineRequest)
    out = await serving.imagine(req, meta, base, ndjson=wants_ndjson(request))
    if hasattr(out, "__aiter__"):
        # the header too: the handler's JSON media type would otherwise win over the Stream's
        return Stream(out, media_type=NDJSON, headers={"Content-Type": NDJSON, "Cache-Control": "no-cache", "X-Accel-Buffering": "no"})
    return out


async def videos(request: Request[Any, Any, Any]) -> Any:
    """`action` generate: videos from a first frame (`image_url`, or `image_id` of an upscaled
    result: its Animate button), with `prompt`, `motion` (ours; low unless the prompt says
    `--motion high`), `loop`, `end_image_url`; `action` extend: `video_id` + `video_index`
    (Midjourney's Extend button on that video). Waits until every video's MP4 is here unless
    `async` is true (then answers the `task_id` at once)."""
    serving, req, meta, base = await _job_call(request, VideosRequest)
    return await serving.videos(req, meta, base)


async def describe(request: Request[Any, Any, Any]) -> Any:
    """Four prompts for the image at `image_url`."""
    serving, req, meta, base = await _job_call(request, DescribeRequest)
    return await serving.describe(req, meta, base)


async def shorten(request: Request[Any, Any, Any]) -> Any:
    """Midjourney's /shorten: shorter candidate `prompts` for `prompt`."""
    serving, req, meta, base = await _job_call(request, ShortenRequest)
    return await serving.shorten(req, meta, base)


async def tasks(request: Request[Any, Any, Any]) -> Any:
    """`retrieve` one task by `id`, or `retrieve_batch` by `ids` (the caller's tasks only)."""
    owner, req, _ = await _read(request, TasksRequest)
    return await serving_of(request).tasks(req, owner, ctx_of(request).public_base(request))


async def seed(request: Request[Any, Any, Any]) -> SeedResult:
    """Midjourney's seed of a finished result (`image_id`)."""
    owner, req, _ = await _read(request, SeedRequest)
    return await serving_of(request).seed(req, owner)


async def translate(request: Request[Any, Any, Any]) -> TranslateResult:
    """`content` in English, by the configured translator (api_not_implemented without one)."""
    _, req, _ = await _read(request, TranslateRequest)
    return await serving_of(request).translate(req)


# endpoints that API has for capabilities this server does not offer: said so in its format
_NOT_OFFERED = {
    "edits": "/midjourney/edits is not offered: Midjourney's image editor is part of its website, not of the Discord bot this server drives.",
}


async def unknown_endpoint(request: Request[Any, Any, Any], rest: FromPath[str]) -> None:
    if (message := _NOT_OFFERED.get(rest.strip("/"))) is not None:
        raise E.not_offered(message)
    raise AceError(E.NOT_FOUND, f"Unknown URL: this server has no /midjourney endpoint {request.url.path!r}.")


_ROUTES: list[tuple[Callable[..., Any], str, type[Any], Any, str]] = [
    (imagine, "/imagine", ImagineRequest, ImagineResult, "The finished result (or, with `async`, the task_id and its progress so far)."),
    (videos, "/videos", VideosRequest, VideoResult, "The finished videos (or, with `async`, the task_id and its progress so far)."),
    (describe, "/describe", DescribeRequest, DescribeResult, "The four descriptions."),
    (shorten, "/shorten", ShortenRequest, ShortenResult, "The shorter prompts."),
    (tasks, "/tasks", TasksRequest, TaskRecord | TaskBatch, "The task (retrieve) or `items` and `count` (retrieve_batch)."),
    (seed, "/seed", SeedRequest, SeedResult, "The seed."),
    (translate, "/translate", TranslateRequest, TranslateResult, "The English text."),
]


def ace_router() -> Router:
    handlers: list[HTTPRouteHandler] = [
        post(path, status_code=200, tags=TAGS, operation_class=body_operation(body), responses=responses(success, text))(fn)
        for fn, path, body, success, text in _ROUTES
    ]
    methods: list[Any] = ["GET", "POST", "PUT", "PATCH", "DELETE"]
    handlers.append(route("/{rest:path}", http_method=methods, include_in_schema=False)(unknown_endpoint))
    return Router(path="/midjourney", route_handlers=handlers, exception_handlers=EXCEPTION_HANDLERS)
