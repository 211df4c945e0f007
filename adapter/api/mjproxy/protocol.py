"""Wire models of the midjourney-proxy API (open source + "Plus"), field names exactly as its
clients send and read them. Requests tolerate extra fields (clients send account filters and
other vendor options we do not use)."""

from __future__ import annotations

from typing import Annotated, Any

import msgspec

from adapter.api.common.bodies import NO_CONTROL, CustomId, ImageRef, Name, PromptText

TaskId = Annotated[str, msgspec.Meta(max_length=64, pattern=NO_CONTROL)]
Images = Annotated[list[ImageRef], msgspec.Meta(max_length=5)]


class _Request(msgspec.Struct, kw_only=True, rename="camel"):
    # `state` is the caller's own note, echoed back on the task and its webhooks: bounded, since
    # it is stored with every task
    state: Annotated[str, msgspec.Meta(max_length=4096, pattern=NO_CONTROL)] | None = None
    notify_hook: Annotated[str, msgspec.Meta(max_length=2048)] | None = None


class ImagineRequest(_Request):
    prompt: PromptText = ""
    base64_array: Images = []  # image prompts, data URLs
    base64: ImageRef | None = None  # the open-source project's single image prompt
    bot_type: Name | None = None  # MID_JOURNEY | NIJI_JOURNEY


class ActionRequest(_Request):
    task_id: TaskId = ""
    custom_id: CustomId = ""


class ModalRequest(_Request):
    task_id: TaskId = ""
    prompt: PromptText | None = None
    mask_base64: ImageRef | None = None


class BlendRequest(_Request):
    base64_array: Images = []
    dimensions: Name = "SQUARE"  # PORTRAIT | SQUARE | LANDSCAPE
    bot_type: Name | None = None


class DescribeRequest(_Request):
    base64: ImageRef | None = None
    link: ImageRef | None = None
    bot_type: Name | None = None


class ShortenRequest(_Request):
    prompt: PromptText = ""
    bot_type: Name | None = None


class ChangeRequest(_Request):
    task_id: TaskId = ""
    action: Name = ""  # UPSCALE | VARIATION | REROLL
    index: Annotated[int, msgspec.Meta(ge=1, le=4)] | None = None


class SimpleChangeRequest(_Request):
    content: Name = ""  # "<taskId> U2"


class ListCondition(msgspec.Struct, kw_only=True):
    ids: Annotated[list[TaskId], msgspec.Meta(max_length=500)] = []


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
