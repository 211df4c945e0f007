"""Prompt translation into English through an OpenAI-compatible chat completions endpoint.

The engine asks for it on every new prompt before the banned-word check (JobService), so what
is checked, stored as the job's prompt, matched on recovery and sent to Midjourney is the same
English text. Deciding what to translate and what to keep is domain code
(adapter.domain.translation); this module is the call: one `POST {base}/chat/completions` per
prompt that needs it, bounded in time and size, its answer decoded strictly. Anything short of
a usable translation raises TranslationFailed: the original is never sent instead.
"""

from __future__ import annotations

import asyncio
import logging
from collections import OrderedDict
from typing import NoReturn, Protocol

import httpx
import msgspec

from adapter.domain.translation import MASK_INSTRUCTIONS, MaskedPrompt, UnmaskError, mask_prompt
from adapter.engine.errors import TranslationFailed

log = logging.getLogger(__name__)

MAX_ANSWER_BYTES = 256 * 1024
_NOT_SENT = "so nothing was sent to Midjourney"

SYSTEM_PROMPT = (
    "You translate prompts for the Midjourney image generator into English. Translate the user's "
    "text into natural, concise English that keeps every detail of the description. Keep words "
    "that are already English, names, numbers and punctuation as they are. "
    + MASK_INSTRUCTIONS
    + " Answer with the translated text only: no explanations, no quotes, no notes."
)


class PromptTranslator(Protocol):
    async def to_english(self, prompt: str) -> str:
        """The prompt as Midjourney should get it: unchanged when there is nothing to translate."""
        ...

    async def aclose(self) -> None: ...


class _Message(msgspec.Struct):
    content: str | None = None


class _Choice(msgspec.Struct):
    message: _Message
    finish_reason: str | None = None


class _Completion(msgspec.Struct):
    choices: list[_Choice]


class _ErrorDetail(msgspec.Struct):
    type: str | None = None
    code: str | int | None = None


class _ErrorBody(msgspec.Struct):
    error: _ErrorDetail


_decode_completion = msgspec.json.Decoder(_Completion).decode
_decode_error = msgspec.json.Decoder(_ErrorBody).decode


class ChatTranslator:
    """Translates through `POST {base_url}/chat/completions` (OpenAI, DeepSeek, Qwen, Ollama,
    vLLM, ... anything that speaks the chat completions shape). Translations are remembered
    (bounded), so the grids of one request and retries get the same English text."""

    def __init__(
        self,
        base_url: str,
        *,
        model: str,
        api_key: str = "",
        timeout_seconds: float = 20.0,
        cache_size: int = 512,
        max_answer_bytes: int = MAX_ANSWER_BYTES,
        transport: httpx.AsyncBaseTransport | None = None,
    ) -> None:
        self.url = base_url.rstrip("/") + "/chat/completions"
        self.model = model
        self.timeout = timeout_seconds
        self._headers = {"Authorization": f"Bearer {api_key}"} if api_key else {}
        self._max_bytes = max_answer_bytes
        self._cache: OrderedDict[str, str] = OrderedDict()
        self._cache_size = cache_size
        # the endpoint is the operator's choice: no SSRF rules, no redirects, no env proxies
        # (as for upstream providers: a loopback or LAN model server is reached directly)
        self._client = httpx.AsyncClient(
            transport=transport, trust_env=False, follow_redirects=False, timeout=httpx.Timeout(timeout_seconds)
        )

    @property
    def where(self) -> str:
        """The endpoint for logs: scheme, host and port, never credentials or a path."""
        url = httpx.URL(self.url)
        return f"{url.scheme}://{url.host}" + (f":{url.port}" if url.port else "")

    async def aclose(self) -> None:
        await self._client.aclose()

    async def to_english(self, prompt: str) -> str:
        masked = mask_prompt(prompt)
        if masked is None:
            return prompt
        answer = self._cache.get(masked.text)
        if answer is not None:
            self._cache.move_to_end(masked.text)
        else:
            answer = await self._ask(masked.text)
        english = self._unmask(masked, answer)
        self._cache[masked.text] = answer
        while len(self._cache) > self._cache_size:
            self._cache.popitem(last=False)
        return english

    def _unmask(self, masked: MaskedPrompt, answer: str) -> str:
        if len(answer) > 8 * len(masked.text) + 200:
            self._refuse("its answer is far longer than a translation", f"{len(answer)} characters for {len(masked.text)}")
        try:
            return masked.unmask(answer)
        except UnmaskError as exc:
            if not answer.strip():
                self._refuse("it gave an empty translation", "empty")
            self._refuse("its answer lost or moved the parts that must stay as written (links, weights, flags)", str(exc))

    def _refuse(self, why: str, detail: str) -> NoReturn:
        log.warning("prompt translation via %s failed: %s (%s)", self.where, why, detail)
        raise TranslationFailed(f"The prompt could not be translated into English: {why}; {_NOT_SENT}.")

    async def _ask(self, text: str) -> str:
        body = {
            "model": self.model,
            "messages": [{"role": "system", "content": SYSTEM_PROMPT}, {"role": "user", "content": text}],
            "stream": False,
        }
        try:
            async with asyncio.timeout(self.timeout):
                status, raw = await self._post(body)
        except TimeoutError:
            self._refuse(f"the translator did not answer within {self.timeout:g} s", "timeout")
        except httpx.HTTPError as exc:
            self._refuse("the translator could not be reached", type(exc).__name__)
        if status != 200:
            self._refuse(f"the translator answered HTTP {status}", _error_kind(raw))
        try:
            completion = _decode_completion(raw)
        except msgspec.DecodeError as exc:
            self._refuse("its answer is not a chat completion", str(exc)[:200])
        if not completion.choices:
            self._refuse("its answer has no choices", "no choices")
        choice = completion.choices[0]
        if choice.finish_reason == "length":
            self._refuse("its answer was cut off", "finish_reason=length")
        content = (choice.message.content or "").strip()
        if not content:
            self._refuse("it gave an empty translation", "empty")
        return content

    async def _post(self, body: dict[str, object]) -> tuple[int, bytes]:
        """The status and the body, read up to the size limit."""
        async with self._client.stream("POST", self.url, json=body, headers=self._headers) as response:
            declared = response.headers.get("content-length", "")
            if declared.isdigit() and int(declared) > self._max_bytes:
                self._refuse("its answer is too large", f"content-length {declared}")
            chunks: list[bytes] = []
            size = 0
            async for chunk in response.aiter_bytes():
                size += len(chunk)
                if size > self._max_bytes:
                    self._refuse("its answer is too large", f"over {self._max_bytes} bytes")
                chunks.append(chunk)
            return response.status_code, b"".join(chunks)


def _error_kind(raw: bytes) -> str:
    """An error answer's type and code (short names, never its message: messages can quote
    part of the key that was refused)."""
    try:
        err = _decode_error(raw).error
    except (msgspec.DecodeError, msgspec.ValidationError):
        return "no OpenAI error object"
    return f"type={err.type} code={err.code}"
