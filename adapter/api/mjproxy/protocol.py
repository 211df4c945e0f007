"""Wire models of the midjourney-proxy API (open source + "Plus"), field names exactly as its
clients send and read them. Requests tolerate extra fields (clients send account filters and
other vendor options we do not use)."""

from __future__ import annotations

from typing import Any

import msgspec


class _Request(msgspec.Struct, kw_only=True, rename="camel"):
    state: str | None = None
    notify_hook: str | None = None


class ImagineRequest(_Request):
    prompt: str = ""
    base64_array: list[str] = []  # image prompts, data URLs
    base64: str | None = None  # the open-source project's single image prompt
    bot_type: str | None = None  # MID_JOURNEY | NIJI_JOURNEY


class ActionRequest(_Request):
    task_id: str = ""
    custom_id: str = ""


class ModalRequest(_Request):
    task_id: str = ""
    prompt: str | None = None
    mask_base64: str | None = None


class BlendRequest(_Request):
    base64_array: list[str] = []
    dimensions: str = "SQUARE"  # PORTRAIT | SQUARE | LANDSCAPE
    bot_type: str | None = None


class DescribeRequest(_Request):
    base64: str | None = None
    link: str | None = None
    bot_type: str | None = None


class ShortenRequest(_Request):
    prompt: str = ""
    bot_type: str | None = None


class ChangeRequest(_Request):
    task_id: str = ""
    action: str = ""  # UPSCALE | VARIATION | REROLL
    index: int | None = None


class SimpleChangeRequest(_Request):
    content: str = ""  # "<taskId> U2"


class ListCondition(msgspec.Struct, kw_only=True):
    ids: list[str] = []


class SubmitResult(msgspec.Struct, kw_only=True):
    code: int
    description: str
    result: str | None = None  # the task id
    properties: dict[str, Any] = {}


class TaskButton(msgspec.Struct, kw_only=True, rename="camel"):
    custom_id: str
    emoji: str = ""
    label: str = ""
    type: int = 2
    style: int = 2


class TaskView(msgspec.Struct, kw_only=True, rename="camel"):
    """A task as /mj/task/{id}/fetch returns it (and as webhooks deliver it)."""

    id: str
    action: str
    status: str
    prompt: str
    prompt_en: str
    description: str
    state: str | None
    submit_time: int
    start_time: int | None
    finish_time: int | None
    progress: str  # "0%".."100%"
    image_url: str | None
    fail_reason: str | None
    buttons: list[TaskButton]
    properties: dict[str, Any]
    bot_type: str = "MID_JOURNEY"
