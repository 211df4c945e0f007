"""Prompt translation end to end: a real `mj-adapter serve` (demo mode) pointed at a fake
OpenAI-compatible translator on loopback. Chinese prompts reach the simulator in English with
their flags as written; the banned-word check reads the English; a translator that fails or is
too slow fails the request and starts nothing; its key travels as Bearer and never shows in the
server log."""

from __future__ import annotations

import json
import sys
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import httpx
import openai
import pytest

sys.path.insert(0, str(Path(__file__).parent))
from server_process import ADMIN, KEY_A, ServerProcess  # noqa: E402

pytestmark = [pytest.mark.slow, pytest.mark.timeout(180)]

TRANSLATOR_KEY = "sk-translator-e2e-9f8e7d6c5b4a"
MJ = {"mj-api-secret": KEY_A}
# the fake model's whole knowledge: longest phrases first
TABLE = {
    "一只猫在月光下": "a cat in the moonlight",
    "裸体的雕像": "a naked statue",
    "一只狗": "a dog",
    "一只鸟": "a bird",
    "雪山": "snowy mountains",
    "文字": "text",
}
SLOW_SECONDS = 3.0  # the server gives the translator 1 s


class FakeTranslator:
    """POST /v1/chat/completions in OpenAI's shape, translating with TABLE. A prompt holding
    故障 gets a 500, one holding 很慢 an answer after SLOW_SECONDS, one holding 丢失 an answer
    without its masks."""

    def __init__(self) -> None:
        self.requests: list[dict[str, Any]] = []
        fake = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *_: Any) -> None:
                pass

            def do_POST(self) -> None:  # noqa: N802
                body = json.loads(self.rfile.read(int(self.headers.get("content-length", "0"))))
                fake.requests.append({"path": self.path, "authorization": self.headers.get("authorization"), "body": body})
                text = body["messages"][-1]["content"]
                if self.path != "/v1/chat/completions":
                    return self._send(404, {"error": {"message": "no such route", "type": "invalid_request_error", "code": None}})
                if "故障" in text:
                    return self._send(500, {"error": {"message": "The server had an error", "type": "server_error", "code": None}})
                if "很慢" in text:
                    time.sleep(SLOW_SECONDS)
                english = text
                for zh, en in TABLE.items():
                    english = english.replace(zh, f" {en} ")
                if "丢失" in text:
                    english = english.replace("{{1}}", "")
                english = " ".join(english.split())
                self._send(200, {
                    "id": "chatcmpl-fake", "object": "chat.completion", "created": 0, "model": body["model"],
                    "choices": [{"index": 0, "message": {"role": "assistant", "content": english}, "finish_reason": "stop"}],
                })  # fmt: skip

            def _send(self, status: int, payload: dict[str, Any]) -> None:
                data = json.dumps(payload).encode()
                try:
                    self.send_response(status)
                    self.send_header("content-type", "application/json")
                    self.send_header("content-length", str(len(data)))
                    self.end_headers()
                    self.wfile.write(data)
                except (BrokenPipeError, ConnectionResetError):
                    pass  # the slow answer: the adapter stopped waiting

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.httpd.daemon_threads = True
        self.httpd.block_on_close = False  # type: ignore[attr-defined]
        self.port = self.httpd.server_address[1]
        self.thread = threading.Thread(target=self.httpd.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
        self.thread.start()

    def close(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()
        self.thread.join(timeout=5)


@pytest.fixture(scope="module")
def translator() -> Iterator[FakeTranslator]:
    t = FakeTranslator()
    yield t
    t.close()


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory, translator: FakeTranslator) -> Iterator[ServerProcess]:
    s = ServerProcess(
        tmp_path_factory.mktemp("translate"),
        env={
            "MJ_ADAPTER_TRANSLATE_BASE_URL": f"http://127.0.0.1:{translator.port}/v1",
            "MJ_ADAPTER_TRANSLATE_MODEL": "fake-translator",
            "MJ_ADAPTER_TRANSLATE_API_KEY": TRANSLATOR_KEY,
            "MJ_ADAPTER_TRANSLATE_TIMEOUT_SECONDS": "1",
        },
    ).start()
    yield s
    s.stop()


@pytest.fixture(scope="module")
def client(server: ServerProcess) -> openai.OpenAI:
    return openai.OpenAI(base_url=server.v1, api_key=KEY_A, max_retries=0, timeout=60)


@pytest.fixture(scope="module")
def simulator(server: ServerProcess) -> str:
    url = httpx.get(server.base + "/readyz", headers=ADMIN, timeout=5).json()["simulator_url"]
    assert url.startswith("http://127.0.0.1:")
    return str(url)


def sim_prompts(simulator: str) -> list[str]:
    return [j["prompt"] for j in httpx.get(simulator + "/_simulator/jobs", timeout=5).json()]


def fetch_task(server: ServerProcess, task_id: str, timeout: float = 60) -> dict[str, Any]:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        task = httpx.get(f"{server.base}/mj/task/{task_id}/fetch", headers=MJ, timeout=10).json()
        if task["status"] in ("SUCCESS", "FAILURE", "CANCEL"):
            return task  # type: ignore[no-any-return]
        time.sleep(0.05)
    raise TimeoutError(task_id)


def mj_imagine(server: ServerProcess, prompt: str) -> dict[str, Any]:
    r = httpx.post(f"{server.base}/mj/submit/imagine", json={"prompt": prompt}, headers=MJ, timeout=30)
    assert r.status_code == 200, r.text
    return r.json()  # type: ignore[no-any-return]


def task_count(server: ServerProcess) -> int:
    return len(httpx.get(f"{server.base}/mj/task/list", headers=MJ, timeout=10).json())


def test_images_api_sends_the_english_prompt_with_its_flags(client: openai.OpenAI, server: ServerProcess, simulator: str, translator: FakeTranslator) -> None:
    before = len(translator.requests)
    result = client.images.generate(model="midjourney", prompt="一只猫在月光下 --ar 16:9 --v 6", n=1)
    [image] = result.data
    assert image.revised_prompt is not None and image.revised_prompt.startswith("a cat in the moonlight --ar 16:9 --v 6"), image.revised_prompt
    [asked] = translator.requests[before:]
    assert asked["body"]["model"] == "fake-translator"
    assert asked["body"]["messages"][-1] == {"role": "user", "content": "一只猫在月光下"}  # flags never left
    # what the simulated Midjourney ran
    assert any(p.startswith("a cat in the moonlight --ar 16:9 --v 6") for p in sim_prompts(simulator)), sim_prompts(simulator)
    # the same job through the /mj door: what the caller wrote, and what was sent
    job_id = (image.model_extra or {})["job_id"]
    task = fetch_task(server, job_id)
    assert task["prompt"] == "一只猫在月光下 --ar 16:9 --v 6"
    assert task["promptEn"] == "a cat in the moonlight --ar 16:9 --v 6"


def test_mj_imagine_shows_prompt_and_prompt_en(server: ServerProcess, simulator: str) -> None:
    answer = mj_imagine(server, "https://example.com/ref.png 一只狗::2 雪山::1 --no 文字 --ar 3:2 --chaos 10")
    assert answer["code"] in (1, 22), answer
    task = fetch_task(server, answer["result"])
    assert task["status"] == "SUCCESS", task
    assert task["prompt"] == "https://example.com/ref.png 一只狗::2 雪山::1 --no 文字 --ar 3:2 --chaos 10"
    assert task["promptEn"] == "https://example.com/ref.png a dog::2 snowy mountains::1 --no text --ar 3:2 --chaos 10"
    assert task["properties"]["finalPrompt"].startswith("<https://")  # Midjourney's echo shortens the link
    assert any("a dog::2 snowy mountains::1 --no text --ar 3:2 --chaos 10" in p for p in sim_prompts(simulator))


def test_an_english_prompt_costs_no_translation(client: openai.OpenAI, translator: FakeTranslator) -> None:
    before = len(translator.requests)
    result = client.images.generate(model="midjourney", prompt="a lighthouse at dawn --ar 2:3", n=1)
    assert (result.data[0].revised_prompt or "").startswith("a lighthouse at dawn --ar 2:3")
    assert len(translator.requests) == before


def test_chat_prompts_are_translated(client: openai.OpenAI, server: ServerProcess) -> None:
    result = client.chat.completions.create(model="midjourney", messages=[{"role": "user", "content": "一只鸟 --ar 1:1"}])
    assert result.choices[0].finish_reason == "stop"
    assert "a bird" in (result.choices[0].message.content or "")
    task = fetch_task(server, (result.model_extra or {})["job_id"])
    assert task["prompt"] == "一只鸟 --ar 1:1" and task["promptEn"] == "a bird --ar 1:1"


def test_the_banned_word_check_reads_the_english(client: openai.OpenAI, server: ServerProcess, simulator: str) -> None:
    jobs_before, tasks_before = len(sim_prompts(simulator)), task_count(server)
    with pytest.raises(openai.BadRequestError) as err:
        client.images.generate(model="midjourney", prompt="裸体的雕像 --ar 1:1")
    assert err.value.code == "content_policy_violation" and "naked" in err.value.message
    answer = mj_imagine(server, "裸体的雕像")
    assert answer["code"] == 24 and answer["properties"]["bannedWord"] == "naked", answer
    assert len(sim_prompts(simulator)) == jobs_before and task_count(server) == tasks_before


@pytest.mark.parametrize(
    ("prompt", "says"),
    [
        ("故障的城市 --ar 1:1", "the translator answered HTTP 500"),
        ("很慢的城市", "did not answer within 1 s"),
        ("丢失 一只狗::2 雪山", "lost or moved"),
    ],
)
def test_a_failing_translator_fails_the_request_and_starts_nothing(
    client: openai.OpenAI, server: ServerProcess, simulator: str, prompt: str, says: str
) -> None:
    jobs_before, tasks_before = len(sim_prompts(simulator)), task_count(server)
    started = time.monotonic()
    with pytest.raises(openai.APIStatusError) as err:
        client.images.generate(model="midjourney", prompt=prompt)
    assert time.monotonic() - started < SLOW_SECONDS + 2
    assert err.value.status_code == 502
    body = err.value.body
    assert isinstance(body, dict) and body["code"] == "translation_failed" and body["param"] == "prompt", body
    assert says in body["message"] and "nothing was sent to Midjourney" in body["message"]

    answer = mj_imagine(server, prompt)
    assert answer["code"] == 9 and answer["properties"]["reason"] == "translation_failed", answer
    assert says in answer["description"] and answer["result"] is None

    chat = httpx.post(
        f"{server.v1}/chat/completions",
        json={"model": "midjourney", "messages": [{"role": "user", "content": prompt}]},
        headers={"Authorization": f"Bearer {KEY_A}"},
        timeout=30,
    )
    assert chat.status_code == 502 and chat.json()["error"]["code"] == "translation_failed", chat.text
    time.sleep(0.2)
    assert len(sim_prompts(simulator)) == jobs_before and task_count(server) == tasks_before
    assert TRANSLATOR_KEY not in json.dumps(body) + json.dumps(answer) + chat.text


def test_the_key_goes_as_bearer_and_never_into_the_log(server: ServerProcess, translator: FakeTranslator) -> None:
    before = len(translator.requests)
    assert mj_imagine(server, "一只狗 --ar 4:3")["code"] in (1, 22)
    assert mj_imagine(server, "故障")["code"] == 9
    assert len(translator.requests) >= before + 2
    assert {r["authorization"] for r in translator.requests} == {f"Bearer {TRANSLATOR_KEY}"}
    assert {r["path"] for r in translator.requests} == {"/v1/chat/completions"}
    log = server.log_path.read_text(errors="replace")
    assert "prompt translation: on (model fake-translator at http://127.0.0.1:" in log
    assert "prompt translation via" in log  # the failures above were logged ...
    assert TRANSLATOR_KEY not in log and TRANSLATOR_KEY[:12] not in log  # ... without the key
