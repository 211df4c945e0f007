"""Wire models of the yokonsan/midjourney-api trigger API (`/v1/api/trigger/*`).

Field names, defaults and answers follow that project's `app/schema.py` and
`task/bot/_typing.py` (yokonsan/midjourney-api a5781c4, 2024-08-27) exactly.
"""

from __future__ import annotations

import msgspec


class TriggerImagineIn(msgspec.Struct, kw_only=True):
    prompt: str
    picurl: str | None = None  # an image prompt: put before the prompt


class TriggerUVIn(msgspec.Struct, kw_only=True):
    """upscale, variation and the solo_* variations. `msg_id` / `msg_hash`: the `id` and the
    `attachments[0].filename` hash of the callback message acted on; `trigger_id`: the business
    id the new task's callbacks carry."""

    index: int
    msg_id: str
    msg_hash: str
    trigger_id: str


class TriggerResetIn(msgspec.Struct, kw_only=True):
    msg_id: str
    msg_hash: str
    trigger_id: str


class TriggerExpandIn(msgspec.Struct, kw_only=True):
    msg_id: str
    msg_hash: str
    direction: str  # right / left / up / down
    trigger_id: str


class TriggerZoomOutIn(msgspec.Struct, kw_only=True):
    msg_id: str
    msg_hash: str
    zoomout: int  # 2x: 50; 1.5x: 75
    trigger_id: str


class TriggerDescribeIn(msgspec.Struct, kw_only=True):
    upload_filename: str
    trigger_id: str


class QueueReleaseIn(msgspec.Struct, kw_only=True):
    trigger_id: str


class SendMessageIn(msgspec.Struct, kw_only=True):
    upload_filename: str


class UploadForm(msgspec.Struct, kw_only=True):
    """multipart/form-data: one `file` part (an image)."""


class TriggerResponse(msgspec.Struct, kw_only=True):
    message: str = "success"
    trigger_id: str
    trigger_type: str = ""


class UploadResponse(msgspec.Struct, kw_only=True):
    message: str = "success"
    upload_filename: str = ""
    upload_url: str = ""
    trigger_id: str


class SendMessageResponse(msgspec.Struct, kw_only=True):
    message: str = "success"
    picurl: str


class ErrorResponse(msgspec.Struct, kw_only=True):
    """The project's error body (`app/server.py`): request validation -> HTTP 400 with code 13;
    its own exceptions -> HTTP 200 with their code."""

    code: int
    message: str


# --- the callback message (task/bot/_typing.py CallbackData), POSTed to the callback URL -------


class Attachment(msgspec.Struct, kw_only=True):
    id: int
    url: str
    proxy_url: str
    filename: str  # "<name>_<msg_hash>.png": msg_hash = filename.split("_")[-1].split(".")[0]
    content_type: str
    width: int
    height: int
    size: int
    ephemeral: bool = False


class EmbedsImage(msgspec.Struct, kw_only=True):
    url: str
    proxy_url: str


class Embed(msgspec.Struct, kw_only=True):
    type: str
    description: str
    image: EmbedsImage


class CallbackData(msgspec.Struct, kw_only=True):
    type: str  # start | generating | end | error | banned | text
    id: int  # the Discord message id (msg_id of follow-ups)
    content: str
    attachments: list[Attachment]
    embeds: list[Embed]
    trigger_id: str
