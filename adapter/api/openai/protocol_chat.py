"""Wire models of the OpenAI Chat Completions API, and the tolerant reading of a request.

Chat UIs differ in what they send (content as a string or as parts, `image_url` as an object or
a bare string, extra fields of their own), so a request is read by hand into `ChatRequest`
rather than decoded strictly: unknown fields are ignored, shapes that cannot mean anything get a
400 naming the field.
"""

from __future__ import annotations

from typing import Any, Literal

import msgspec

from adapter.api.openai.errors import invalid

FinishReason = Literal["stop", "content_filter"]
MAX_MESSAGES = 1000


# --- what we read -------------------------------------------------------------------------------


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


def _parts(content: list[Any], index: int) -> tuple[str, tuple[str, ...]]:
    texts: list[str] = []
    urls: list[str] = []
    for j, part in enumerate(content):
        where = f"messages[{index}].content[{j}]"
        if isinstance(part, str):
            texts.append(part)
            continue
        if not isinstance(part, dict):
            raise invalid(f"{where} must be an object.", "messages")
        kind = part.get("type")
        if kind in ("text", "input_text"):
            text = part.get("text")
            if not isinstance(text, str):
                raise invalid(f"{where}.text must be a string.", "messages")
            texts.append(text)
        elif kind in ("image_url", "input_image"):
            ref = part.get("image_url")
            url = ref.get("url") if isinstance(ref, dict) else ref
            if not isinstance(url, str) or not url.strip():
                raise invalid(f"{where}.image_url.url must be a non-empty string (an http(s) or data URL).", "messages")
            urls.append(url.strip())
        # other part types (audio, files, refusals) carry nothing Midjourney can use
    return "\n".join(t for t in texts if t), tuple(urls)


def _message(raw: object, index: int) -> ChatMessageIn:
    if not isinstance(raw, dict):
        raise invalid(f"messages[{index}] must be an object.", "messages")
    role = raw.get("role")
    if not isinstance(role, str) or not role:
        raise invalid(f"messages[{index}].role is required.", "messages")
    content = raw.get("content")
    if content is None:
        return ChatMessageIn(role=role)
    if isinstance(content, str):
        return ChatMessageIn(role=role, text=content)
    if isinstance(content, list):
        text, urls = _parts(content, index)
        return ChatMessageIn(role=role, text=text, image_urls=urls)
    raise invalid(f"messages[{index}].content must be a string or a list of parts.", "messages")


def parse_chat_request(data: dict[str, Any]) -> ChatRequest:
    """Validate the fields we use. `n` > 1 is refused: one Midjourney job answers one chat turn."""
    raw_messages = data.get("messages")
    if not isinstance(raw_messages, list) or not raw_messages:
        raise invalid("messages is required and must be a non-empty list.", "messages")
    if len(raw_messages) > MAX_MESSAGES:
        raise invalid(f"messages may hold at most {MAX_MESSAGES} entries.", "messages")
    messages = tuple(_message(m, i) for i, m in enumerate(raw_messages))
    if not any(m.role == "user" for m in messages):
        raise invalid("messages must contain at least one user message.", "messages")
    model = data.get("model")
    if model is not None and not isinstance(model, str):
        raise invalid("model must be a string.", "model")
    n = data.get("n")
    if n is not None and (not isinstance(n, int) or isinstance(n, bool) or n < 1):
        raise invalid("n must be a positive integer.", "n")
    if isinstance(n, int) and n > 1:
        raise invalid(
            "n must be 1: each chat turn runs one Midjourney job (a grid already holds four images; "
            "use /v1/images/generations with n for more).",
            "n",
        )
    stream = data.get("stream", False)
    if stream is not None and not isinstance(stream, bool):
        raise invalid("stream must be a boolean.", "stream")
    options = data.get("stream_options")
    if options is not None and not isinstance(options, dict):
        raise invalid("stream_options must be an object.", "stream_options")
    include_usage = bool(options.get("include_usage")) if isinstance(options, dict) else False
    user = data.get("user")
    return ChatRequest(
        messages=messages,
        model=model,
        stream=bool(stream),
        include_usage=include_usage,
        user=user if isinstance(user, str) else None,
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
