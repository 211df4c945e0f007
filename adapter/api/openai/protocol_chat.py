"""Wire models of the OpenAI Chat Completions API.

Chat UIs differ in what they send (content as a string or as parts, `image_url` as an object or
a bare string, fields of their own), so the request Structs take every shape that can mean
something and ignore unknown fields; `parse_chat_request` then reduces a request to what a
Midjourney turn needs (`ChatRequest`).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Annotated, Literal, Protocol

import msgspec

from adapter.api.common.bodies import ImageRef, Name, Text
from adapter.api.openai.errors import invalid

FinishReason = Literal["stop", "content_filter"]
MAX_MESSAGES = 1000
MAX_PARTS = 64


# --- the request as sent ------------------------------------------------------------------------


class ImageURL(msgspec.Struct, kw_only=True):
    url: ImageRef
    detail: Name | None = None


class ContentPart(msgspec.Struct, kw_only=True):
    """text / input_text carry `text`; image_url / input_image carry `image_url` (an object or,
    as some UIs send it, the bare URL). Other kinds (audio, files, refusals) are ignored."""

    type: Name
    text: Text | None = None
    image_url: ImageURL | ImageRef | None = None


class ChatMessage(msgspec.Struct, kw_only=True):
    role: Annotated[str, msgspec.Meta(min_length=1, max_length=64)]
    content: Text | Annotated[list[Text | ContentPart], msgspec.Meta(max_length=MAX_PARTS)] | None = None
    name: Name | None = None


class StreamOptions(msgspec.Struct, kw_only=True):
    include_usage: bool | None = None


class ChatCompletionRequest(msgspec.Struct, kw_only=True):
    messages: Annotated[list[ChatMessage], msgspec.Meta(min_length=1, max_length=MAX_MESSAGES)]
    model: Name | None = None
    stream: bool | None = None
    stream_options: StreamOptions | None = None
    n: Annotated[int, msgspec.Meta(ge=1)] | None = None
    user: Name | None = None


# --- what a turn needs --------------------------------------------------------------------------


class ChatMessageIn(msgspec.Struct, frozen=True, kw_only=True):
    """One message of the conversation: its text (parts joined) and the image URLs it carries."""

    role: str
    text: str = ""
    image_urls: tuple[str, ...] = ()


class ChatRequest(msgspec.Struct, frozen=True, kw_only=True):
    messages: tuple[ChatMessageIn, ...]
    model: str | None = None
    stream: bool = False
    include_usage: bool = False
    user: str | None = None


class _Part(Protocol):
    type: str
    text: str | None
    image_url: ImageURL | str | None


TEXT_PARTS = ("text", "input_text")
IMAGE_PARTS = ("image_url", "input_image")


def join_parts(
    content: Sequence[str | _Part], where: str, param: str, *, text_types: tuple[str, ...] = TEXT_PARTS, no_url_hint: str = ""
) -> tuple[str, tuple[str, ...]]:
    """Content parts -> (their texts joined, their image URLs). Shared by Chat Completions and
    the Responses API, which name the same parts a little differently; other kinds of part
    (audio, files, refusals) carry nothing Midjourney can use and are skipped. `where` names
    the content in errors ("messages[2].content"), `param` is the request field at fault."""
    texts: list[str] = []
    urls: list[str] = []
    for j, part in enumerate(content):
        if isinstance(part, str):
            texts.append(part)
        elif part.type in text_types:
            if part.text is None:
                raise invalid(f"{where}[{j}].text is required for a {part.type} part.", param)
            texts.append(part.text)
        elif part.type in IMAGE_PARTS:
            ref = part.image_url
            url = ref.url if isinstance(ref, ImageURL) else ref
            if not url or not url.strip():
                raise invalid(no_url_hint or f"{where}[{j}].image_url.url must be a non-empty string (an http(s) or data URL).", param)
            urls.append(url.strip())
    return "\n".join(t for t in texts if t), tuple(urls)


def _message(raw: ChatMessage, index: int) -> ChatMessageIn:
    content = raw.content
    if content is None or isinstance(content, str):
        return ChatMessageIn(role=raw.role, text=content or "")
    text, urls = join_parts(content, f"messages[{index}].content", "messages")
    return ChatMessageIn(role=raw.role, text=text, image_urls=urls)


def parse_chat_request(req: ChatCompletionRequest) -> ChatRequest:
    """Reduce the request to a turn. `n` > 1 is refused: one Midjourney job answers one turn."""
    messages = tuple(_message(m, i) for i, m in enumerate(req.messages))
    if not any(m.role == "user" for m in messages):
        raise invalid("messages must contain at least one user message.", "messages")
    if req.n is not None and req.n > 1:
        raise invalid(
            "n must be 1: each chat turn runs one Midjourney job (a grid already holds four images; "
            "use /v1/images/generations with n for more).",
            "n",
        )
    return ChatRequest(
        messages=messages,
        model=req.model,
        stream=bool(req.stream),
        include_usage=bool(req.stream_options and req.stream_options.include_usage),
        user=req.user,
    )


# --- what we answer -----------------------------------------------------------------------------


class ChatUsage(msgspec.Struct, kw_only=True):
    prompt_tokens: int
    completion_tokens: int
    total_tokens: int


class AssistantMessage(msgspec.Struct, kw_only=True):
    content: str
    role: str = "assistant"
    refusal: None = None


class ChatChoice(msgspec.Struct, kw_only=True):
    index: int
    message: AssistantMessage
    finish_reason: FinishReason
    logprobs: None = None


class ChatCompletion(msgspec.Struct, kw_only=True):
    id: str
    created: int
    model: str
    choices: list[ChatChoice]
    usage: ChatUsage
    object: str = "chat.completion"
    # vendor extra: the Midjourney job behind the answer (also visible in the content)
    job_id: str | None = None


class ChunkDelta(msgspec.Struct, kw_only=True, omit_defaults=True):
    role: str | None = None
    content: str | None = None


class ChunkChoice(msgspec.Struct, kw_only=True):
    # finish_reason is always present (null until the last chunk), as OpenAI sends it
    index: int
    delta: ChunkDelta
    finish_reason: FinishReason | None = None
    logprobs: None = None


class ChatCompletionChunk(msgspec.Struct, kw_only=True):
    id: str
    created: int
    model: str
    choices: list[ChunkChoice]
    object: str = "chat.completion.chunk"
    # with stream_options.include_usage: null on every chunk but the last, as OpenAI does;
    # without it the field is left out
    usage: ChatUsage | None | msgspec.UnsetType = msgspec.UNSET
