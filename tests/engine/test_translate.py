"""ChatTranslator: the chat completions call (request shape, Bearer key, strict answers, limits)
against a scripted transport. The end-to-end test (tests/api/test_translation_e2e.py) runs it
against a real HTTP server."""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import AsyncIterator, Callable
from typing import Any

import httpx
import pytest

from adapter.engine.errors import TranslationFailed
from adapter.engine.translate import ChatTranslator

KEY = "sk-translate-secret-4242"
TABLE = {"一只猫": "a cat", "在雨中": "in the rain", "一只狗": "a dog", "文字": "text"}


def completion(content: Any, finish_reason: str = "stop") -> dict[str, Any]:
    return {
        "id": "chatcmpl-1",
        "object": "chat.completion",
        "choices": [{"index": 0, "message": {"role": "assistant", "content": content}, "finish_reason": finish_reason}],
    }


def translate_table(text: str) -> str:
    for zh, en in TABLE.items():
        text = text.replace(zh, f" {en} ")
    return " ".join(text.split())


class Scripted:
    """A transport that answers with `answer(request)`; every request is kept."""

    def __init__(self, answer: Callable[[httpx.Request], Any] | None = None) -> None:
        self.requests: list[httpx.Request] = []
        self.answer = answer or self.translate

    @staticmethod
    def translate(request: httpx.Request) -> httpx.Response:
        body = json.loads(request.content)
        return httpx.Response(200, json=completion(translate_table(body["messages"][-1]["content"])))

    async def __call__(self, request: httpx.Request) -> httpx.Response:
        self.requests.append(request)
        result = self.answer(request)
        if asyncio.iscoroutine(result):
            result = await result
        return result  # type: ignore[no-any-return]


@pytest.fixture
async def make() -> AsyncIterator[Callable[..., tuple[ChatTranslator, Scripted]]]:
    made: list[ChatTranslator] = []

    def factory(answer: Callable[[httpx.Request], Any] | None = None, **options: Any) -> tuple[ChatTranslator, Scripted]:
        scripted = Scripted(answer)
        options = {"model": "translator-1", "api_key": KEY, "timeout_seconds": 5.0, **options}
        t = ChatTranslator("http://127.0.0.1:9/v1/", transport=httpx.MockTransport(scripted), **options)
        made.append(t)
        return t, scripted

    yield factory
    for t in made:
        await t.aclose()


async def test_a_chinese_prompt_is_translated_with_its_flags_intact(make) -> None:
    t, seen = make()
    assert await t.to_english("一只猫在雨中 --ar 16:9 --v 6") == "a cat in the rain --ar 16:9 --v 6"
    [req] = seen.requests
    assert req.method == "POST" and str(req.url) == "http://127.0.0.1:9/v1/chat/completions"
    assert req.headers["authorization"] == f"Bearer {KEY}"
    body = json.loads(req.content)
    assert body["model"] == "translator-1" and body["stream"] is False
    system, user = body["messages"]
    assert system["role"] == "system" and "{{1}}" in system["content"] and "English" in system["content"]
    assert user == {"role": "user", "content": "一只猫在雨中"}  # the flags never leave


async def test_masks_travel_and_come_back(make) -> None:
    t, seen = make()
    english = await t.to_english("https://example.com/a.png 一只猫::2 一只狗::1 --no 文字 --chaos 5")
    assert english == "https://example.com/a.png a cat::2 a dog::1 --no text --chaos 5"
    assert json.loads(seen.requests[0].content)["messages"][1]["content"] == "一只猫{{1}} 一只狗{{2}} 文字"


async def test_english_prompts_make_no_call(make) -> None:
    t, seen = make()
    for prompt in ("a cat in the rain --ar 16:9", "café au lait --p 文字码", "https://example.com/a.png --iw 2", ""):
        assert await t.to_english(prompt) == prompt
    assert seen.requests == []


async def test_no_key_no_authorization_header(make) -> None:
    t, seen = make(api_key="")
    await t.to_english("一只猫")
    assert "authorization" not in seen.requests[0].headers


async def test_the_same_prompt_is_translated_once(make) -> None:
    t, seen = make()
    first = await t.to_english("一只猫 --ar 1:1")
    assert await t.to_english("一只猫 --ar 1:1") == first
    assert await t.to_english("一只猫 --ar 2:3") == "a cat --ar 2:3"  # same words, other flags
    assert len(seen.requests) == 1


async def test_the_cache_is_bounded(make) -> None:
    t, seen = make(cache_size=2)
    for prompt in ("一只猫", "一只狗", "文字", "一只猫"):
        await t.to_english(prompt)
    assert len(seen.requests) == 4


def _status(status: int, body: Any) -> Callable[[httpx.Request], httpx.Response]:
    return lambda _: httpx.Response(status, json=body) if not isinstance(body, bytes) else httpx.Response(status, content=body)


@pytest.mark.parametrize(
    ("answer", "says"),
    [
        (_status(500, {"error": {"message": "boom", "type": "server_error", "code": None}}), "answered HTTP 500"),
        (_status(401, {"error": {"message": f"Incorrect API key provided: {KEY[:6]}***", "type": "invalid_request_error", "code": "invalid_api_key"}}), "answered HTTP 401"),
        (_status(200, b"<html>not json</html>"), "not a chat completion"),
        (_status(200, {"choices": "nope"}), "not a chat completion"),
        (_status(200, {"choices": [{"message": {"content": 42}}]}), "not a chat completion"),
        (_status(200, {"object": "chat.completion"}), "not a chat completion"),
        (_status(200, {"choices": []}), "no choices"),
        (_status(200, completion(None)), "empty translation"),
        (_status(200, completion("   ")), "empty translation"),
        (_status(200, completion("a cat", finish_reason="length")), "cut off"),
        (_status(200, completion("a cat a dog")), "lost or moved"),
        (_status(200, completion("a dog{{2}} a cat{{1}}")), "lost or moved"),
        (_status(200, completion("a cat " * 200)), "far longer"),
    ],
)
async def test_unusable_answers_fail_clearly(make, answer: Callable[[httpx.Request], httpx.Response], says: str, caplog: pytest.LogCaptureFixture) -> None:
    t, _ = make(answer)
    caplog.set_level(logging.DEBUG)
    with pytest.raises(TranslationFailed) as err:
        await t.to_english("一只猫::2 一只狗::1")
    assert says in err.value.message and "nothing was sent to Midjourney" in err.value.message
    assert err.value.param == "prompt"
    assert KEY not in err.value.message and KEY[:6] + "***" not in caplog.text and KEY not in caplog.text
    assert "127.0.0.1:9" in caplog.text  # the log says which translator


async def test_a_failure_is_not_remembered(make) -> None:
    calls = {"n": 0}

    def flaky(request: httpx.Request) -> httpx.Response:
        calls["n"] += 1
        return httpx.Response(503, json={}) if calls["n"] == 1 else Scripted.translate(request)

    t, _ = make(flaky)
    with pytest.raises(TranslationFailed):
        await t.to_english("一只猫")
    assert await t.to_english("一只猫") == "a cat"


async def test_a_slow_translator_times_out(make) -> None:
    async def slow(_: httpx.Request) -> httpx.Response:
        await asyncio.sleep(10)
        return httpx.Response(200, json=completion("a cat"))

    t, _ = make(slow, timeout_seconds=0.2)
    loop = asyncio.get_running_loop()
    started = loop.time()
    with pytest.raises(TranslationFailed) as err:
        await t.to_english("一只猫")
    assert "did not answer within 0.2 s" in err.value.message
    assert loop.time() - started < 3


async def test_an_unreachable_translator(make) -> None:
    def refuse(request: httpx.Request) -> httpx.Response:
        raise httpx.ConnectError("connection refused", request=request)

    t, _ = make(refuse)
    with pytest.raises(TranslationFailed) as err:
        await t.to_english("一只猫")
    assert "could not be reached" in err.value.message


async def test_an_oversized_answer_is_cut_off_while_reading(make) -> None:
    sent = {"bytes": 0}

    async def endless() -> AsyncIterator[bytes]:
        while sent["bytes"] < 50_000_000:
            sent["bytes"] += 65536
            yield b" " * 65536

    t, _ = make(lambda _: httpx.Response(200, content=endless()), max_answer_bytes=100_000)
    with pytest.raises(TranslationFailed) as err:
        await t.to_english("一只猫")
    assert "too large" in err.value.message
    assert sent["bytes"] < 1_000_000


async def test_a_declared_oversized_answer_is_refused_unread(make) -> None:
    t, _ = make(lambda _: httpx.Response(200, content=b"x" * 200_000), max_answer_bytes=100_000)
    with pytest.raises(TranslationFailed) as err:
        await t.to_english("一只猫")
    assert "too large" in err.value.message


def test_where_never_shows_credentials_or_path() -> None:
    t = ChatTranslator("https://user:pass@llm.example.com:8443/v1", model="m")
    assert t.where == "https://llm.example.com:8443"
    asyncio.run(t.aclose())
