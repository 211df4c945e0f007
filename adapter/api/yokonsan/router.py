"""The yokonsan/midjourney-api routes: `/v1/api/trigger/*`.

Handlers authenticate, decode and hand over to YokonsanServing. Keys as on every front door:
`Authorization: Bearer <key>` (or a bare `Authorization: <key>`); keyless on loopback.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, TypeVar

from litestar import Request, Router, post, route
from litestar.handlers import HTTPRouteHandler
from litestar.params import FromPath

from adapter.api.common.auth import bearer_or_bare
from adapter.api.common.bodies import FileField, body_operation, decode_json
from adapter.api.common.multipart import FilePart, MultipartError, MultipartLimits, read_multipart
from adapter.api.context import ctx_of, request_meta
from adapter.api.yokonsan.errors import EXCEPTION_HANDLERS, params, responses
from adapter.api.yokonsan.protocol import (
    QueueReleaseIn,
    SendMessageIn,
    SendMessageResponse,
    TriggerDescribeIn,
    TriggerExpandIn,
    TriggerImagineIn,
    TriggerResetIn,
    TriggerResponse,
    TriggerUVIn,
    TriggerZoomOutIn,
    UploadForm,
    UploadResponse,
)
from adapter.api.yokonsan.serving import YokonsanServing
from adapter.engine.specs import RequestMeta

TAGS = ["yokonsan/midjourney-api"]
T = TypeVar("T")


def serving_of(request: Request[Any, Any, Any]) -> YokonsanServing:
    return ctx_of(request).yokonsan_serving


def owner_of(request: Request[Any, Any, Any]) -> str:
    owner = ctx_of(request).keys.owner(bearer_or_bare(request.headers.get("authorization")))
    if owner is None:
        raise params("Missing or wrong API key: send it as 'Authorization: Bearer <key>'.", status=401)
    return owner


async def _decode(request: Request[Any, Any, Any], model: type[T]) -> tuple[T, RequestMeta]:
    owner = owner_of(request)
    body = await request.body()
    # lax like pydantic: "index": "2" is accepted as 2
    return decode_json(body, model, strict=False), request_meta(request, owner, body)


async def imagine(request: Request[Any, Any, Any]) -> TriggerResponse:
    """Imagine `prompt`; `picurl` (or a URL at the start of the prompt) is an image prompt."""
    req, meta = await _decode(request, TriggerImagineIn)
    return await serving_of(request).imagine(req, meta)


async def upscale(request: Request[Any, Any, Any]) -> TriggerResponse:
    """U`index` of the grid message `msg_id` / `msg_hash`."""
    req, meta = await _decode(request, TriggerUVIn)
    return await serving_of(request).upscale(req, meta)


async def variation(request: Request[Any, Any, Any]) -> TriggerResponse:
    """V`index` of the grid message `msg_id` / `msg_hash`."""
    req, meta = await _decode(request, TriggerUVIn)
    return await serving_of(request).variation(req, meta)


async def solo_variation(request: Request[Any, Any, Any]) -> TriggerResponse:
    """Make Variations of an upscaled image."""
    req, meta = await _decode(request, TriggerUVIn)
    return await serving_of(request).solo(req, meta, "variation", "solo_variation")


async def solo_low_variation(request: Request[Any, Any, Any]) -> TriggerResponse:
    """Vary (Subtle) of an upscaled image."""
    req, meta = await _decode(request, TriggerUVIn)
    return await serving_of(request).solo(req, meta, "low_variation", "solo_low_variation")


async def solo_high_variation(request: Request[Any, Any, Any]) -> TriggerResponse:
    """Vary (Strong) of an upscaled image."""
    req, meta = await _decode(request, TriggerUVIn)
    return await serving_of(request).solo(req, meta, "high_variation", "solo_high_variation")


async def zoomout(request: Request[Any, Any, Any]) -> TriggerResponse:
    """Zoom Out of an upscaled image: `zoomout` 50 (2x) or 75 (1.5x)."""
    req, meta = await _decode(request, TriggerZoomOutIn)
    return await serving_of(request).zoomout(req, meta)


async def expand(request: Request[Any, Any, Any]) -> TriggerResponse:
    """Pan an upscaled image: `direction` left / right / up / down."""
    req, meta = await _decode(request, TriggerExpandIn)
    return await serving_of(request).expand(req, meta)


async def reset(request: Request[Any, Any, Any]) -> TriggerResponse:
    """Reroll the message `msg_id` / `msg_hash`."""
    req, meta = await _decode(request, TriggerResetIn)
    return await serving_of(request).reset(req, meta)


async def describe(request: Request[Any, Any, Any]) -> TriggerResponse:
    """Describe an image sent to /upload first (`upload_filename`, `trigger_id` from its answer)."""
    req, meta = await _decode(request, TriggerDescribeIn)
    return await serving_of(request).describe(req, meta)


async def queue_release(request: Request[Any, Any, Any]) -> TriggerResponse:
    """The project's bot calls this to free a queue slot; our scheduler frees its own slots,
    so it only answers as the project does."""
    req, _ = await _decode(request, QueueReleaseIn)
    return TriggerResponse(trigger_id=req.trigger_id)


async def message(request: Request[Any, Any, Any]) -> SendMessageResponse:
    """The link of an uploaded image, for image prompts (`picurl`, or `<link> <prompt>`)."""
    req, _ = await _decode(request, SendMessageIn)
    ctx = ctx_of(request)
    return await serving_of(request).message(req.upload_filename, ctx.public_base(request))


async def upload(request: Request[Any, Any, Any]) -> UploadResponse:
    """Upload an image (`file`, multipart) for /describe and /message."""
    owner_of(request)
    ctx = ctx_of(request)
    if request.content_type[0] != "multipart/form-data":
        raise params("request params error: this endpoint takes multipart/form-data with a 'file' part", status=400)
    max_bytes = ctx.settings.fetch_max_bytes
    limits = MultipartLimits(max_file_bytes=max_bytes, max_field_bytes=64 * 1024, max_total_bytes=max_bytes + 1024 * 1024, max_parts=8)
    try:
        form = await read_multipart(request, limits)
    except MultipartError as exc:
        raise params(f"request params error: {exc.message}", status=400) from None
    try:
        part = next((p for p in form.parts if isinstance(p, FilePart) and p.name == "file"), None)
        if part is None:
            raise params("request params error: the 'file' part is required", status=400)
        data = await part.read()
        content_type = part.content_type
    finally:
        form.close()
    return await serving_of(request).upload(data, content_type, ctx.public_base(request))


async def unknown_endpoint(request: Request[Any, Any, Any], rest: FromPath[str]) -> None:
    raise params(f"Not Found: no endpoint {request.url.path!r}", status=404)


_TRIGGER = "`{\"message\": \"success\", \"trigger_id\", \"trigger_type\"}`; results go to the callback URL."
_ROUTES: list[tuple[Callable[..., Any], str, type[Any], type[Any], str]] = [
    (imagine, "/imagine", TriggerImagineIn, TriggerResponse, _TRIGGER),
    (upscale, "/upscale", TriggerUVIn, TriggerResponse, _TRIGGER),
    (variation, "/variation", TriggerUVIn, TriggerResponse, _TRIGGER),
    (solo_variation, "/solo_variation", TriggerUVIn, TriggerResponse, _TRIGGER),
    (solo_low_variation, "/solo_low_variation", TriggerUVIn, TriggerResponse, _TRIGGER),
    (solo_high_variation, "/solo_high_variation", TriggerUVIn, TriggerResponse, _TRIGGER),
    (zoomout, "/zoomout", TriggerZoomOutIn, TriggerResponse, _TRIGGER),
    (expand, "/expand", TriggerExpandIn, TriggerResponse, _TRIGGER),
    (reset, "/reset", TriggerResetIn, TriggerResponse, _TRIGGER),
    (describe, "/describe", TriggerDescribeIn, TriggerResponse, _TRIGGER + " The prompts arrive as a `text` message."),
    (message, "/message", SendMessageIn, SendMessageResponse, "`{\"message\": \"success\", \"picurl\"}`: the image's link."),
    (queue_release, "/queue/release", QueueReleaseIn, TriggerResponse, "The trigger_id back (nothing to release here)."),
]


def _handlers() -> list[HTTPRouteHandler]:
    out: list[HTTPRouteHandler] = [
        post(path, status_code=200, tags=TAGS, operation_class=body_operation(body), responses=responses(success, text))(fn)
        for fn, path, body, success, text in _ROUTES
    ]
    out.append(
        post(
            "/upload",
            status_code=200,
            tags=TAGS,
            request_max_body_size=None,  # the multipart reader's own limits apply
            operation_class=body_operation(UploadForm, "multipart/form-data", files=(FileField("file", required=True, description="The image."),)),
            responses=responses(UploadResponse, "`upload_filename`, `upload_url` and a `trigger_id` for /describe."),
        )(upload)
    )
    out.append(route("/{rest:path}", http_method=["GET", "POST", "PUT", "PATCH", "DELETE"], include_in_schema=False)(unknown_endpoint))
    return out


def yokonsan_router() -> Router:
    return Router(path="/v1/api/trigger", route_handlers=_handlers(), exception_handlers=EXCEPTION_HANDLERS)
