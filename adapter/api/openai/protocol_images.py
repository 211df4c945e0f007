"""Wire models of the OpenAI Images API (as the openai-python SDK sends and reads them)."""

from __future__ import annotations

from typing import Any, Literal

import msgspec

Quality = Literal["standard", "hd", "low", "medium", "high", "auto"]
ResponseFormat = Literal["url", "b64_json"]
OutputFormat = Literal["png", "jpeg", "webp"]


class ImageGenerationRequest(msgspec.Struct, kw_only=True):
    prompt: str
    model: str | None = None
    n: int | None = 1
    size: str | None = None
    quality: Quality | None = None
    style: Literal["vivid", "natural"] | None = None
    response_format: ResponseFormat | None = None
    output_format: OutputFormat | None = None
    output_compression: int | None = None
    background: str | None = None
    moderation: str | None = None
    partial_images: int | None = None
    stream: bool | None = False
    user: str | None = None


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
