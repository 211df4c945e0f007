"""Wire models of the OpenAI Responses API (as the openai-python SDK sends and reads them), and
the reduction of a request to a chat conversation.

A Responses turn is a chat turn: `input` (a string, or a list of input items) becomes the
messages the chat grammar reads, `previous_response_id` stands for the assistant answer the
conversation would hold. Items this adapter has no use for (function calls, files, reasoning)
are ignored, as are unknown fields; known fields are checked strictly.

Ids carry the job, so nothing new is stored: `resp_<job id>` is the turn that ran that job
(retrievable), `ig_<job id>` / `msg_<job id>` its output items. A turn that ran no job (help,
"there is no image to upscale", a refused prompt) gets `resp_<job id>_t<hex>` when the
conversation was about a job (a follow-up can chain on it) or `resp_t<hex>` when it was not;
neither can be retrieved, since its text is not kept.
"""

from __future__ import annotations

import re
import secrets
from typing import Annotated, Any, Literal

import msgspec

from adapter.api.common.bodies import SIZE_PATTERN, ImageRef, Name, Text
from adapter.api.openai.chat_refs import job_ref
from adapter.api.openai.errors import invalid
from adapter.api.openai.protocol_chat import IMAGE_PARTS, TEXT_PARTS, ChatMessageIn, ImageURL, join_parts

MAX_ITEMS = 1000
MAX_PARTS = 64
MAX_TOOLS = 128

ResponseStatus = Literal["completed", "failed", "in_progress", "cancelled", "queued", "incomplete"]
CallStatus = Literal["in_progress", "generating", "completed", "failed"]

# --- ids ----------------------------------------------------------------------------------------

_JOB = r"j_[0-9a-z]{20}"
_RESP_RE = re.compile(rf"^resp_(?:(?P<job>{_JOB})(?P<text>_t[0-9a-f]{{1,32}})?|t[0-9a-f]{{1,32}})$")
_ITEM_RE = re.compile(rf"^(?:ig|msg)_(?P<job>{_JOB})$")


def response_id(job_id: str) -> str:
    """The id of the turn that ran `job_id`."""
    return f"resp_{job_id}"


def text_response_id(about: str | None) -> str:
    """The id of a turn that ran no job; `about` is the job the conversation was on, if any."""
    nonce = secrets.token_hex(6)
    return f"resp_{about}_t{nonce}" if about else f"resp_t{nonce}"


def parse_response_id(rid: str) -> tuple[bool, str | None, bool]:
    """(well formed, the job it is about, whether it is that job's own turn)."""
    m = _RESP_RE.match(rid)
    if m is None:
        return False, None, False
    return True, m["job"], bool(m["job"]) and not m["text"]


def call_item_id(job_id: str) -> str:
    return f"ig_{job_id}"


def message_item_id(job_id: str | None) -> str:
    return f"msg_{job_id}" if job_id else f"msg_{secrets.token_hex(12)}"


def job_of_item_id(item_id: str | None) -> str | None:
    m = _ITEM_RE.match(item_id or "")
    return m["job"] if m else None


# --- the request as sent ------------------------------------------------------------------------


class InputContent(msgspec.Struct, kw_only=True):
    """input_text / output_text carry `text`; input_image carries `image_url` (the URL; the
    Chat Completions object form is taken too). Other kinds (files, audio, refusals) are
    ignored."""

    type: Name
    text: Text | None = None
    image_url: ImageRef | ImageURL | None = None
    file_id: Name | None = None
    detail: Name | None = None


class InputItem(msgspec.Struct, kw_only=True):
    """A message (`role` + `content`; `type` "message" or absent), an earlier
    `image_generation_call` of ours, or an `item_reference` to one (by `id`). Other item types
    are ignored."""

    type: Name | None = None
    role: Literal["user", "assistant", "system", "developer"] | None = None
    content: Text | Annotated[list[InputContent], msgspec.Meta(max_length=MAX_PARTS)] | None = None
    id: Name | None = None


ToolQuality = Literal["low", "medium", "high", "xhigh", "max", "auto", "standard", "hd"]


class ImageGenerationTool(msgspec.Struct, kw_only=True, omit_defaults=True):
    """A `tools` entry. Only `image_generation` ones mean something here: `size` becomes --ar
    (unless the prompt has one), `output_format` / `output_compression` encode `result`,
    `partial_images` caps the streamed previews (absent: every preview); the rest is echoed.
    Other tool types are accepted and ignored."""

    type: Name
    size: Annotated[str, msgspec.Meta(pattern=SIZE_PATTERN, description="auto, or WIDTHxHEIGHT: becomes --ar")] | None = None
    quality: ToolQuality | None = None
    output_format: Literal["png", "jpeg", "webp"] | None = None
    output_compression: Annotated[int, msgspec.Meta(ge=0, le=100)] | None = None
    background: Literal["auto", "transparent", "opaque"] | None = None  # the Images API's order: equal Literals are one cached object
    partial_images: Annotated[int, msgspec.Meta(ge=0, le=3)] | None = None
    moderation: Literal["auto", "low"] | None = None
    action: Literal["generate", "edit", "auto"] | None = None
    input_fidelity: Literal["high", "low"] | None = None
    model: Name | None = None


class ResponseCreateRequest(msgspec.Struct, kw_only=True):
    input: Text | Annotated[list[InputItem], msgspec.Meta(min_length=1, max_length=MAX_ITEMS)]
    model: Name | None = None
    instructions: Text | None = None
    previous_response_id: Name | None = None
    tools: Annotated[list[ImageGenerationTool], msgspec.Meta(max_length=MAX_TOOLS)] | None = None
    stream: bool | None = None
    background: bool | None = None
    store: bool | None = None
    user: Name | None = None


# --- what a turn needs --------------------------------------------------------------------------


class ResponseInput(msgspec.Struct, frozen=True, kw_only=True):
    """The conversation the input stands for (assistant references from earlier output items
    included), without the previous response, which the serving layer resolves."""

    messages: tuple[ChatMessageIn, ...]
    tool: ImageGenerationTool | None = None


def _parts(content: str | list[InputContent] | None, index: int) -> tuple[str, tuple[str, ...]]:
    if content is None or isinstance(content, str):
        return content or "", ()
    where = f"input[{index}].content"
    for j, part in enumerate(content):
        if part.type in IMAGE_PARTS and part.file_id and not part.image_url:
            raise invalid(f"{where}[{j}]: file ids are not supported here; send the image as image_url (an http(s) or data URL).", "input")
    return join_parts(content, where, "input", text_types=(*TEXT_PARTS, "output_text"))


def parse_input(req: ResponseCreateRequest) -> ResponseInput:
    """The request's input as chat messages. Earlier output items of ours (an
    image_generation_call or a reference to one) become assistant messages naming their job,
    which is how chat finds what a follow-up acts on."""
    messages: list[ChatMessageIn] = []
    if req.instructions:
        messages.append(ChatMessageIn(role="system", text=req.instructions))
    if isinstance(req.input, str):
        messages.append(ChatMessageIn(role="user", text=req.input))
    else:
        for i, item in enumerate(req.input):
            kind = item.type or ("message" if item.role else None)
            if kind == "message":
                if item.role is None:
                    raise invalid(f"input[{i}].role is required for a message.", "input")
                text, urls = _parts(item.content, i)
                messages.append(ChatMessageIn(role=item.role, text=text, image_urls=urls))
            elif kind in ("image_generation_call", "item_reference"):
                if job_id := job_of_item_id(item.id):
                    messages.append(ChatMessageIn(role="assistant", text=job_ref(job_id)))
    if not any(m.role == "user" for m in messages):
        raise invalid("input must contain a user message (a string, or an item with role 'user').", "input")
    tool = next((t for t in req.tools or () if t.type == "image_generation"), None)
    return ResponseInput(messages=tuple(messages), tool=tool)


# --- what we answer -----------------------------------------------------------------------------


class OutputText(msgspec.Struct, kw_only=True, tag_field="type", tag="output_text"):
    text: str
    annotations: list[dict[str, Any]] = []
    logprobs: list[dict[str, Any]] = []


class MessageItem(msgspec.Struct, kw_only=True, tag_field="type", tag="message"):
    id: str
    status: Literal["in_progress", "completed", "incomplete"]
    content: list[OutputText]
    role: Literal["assistant"] = "assistant"


class CallError(msgspec.Struct, kw_only=True):
    message: str
    type: str
    code: str | None = None
    param: str | None = None


class ImageGenerationCall(msgspec.Struct, kw_only=True, tag_field="type", tag="image_generation_call"):
    """`result` is the image (a grid stays one image) as base64 in `output_format`, once done.
    Vendor extras (the SDK keeps unknown fields): `job_id`, `url` (our stable URL of the
    image), `image_urls` (a grid's four images), `progress`."""

    id: str
    status: CallStatus
    result: str | None = None
    action: Literal["generate", "edit"] | None = None
    background: str | None = None
    output_format: str | None = None
    quality: str | None = None
    size: str | None = None
    revised_prompt: str | None = None
    error: CallError | None = None
    job_id: str
    url: str | None = None
    image_urls: list[str] = []
    progress: int = 0


OutputItem = ImageGenerationCall | MessageItem


class ResponseError(msgspec.Struct, kw_only=True):
    code: str
    message: str
    type: str | None = None
    param: str | None = None


class IncompleteDetails(msgspec.Struct, kw_only=True):
    reason: str


class InputTokensDetails(msgspec.Struct, kw_only=True):
    cached_tokens: int = 0
    cache_write_tokens: int = 0


class OutputTokensDetails(msgspec.Struct, kw_only=True):
    reasoning_tokens: int = 0


class ResponseUsage(msgspec.Struct, kw_only=True):
    """Midjourney has no tokens: rough counts (4 characters each), as chat reports them."""

    input_tokens: int
    output_tokens: int
    total_tokens: int
    input_tokens_details: InputTokensDetails = msgspec.field(default_factory=InputTokensDetails)
    output_tokens_details: OutputTokensDetails = msgspec.field(default_factory=OutputTokensDetails)


class ResponseObject(msgspec.Struct, kw_only=True):
    id: str
    created_at: int
    model: str
    status: ResponseStatus
    output: list[OutputItem]
    object: Literal["response"] = "response"
    error: ResponseError | None = None
    incomplete_details: IncompleteDetails | None = None
    instructions: str | None = None
    metadata: dict[str, str] = {}
    parallel_tool_calls: bool = True
    previous_response_id: str | None = None
    tool_choice: str = "auto"
    tools: list[ImageGenerationTool] = []
    usage: ResponseUsage | None = None
    user: str | None = None
    background: bool = False
    store: bool = True
    completed_at: int | None = None
    # vendor extra: the Midjourney job behind the answer
    job_id: str | None = None


# --- stream events (each with `sequence_number`, counted from 0 per stream) ---------------------


class LifecycleEvent(msgspec.Struct, kw_only=True):
    """response.created / in_progress / completed / failed / incomplete."""

    type: str
    sequence_number: int
    response: ResponseObject


class OutputItemEvent(msgspec.Struct, kw_only=True):
    """response.output_item.added / done."""

    type: str
    sequence_number: int
    output_index: int
    item: OutputItem


class CallEvent(msgspec.Struct, kw_only=True):
    """response.image_generation_call.in_progress / generating / completed."""

    type: str
    sequence_number: int
    output_index: int
    item_id: str


class PartialImageEvent(msgspec.Struct, kw_only=True):
    sequence_number: int
    output_index: int
    item_id: str
    partial_image_b64: str
    partial_image_index: int
    size: str | None = None
    quality: str | None = None
    background: str | None = None
    output_format: str | None = None
    progress: int = 0  # vendor extra
    type: str = "response.image_generation_call.partial_image"


class ContentPartEvent(msgspec.Struct, kw_only=True):
    """response.content_part.added / done."""

    type: str
    sequence_number: int
    item_id: str
    output_index: int
    content_index: int
    part: OutputText


class TextDeltaEvent(msgspec.Struct, kw_only=True):
    sequence_number: int
    item_id: str
    output_index: int
    content_index: int
    delta: str
    logprobs: list[dict[str, Any]] = []
    type: str = "response.output_text.delta"


class TextDoneEvent(msgspec.Struct, kw_only=True):
    sequence_number: int
    item_id: str
    output_index: int
    content_index: int
    text: str
    logprobs: list[dict[str, Any]] = []
    type: str = "response.output_text.done"


class ErrorEvent(msgspec.Struct, kw_only=True):
    """The stream broke off (the service is restarting, the job was lost track of); the job
    itself may still finish: retrieve the response later."""

    sequence_number: int
    message: str
    code: str | None = None
    param: str | None = None
    type: str = "error"
