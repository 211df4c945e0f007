"""POST /v1/images/edits and POST /v1/images/variations (multipart/form-data)."""

from __future__ import annotations

import hashlib
from typing import Any, TypeVar

import msgspec
from litestar import Request, Response, post

from adapter.api.common.bodies import FileField, body_operation, convert_fields, data_url_chars, json_body_limit
from adapter.api.common.multipart import MultipartError, MultipartLimits, TextField, read_multipart
from adapter.api.common.sse import SSEResponse
from adapter.api.context import ApiContext, ctx_of, request_meta
from adapter.api.openai.errors import invalid, responses
from adapter.api.openai.protocol_images import ImageEditRequest, ImagesResponse, ImageVariationRequest
from adapter.api.openai.router_images import openai_owner
from adapter.api.openai.serving_edits import Upload
from adapter.config import Settings

# Limits of one form, from the per-image byte cap (settings.fetch_max_bytes):
# - a file part: the cap;
# - a text field: a data URL of an image at the cap (base64 is 4/3 of the bytes, plus its header);
# - the whole body: the largest request we serve is one image and its mask, each at the cap, the
#   image perhaps sent as a data URL, plus the prompt and options. Several image prompts share
#   that budget (they are rarely more than a few MB each). With the default 20 MB cap: ~48 MB.
#   Files are spooled to disk, so unlike a JSON body this is not held in memory; the routes lift
#   the app's body cap (made for JSON) and this reader refuses what goes beyond while it arrives.
_MAX_PARTS = 32  # 5 images, a mask and the ~12 options, with room
_FILE_FIELDS = frozenset({"image", "image[]", "mask"})
T = TypeVar("T")


def _limits(settings: Settings) -> MultipartLimits:
    cap = settings.fetch_max_bytes
    text = data_url_chars(cap)
    return MultipartLimits(max_file_bytes=cap, max_field_bytes=text, max_total_bytes=cap + json_body_limit(cap), max_parts=_MAX_PARTS)


class _Form:
    """The multipart fields, read once: files as bytes, text as str."""

    def __init__(self, items: list[tuple[str, Upload | str]]) -> None:
        self.items = items

    def uploads(self, *names: str) -> tuple[Upload, ...]:
        out: list[Upload] = []
        for key, value in self.items:
            if key in names:
                if isinstance(value, str):
                    if not value.strip():
                        continue
                    out.append(Upload(url=value.strip()))
                else:
                    out.append(value)
        return tuple(out)

    def request(self, model: type[T]) -> T:
        """The text fields as `model` (numbers and booleans converted from text). Empty fields
        count as absent, as form posts send every input of a form."""
        fields: dict[str, str] = {}
        known = {f.encode_name for f in msgspec.structs.fields(model)}  # type: ignore[arg-type]
        for key, value in self.items:
            if key in _FILE_FIELDS:
                continue
            if not isinstance(value, str):
                if key in known:
                    raise invalid(f"{key} must be a text field, not a file.", key)
                continue  # a file under a name we do not use, like any unknown field
            if value.strip():
                fields[key] = value
        return convert_fields(fields, model)

    def fingerprint(self) -> bytes:
        """A stable digest of the request (multipart boundaries change on every SDK retry)."""
        h = hashlib.sha256()
        for key, value in sorted(self.items, key=lambda kv: kv[0]):
            h.update(key.encode() + b"\0")
            if isinstance(value, str):
                h.update(value.encode() + b"\1")
            else:
                h.update(hashlib.sha256(value.data or (value.url or "").encode()).digest() + b"\2")
        return h.digest()


async def _read_form(request: Request[Any, Any, Any]) -> _Form:
    if request.content_type[0] != "multipart/form-data":
        raise invalid("This endpoint takes multipart/form-data (the image as a file).")
    items: list[tuple[str, Upload | str]] = []
    try:
        form = await read_multipart(request, _limits(ctx_of(request).settings))
    except MultipartError as exc:
        raise invalid(exc.message, exc.field, code=exc.code) from None
    try:
        for part in form.parts:
            if isinstance(part, TextField):
                items.append((part.name, part.value))
            else:
                items.append((part.name, Upload(data=await part.read())))
    finally:
        form.close()
    return _Form(items)


async def _answer(request: Request[Any, Any, Any], ctx: ApiContext, owner: str, plan: Any, jobs: Any, stream: bool) -> Response[Any]:
    images = ctx.image_serving
    public = ctx.public_base(request)
    if stream:
        return SSEResponse(images.stream(plan, jobs, owner, public), keepalive_seconds=ctx.settings.stream_keepalive_seconds)
    answer = await images.respond(plan, jobs, owner, public)
    return Response(content=msgspec.json.encode(answer), media_type="application/json")


_IMAGE_FILES = FileField("image", many=True, description="The image(s): PNG, JPEG, WebP or GIF (also `image[]`; a URL as text works too).")


@post(
    "/v1/images/edits",
    status_code=200,
    request_max_body_size=None,  # the multipart reader's own limits apply
    operation_class=body_operation(
        ImageEditRequest,
        "multipart/form-data",
        files=(_IMAGE_FILES, FileField("mask", description="Transparent pixels mark the area to repaint (Vary (Region) of one of your results).")),
        also_answers=("text/event-stream",),
    ),
    responses=responses(ImagesResponse, "The images; with `stream: true` a text/event-stream of image_edit events."),
)
async def create_image_edit(request: Request[Any, Any, Any]) -> Response[Any]:
    """Without a mask the images become image prompts of a new imagine; with a mask on one of
    your results, Midjourney repaints that region (Vary (Region))."""
    owner = openai_owner(request)
    ctx: ApiContext = ctx_of(request)
    form = await _read_form(request)
    req = form.request(ImageEditRequest)
    masks = form.uploads("mask")
    if len(masks) > 1:
        raise invalid("Send at most one mask.", "mask")
    edits = ctx.edit_serving
    plan, jobs = await edits.edit(
        form.uploads("image", "image[]"),
        masks[0] if masks else None,
        req,
        request_meta(request, owner, form.fingerprint()),
    )
    return await _answer(request, ctx, owner, plan, jobs, bool(req.stream))


@post(
    "/v1/images/variations",
    status_code=200,
    request_max_body_size=None,  # the multipart reader's own limits apply
    operation_class=body_operation(ImageVariationRequest, "multipart/form-data", files=(_IMAGE_FILES,)),
    responses=responses(ImagesResponse, "The images."),
)
async def create_image_variation(request: Request[Any, Any, Any]) -> Response[Any]:
    """A variation of one of your results (V<i>, Vary (Strong), a reroll), or of any other
    image as an image prompt."""
    owner = openai_owner(request)
    ctx: ApiContext = ctx_of(request)
    form = await _read_form(request)
    req = form.request(ImageVariationRequest)
    edits = ctx.edit_serving
    plan, jobs = await edits.variation(form.uploads("image", "image[]"), req, request_meta(request, owner, form.fingerprint()))
    return await _answer(request, ctx, owner, plan, jobs, False)
