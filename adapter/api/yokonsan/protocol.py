"""Wire models of the yokonsan/midjourney-api trigger API (`/v1/api/trigger/*`).

Field names, defaults and answers follow that project's `app/schema.py` and
`task/bot/_typing.py` (yokonsan/midjourney-api a5781c4, 2024-08-27) exactly.
"""

from __future__ import annotations

import msgspec

# The project decodes with pydantic 1.10 (its requirements.txt), whose `str` fields take numbers
# too ({"msg_id": 1234567890} is "1234567890"): the id fields here take a number or a string and
# hold a string after decoding. Its `int` fields take numeric strings (the router decodes with
# strict=False).
IdLike = str | int


def _as_str(value: str | int) -> str:
    return value if isinstance(value, str) else str(value)


class TriggerImagineIn(msgspec.Struct, kw_only=True):
    prompt: str
    picurl: str | None = None  # an image prompt: put before the prompt


class TriggerUVIn(msgspec.Struct, kw_only=True):
    """upscale, variation and the solo_* variations. `msg_id` / `msg_hash`: the `id` and the
    `attachments[0].filename` hash of the callback message acted on; `trigger_id`: the business
    id the new task's callbacks carry."""

    index: int
    msg_id: IdLike
    msg_hash: IdLike
    trigger_id: IdLike

    def __post_init__(self) -> None:
        self.msg_id, self.msg_hash, self.trigger_id = _as_str(self.msg_id), _as_str(self.msg_hash), _as_str(self.trigger_id)


class TriggerResetIn(msgspec.Struct, kw_only=True):
    msg_id: IdLike
    msg_hash: IdLike
    trigger_id: IdLike

    def __post_init__(self) -> None:
        self.msg_id, self.msg_hash, self.trigger_id = _as_str(self.msg_id), _as_str(self.msg_hash), _as_str(self.trigger_id)


class TriggerExpandIn(msgspec.Struct, kw_only=True):
    msg_id: IdLike
    msg_hash: IdLike
    direction: str  # right / left / up / down
    trigger_id: IdLike

    def __post_init__(self) -> None:
        self.msg_id, self.msg_hash, self.trigger_id = _as_str(self.msg_id), _as_str(self.msg_hash), _as_str(self.trigger_id)


class TriggerZoomOutIn(msgspec.Struct, kw_only=True):
    msg_id: IdLike
    msg_hash: IdLike
    zoomout: int  # 2x: 50; 1.5x: 75
    trigger_id: IdLike

    def __post_init__(self) -> None:
        self.msg_id, self.msg_hash, self.trigger_id = _as_str(self.msg_id), _as_str(self.msg_hash), _as_str(self.trigger_id)


class TriggerDescribeIn(msgspec.Struct, kw_only=True):
    upload_filename: str
    trigger_id: IdLike

    def __post_init__(self) -> None:
        self.trigger_id = _as_str(self.trigger_id)


class QueueReleaseIn(msgspec.Struct, kw_only=True):
    trigger_id: IdLike

    def __post_init__(self) -> None:
        self.trigger_id = _as_str(self.trigger_id)


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
    """What the project sends is discord.py 2.2.3's Attachment.to_dict() (filename, id,
    proxy_url, size, url, spoiler, and height / width / content_type), passed through its
    TypedDict (which names ephemeral instead of spoiler): both are here."""

    id: int
    url: str
    proxy_url: str
    filename: str  # "<name>_<msg_hash>.png": msg_hash = filename.split("_")[-1].split(".")[0]
    content_type: str
    width: int
    height: int
    size: int  # 0: the image store does not record sizes yet
    ephemeral: bool = False
    spoiler: bool = False


class EmbedsImage(msgspec.Struct, kw_only=True):
    url: str
    proxy_url: str
    # discord.py's Embed.to_dict() image carries its size (the project's listener waits for it)
    width: int = 0
    height: int = 0


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
