"""Wire models of the hosted action-style "Midjourney Imagine API" (zhishuyun, now AceDataCloud):
`POST /midjourney/{imagine,tasks,describe,shorten,seed,translate}`.

Field names and shapes follow that API's public documentation; values this server cannot honour
are refused with that API's error object (errors.py), never ignored silently.
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

import msgspec

from adapter.api.common.bodies import MAX_DATA_URL_CHARS, MAX_PROMPT_CHARS, NO_CONTROL

Prompt = Annotated[str, msgspec.Meta(max_length=MAX_PROMPT_CHARS, pattern=NO_CONTROL)]
Url = Annotated[str, msgspec.Meta(max_length=4096)]
Id = Annotated[str, msgspec.Meta(max_length=200)]
# that API's OpenAPI document calls `mask` an image URL; its MCP server and CLI send the mask as
# base64: either is taken (a URL, a data URL or bare base64 of a PNG/JPEG/WebP)
Mask = Annotated[str, msgspec.Meta(max_length=MAX_DATA_URL_CHARS)]
MAX_BATCH = 100  # retrieve_batch: ids / trace_ids per call, and `limit`

ImagineAction = Literal[
    "generate",
    "upscale1",
    "upscale2",
    "upscale3",
    "upscale4",
    "upscale_2x",
    "upscale_4x",
    "variation1",
    "variation2",
    "variation3",
    "variation4",
    "variation_subtle",
    "variation_strong",
    "variation_region",
    "reroll",
    "zoom_out_2x",
    "zoom_out_1_5x",
    "pan_left",
    "pan_right",
    "pan_up",
    "pan_down",
]


class ImagineRequest(msgspec.Struct, kw_only=True, forbid_unknown_fields=False):
    """`action` generate (default) needs `prompt`; every other action acts on `image_id` (the
    `image_id` of an earlier result). Without `async` the call answers when the task has ended."""

    action: ImagineAction = "generate"
    prompt: Prompt | None = None
    image_id: Id | None = None
    mask: Mask | None = None  # variation_region: the region to redo (white)
    mode: Literal["fast", "relax", "turbo"] | None = None
    translation: bool | None = None
    split_images: bool | None = None
    version: Annotated[str, msgspec.Meta(max_length=20)] | None = None
    quality: Annotated[str, msgspec.Meta(max_length=20)] | None = None
    hd: bool | None = None
    timeout: Annotated[int, msgspec.Meta(ge=1, le=3600)] | None = None
    callback_url: Url | None = None
    async_: bool | None = msgspec.field(default=None, name="async")
    # NDJSON progress lines: that API's documented switch is the `accept: application/x-ndjson`
    # header (OpenAPI document of /midjourney/imagine); its task records echo a `stream` field too
    stream: bool | None = None
    # billing hints of that API (V8 features); Midjourney reads the prompt's own flags
    style_reference: bool | None = None
    moodboard: bool | None = None


class VideosRequest(msgspec.Struct, kw_only=True, forbid_unknown_fields=False):
    """`action` generate (default): a video from a first frame, `image_url` (that API's field; one
    of this server's image URLs works too) or `image_id` (ours: the image_id of an upscaled
    result, whose own Animate button is pressed). `action` extend: `video_id` (the video task's
    id) and `video_index` (0-3, which of its `video_urls`). Without `async` the call answers when
    every video is ready."""

    action: Literal["generate", "extend"] = "generate"
    prompt: Prompt | None = None
    image_url: Url | None = None
    image_id: Id | None = None  # ours: animate an earlier result by its image_id
    end_image_url: Url | None = None
    video_id: Id | None = None
    video_index: Annotated[int, msgspec.Meta(ge=0, le=3)] | None = None
    mode: Literal["fast", "turbo"] | None = None
    resolution: Literal["480p", "720p"] | None = None
    loop: bool | None = None
    # ours: Midjourney's --motion (that API has no field for it; the prompt's own --motion works too)
    motion: Literal["high", "low"] | None = None  # same order as every other ("high", "low") Literal: typing caches equal Literals, so the first spelling wins everywhere
    timeout: Annotated[int, msgspec.Meta(ge=1, le=3600)] | None = None
    callback_url: Url | None = None
    async_: bool | None = msgspec.field(default=None, name="async")


class TasksRequest(msgspec.Struct, kw_only=True, forbid_unknown_fields=False):
    """`action` retrieve with `id` (or `trace_id`), or retrieve_batch with `ids` (and/or
    `trace_ids`); retrieve_batch with neither lists the caller's newest tasks. `offset` / `limit`
    page a batch (that API's defaults: 0 and 12)."""

    action: Literal["retrieve", "retrieve_batch"] = "retrieve"
    id: Id | None = None
    trace_id: Id | None = None
    ids: Annotated[list[Id], msgspec.Meta(max_length=MAX_BATCH)] | None = None
    trace_ids: Annotated[list[Id], msgspec.Meta(max_length=MAX_BATCH)] | None = None
    # None: not sent (a listing then takes that API's defaults 0 and 12; a batch of ids is
    # paged only when asked)
    offset: Annotated[int, msgspec.Meta(ge=0, le=10_000)] | None = None
    limit: Annotated[int, msgspec.Meta(ge=1, le=MAX_BATCH)] | None = None


class DescribeRequest(msgspec.Struct, kw_only=True, forbid_unknown_fields=False):
    image_url: Url
    callback_url: Url | None = None
    async_: bool | None = msgspec.field(default=None, name="async")
    timeout: Annotated[int, msgspec.Meta(ge=1, le=3600)] | None = None


class ShortenRequest(msgspec.Struct, kw_only=True, forbid_unknown_fields=False):
    prompt: Prompt
    callback_url: Url | None = None
    async_: bool | None = msgspec.field(default=None, name="async")
    timeout: Annotated[int, msgspec.Meta(ge=1, le=3600)] | None = None


class SeedRequest(msgspec.Struct, kw_only=True, forbid_unknown_fields=False):
    """The seed of a result: its `image_id` (documented, required); `task_id` (the same id here)
    is taken too."""

    image_id: Id | None = None
    task_id: Id | None = None


class TranslateRequest(msgspec.Struct, kw_only=True, forbid_unknown_fields=False):
    content: Prompt


# --- answers ------------------------------------------------------------------------------------


class ErrorDetail(msgspec.Struct, kw_only=True):
    code: str
    message: str


class ErrorBody(msgspec.Struct, kw_only=True, omit_defaults=True):
    """That API's failure: `success: false` and an `error` object; `task_id` when a task exists."""

    success: bool  # always false
    error: ErrorDetail
    task_id: str | None = None
    trace_id: str | None = None


class ImagineResult(msgspec.Struct, kw_only=True, omit_defaults=True):
    """A task's state: `image_id` is what follow-ups take; `actions` what may follow."""

    success: bool
    task_id: str
    image_id: str | None = None
    image_url: str | None = None
    image_width: int | None = None
    image_height: int | None = None
    raw_image_url: str | None = None
    raw_image_width: int | None = None
    raw_image_height: int | None = None
    sub_image_urls: list[str] | None = None
    progress: int
    actions: list[str] = []
    error: ErrorDetail | None = None
    trace_id: str | None = None  # the request's trace id: the task's id here (see serving.py)


class VideoResult(msgspec.Struct, kw_only=True, omit_defaults=True):
    """A video task (that API's Videos guide): `video_urls` the MP4 files, `video_id` what
    extend takes, `image_url` the first frame (the cover)."""

    success: bool
    task_id: str
    video_id: str | None = None
    video_urls: list[str] | None = None
    image_url: str | None = None
    image_width: int | None = None
    image_height: int | None = None
    progress: int
    error: ErrorDetail | None = None
    trace_id: str | None = None


class DescribeResult(msgspec.Struct, kw_only=True, omit_defaults=True):
    success: bool
    task_id: str
    descriptions: list[str] = []
    image_url: str | None = None
    progress: int
    error: ErrorDetail | None = None
    trace_id: str | None = None


class ShortenResult(msgspec.Struct, kw_only=True, omit_defaults=True):
    success: bool
    task_id: str
    prompts: list[str] = []
    progress: int
    error: ErrorDetail | None = None
    trace_id: str | None = None


class SeedResult(msgspec.Struct, kw_only=True):
    """Exactly that API's documented answer (OpenAPI document and Seed guide): `{"seed": "..."}`."""

    seed: str


class TranslateResult(msgspec.Struct, kw_only=True):
    content: str


class TaskRequestEcho(msgspec.Struct, kw_only=True, omit_defaults=True):
    """What the task was asked for (as far as it is kept)."""

    action: str
    prompt: str | None = None
    image_id: str | None = None
    mode: str | None = None
    callback_url: str | None = None
    trace_id: str | None = None


class TaskRecord(msgspec.Struct, kw_only=True, omit_defaults=True):
    """One task as /midjourney/tasks answers it: `response` is the answer the task gave (or
    gives so far)."""

    id: str
    type: str  # "imagine" | "videos" | "describe" | "shorten"
    image_id: str | None = None  # imagine tasks: the image_id follow-ups take
    created_at: float  # Unix seconds
    started_at: float | None = None
    finished_at: float | None = None
    duration: float | None = None
    request: TaskRequestEcho
    response: dict[str, Any]
    # once the task has ended, its outcome at the top level too: that API's own CLI
    # (midjourney-pro-cli `wait`) reads `success` / `image_url` / `error` there, its MCP server
    # and SDK read `response`; absent while the task runs (a false `success` reads as failed)
    success: bool | None = None
    image_url: str | None = None
    video_urls: list[str] | None = None  # video tasks (the CLI's `wait` reads them here)
    error: ErrorDetail | None = None


class TaskBatch(msgspec.Struct, kw_only=True):
    items: list[TaskRecord]
    count: int
