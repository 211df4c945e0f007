"""Wire models of the OpenAI Images API (as the openai-python SDK sends and reads them)."""

from __future__ import annotations

from typing import Annotated, Any, Literal

import msgspec

from adapter.api.common.bodies import SIZE_PATTERN, Name, Prompt

Quality = Literal["standard", "hd", "low", "medium", "high", "auto"]
ResponseFormat = Literal["url", "b64_json"]
OutputFormat = Literal["png", "jpeg", "webp"]
Background = Literal["auto", "transparent", "opaque"]
MAX_N = 10  # images per request: ceil(n/4) Midjourney grids


class ImageOptions(msgspec.Struct, kw_only=True):
    """The fields generations, edits and variations share. Unknown fields are ignored (newer SDKs
    send options Midjourney has no use for); known ones are checked strictly."""

    model: Name | None = None
    n: Annotated[int, msgspec.Meta(ge=1, le=MAX_N)] | None = None
    size: Annotated[str, msgspec.Meta(pattern=SIZE_PATTERN, description="auto, or WIDTHxHEIGHT: becomes --ar")] | None = None
    quality: Quality | None = None
    response_format: ResponseFormat | None = None
    output_format: OutputFormat | None = None
    output_compression: Annotated[int, msgspec.Meta(ge=0, le=100)] | None = None
    background: Background | None = None
    moderation: Literal["auto", "low"] | None = None
    partial_images: Annotated[int, msgspec.Meta(ge=0, le=3)] | None = None
    stream: bool | None = None
    user: Name | None = None


class ImageGenerationRequest(ImageOptions, kw_only=True):
    prompt: Prompt
    style: Literal["vivid", "natural"] | None = None


class ImageEditRequest(ImageOptions, kw_only=True):
    """The text fields of the multipart form; `image` / `image[]` / `mask` are files (or URLs)."""

    prompt: Prompt
    input_fidelity: Literal["high", "low"] | None = None


class ImageVariationRequest(ImageOptions, kw_only=True):
    """The text fields of the multipart form; `image` is a file (or a URL)."""


class ImageData(msgspec.Struct, kw_only=True, omit_defaults=True):
    url: str | None = None
    b64_json: str | None = None
    revised_prompt: str | None = None
    # vendor extras (the SDK keeps unknown fields)
    job_id: str | None = None


class ImagesResponse(msgspec.Struct, kw_only=True, omit_defaults=True):
    created: int
    data: list[ImageData]
    output_format: str | None = None
    size: str | None = None
    quality: str | None = None
    background: str | None = None
    usage: dict[str, Any] | None = None
    job_ids: list[str] = []


class PartialImageEvent(msgspec.Struct, kw_only=True, omit_defaults=True):
    type: str  # image_generation.partial_image | image_edit.partial_image
    b64_json: str
    partial_image_index: int
    created_at: int
    size: str
    quality: str
    background: str
    output_format: str
    job_id: str | None = None
    progress: int | None = None


class CompletedImageEvent(msgspec.Struct, kw_only=True, omit_defaults=True):
    type: str  # image_generation.completed | image_edit.completed
    b64_json: str
    created_at: int
    size: str
    quality: str
    background: str
    output_format: str
    usage: dict[str, Any]
    job_id: str | None = None
    url: str | None = None
    revised_prompt: str | None = None
    index: int | None = None
