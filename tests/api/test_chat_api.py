"""Chat Completions, driven with the official `openai` SDK (and raw SSE where the wire matters)
against a real server process in demo mode."""

from __future__ import annotations

import base64
import http.server
import io
import json
import re
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import openai
import pytest
from PIL import Image

sys.path.insert(0, str(Path(__file__).parent))
from server_process import ADMIN, KEY_A, KEY_B, ServerProcess  # noqa: E402

JOB_REF = re.compile(r"job `(j_[0-9a-z]{20})`")
MD_IMAGE = re.compile(r"!\[[^\]]*\]\((http[^)\s]+)\)")


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerProcess]:
    # a short keepalive so a test can see the comments without waiting 15 s
    # the "foreign" image host below is on loopback: listed for user URLs, as an operator would
    env = {"MJ_ADAPTER_STREAM_KEEPALIVE_SECONDS": "0.3", "MJ_ADAPTER_USER_URL_ALLOW_HOSTS": "127.0.0.1"}
    s = ServerProcess(tmp_path_factory.mktemp("chat"), env=env).start()
    yield s
    s.stop()


@pytest.fixture
def client(server: ServerProcess) -> openai.OpenAI:
    return openai.OpenAI(base_url=server.v1, api_key=KEY_A, max_retries=0, timeout=60)


@pytest.fixture(scope="module")
def foreign_host() -> Iterator[str]:
    """A plain HTTP server on loopback serving one PNG: an image from somewhere else."""
    body = png((10, 120, 200), (96, 64))

    class Handler(http.server.BaseHTTPRequestHandler):
        def do_GET(self) -> None:  # noqa: N802
            self.send_response(200)
            self.send_header("Content-Type", "image/png")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args: object) -> None:
            pass

    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{httpd.server_address[1]}/photo.png"
    httpd.shutdown()
    httpd.server_close()


def png(color: tuple[int, int, int], size: tuple[int, int] = (64, 64)) -> bytes:
    buf = io.BytesIO()
    Image.new("RGB", size, color).save(buf, "PNG")
    return buf.getvalue()


def data_url(data: bytes) -> str:
    return "data:image/png;base64," + base64.b64encode(data).decode()


def job(server: ServerProcess, job_id: str, key: str = KEY_A) -> dict[str, Any]:
    r = httpx.get(f"{server.v1}/jobs/{job_id}", headers={"Authorization": f"Bearer {key}"}, timeout=10)
    assert r.status_code == 200, r.text
    return r.json()  # type: ignore[no-any-return]


def ref(content: str) -> str:
    m = JOB_REF.search(content)
    assert m, content
    return m.group(1)


def stream_text(client: openai.OpenAI, messages: list[dict[str, Any]], **kw: Any) -> tuple[str, list[Any]]:
    chunks = list(client.chat.completions.create(model=kw.pop("model", "midjourney"), messages=messages, stream=True, **kw))  # type: ignore[arg-type]
    text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    return text, chunks


def ask(client: openai.OpenAI, messages: list[dict[str, Any]], key_client: openai.OpenAI | None = None) -> str:
    result = (key_client or client).chat.completions.create(model="midjourney", messages=messages)  # type: ignore[arg-type]
    assert result.choices[0].finish_reason == "stop"
    return result.choices[0].message.content or ""


def fetch_png(url: str) -> Image.Image:
    r = httpx.get(url, timeout=10)
    assert r.status_code == 200 and r.headers["content-type"] == "image/png", (url, r.status_code)
    img = Image.open(io.BytesIO(r.content))
    img.load()
    return img


# --- streaming ----------------------------------------------------------------------------------


def test_stream_shows_progress_then_the_final_image(client: openai.OpenAI) -> None:
    text, chunks = stream_text(client, [{"role": "user", "content": "a lighthouse at dawn, oil painting --ar 3:2"}])
    assert chunks[0].choices[0].delta.role == "assistant"
    assert all(c.choices[0].delta.role is None for c in chunks[1:])
    assert len({c.id for c in chunks}) == 1 and chunks[0].id.startswith("chatcmpl-")
    assert len({c.created for c in chunks}) == 1
    assert chunks[-1].choices[0].finish_reason == "stop"
    assert all(c.choices[0].finish_reason is None for c in chunks[:-1])
    deltas = [c.choices[0].delta.content or "" for c in chunks]
    progress = [i for i, d in enumerate(deltas) if re.search(r"\d+%", d)]
    final = next(i for i, d in enumerate(deltas) if "result" in d and MD_IMAGE.search(d))
    assert progress and max(progress) < final, deltas
    assert deltas.index(next(d for d in deltas if "job `" in d)) < min(progress)  # the reference comes first
    grid_url = MD_IMAGE.findall(deltas[final])[0]
    grid = fetch_png(grid_url)
    assert abs(grid.width / grid.height - 3 / 2) < 0.05
    assert "`U1` `U2` `U3` `U4`" in text and "`V4`" in text and "✅ done" in text
    assert ref(text) in grid_url
    # links to the four images, labelled so that Open WebUI does not take them for citations
    tiles = re.findall(r"\[Image (\d)\]\((http[^)\s]+)\)", text)
    assert [n for n, _ in tiles] == ["1", "2", "3", "4"] and not re.search(r"(?<![\\!])\[\d", text)
    assert all(fetch_png(u).width < grid.width for _, u in tiles)


def test_raw_stream_wire_format(server: ServerProcess) -> None:
    body = {"model": "midjourney", "messages": [{"role": "user", "content": "a raw stream"}], "stream": True}
    with httpx.stream("POST", server.v1 + "/chat/completions", json=body, headers={"Authorization": f"Bearer {KEY_A}"}, timeout=30) as r:
        assert r.status_code == 200
        assert r.headers["content-type"].startswith("text/event-stream")
        assert r.headers.get("x-accel-buffering") == "no"
        lines = list(r.iter_lines())
    data = [line[6:] for line in lines if line.startswith("data: ")]
    assert data[-1] == "[DONE]"
    chunks = [json.loads(d) for d in data[:-1]]
    assert {c["object"] for c in chunks} == {"chat.completion.chunk"}
    assert all("usage" not in c for c in chunks)  # only with include_usage
    assert all(c["choices"][0]["finish_reason"] is None for c in chunks[:-1])
    assert not any(line.startswith("event:") for line in lines)


def test_include_usage_adds_a_final_usage_chunk(client: openai.OpenAI) -> None:
    text, chunks = stream_text(client, [{"role": "user", "content": "a brass usage meter"}], stream_options={"include_usage": True})
    last = chunks[-1]
    assert last.choices == [] and last.usage is not None
    assert last.usage.total_tokens == last.usage.prompt_tokens + last.usage.completion_tokens > 0
    assert all(c.usage is None for c in chunks[:-1])
    assert chunks[-2].choices[0].finish_reason == "stop"
    assert MD_IMAGE.search(text)


def test_keepalive_comments_while_waiting(server: ServerProcess) -> None:
    sim = httpx.get(server.base + "/readyz", headers=ADMIN).json()["simulator_url"]
    assert httpx.post(sim + "/_simulator/faults/stall-next-job", json={}).json()["ok"]
    body = {"model": "midjourney", "messages": [{"role": "user", "content": "a stalled job"}], "stream": True}
    comments = 0
    content = ""
    with httpx.stream("POST", server.v1 + "/chat/completions", json=body, headers={"Authorization": f"Bearer {KEY_A}"}, timeout=30) as r:
        for line in r.iter_lines():
            if line.startswith(":"):
                comments += 1
            elif line.startswith("data: {"):
                content += json.loads(line[6:])["choices"][0]["delta"].get("content") or ""
            if comments >= 2 and "waiting to start" in content:
                break  # the client leaves: the job must not be cancelled by that
    job_id = ref(content)
    time.sleep(0.3)
    assert job(server, job_id)["status"] in ("SUBMITTED", "IN_PROGRESS")
    history = [{"role": "user", "content": "a stalled job"}, {"role": "assistant", "content": content}]
    client = openai.OpenAI(base_url=server.v1, api_key=KEY_A, max_retries=0, timeout=30)
    # a follow-up on a job that has not finished is told to wait
    answer = ask(client, [*history, {"role": "user", "content": "U2"}])
    assert "still running" in answer and job_id in answer
    # an explicit cancel in the same conversation stops it
    answer = ask(client, [*history, {"role": "user", "content": "取消"}])
    assert "Cancelled" in answer and job_id in answer
    assert job(server, job_id)["status"] == "CANCEL"
    # and it was stopped at Midjourney too (❌ on its progress message), not only forgotten here
    sim_jobs = httpx.get(sim + "/_simulator/jobs").json()
    assert [j["state"] for j in sim_jobs if "a stalled job" in j["prompt"]] == ["cancelled"]
    # nothing left to cancel
    answer = ask(client, [*history, {"role": "assistant", "content": answer}, {"role": "user", "content": "cancel"}])
    assert "Nothing is running" in answer


def test_disconnect_does_not_cancel_and_the_job_can_be_followed_up(server: ServerProcess, client: openai.OpenAI) -> None:
    body = {"model": "midjourney", "messages": [{"role": "user", "content": "a walk-away prompt"}], "stream": True}
    content = ""
    with httpx.stream("POST", server.v1 + "/chat/completions", json=body, headers={"Authorization": f"Bearer {KEY_A}"}, timeout=30) as r:
        for line in r.iter_lines():
            if line.startswith("data: {"):
                content += json.loads(line[6:])["choices"][0]["delta"].get("content") or ""
            if JOB_REF.search(content):
                break
    job_id = ref(content)
    deadline = time.monotonic() + 20
    while job(server, job_id)["status"] != "SUCCESS":
        assert time.monotonic() < deadline, job(server, job_id)
        time.sleep(0.1)
    # the cut-off answer still names the job: a follow-up finds it
    answer = ask(client, [{"role": "user", "content": "a walk-away prompt"}, {"role": "assistant", "content": content}, {"role": "user", "content": "U1"}])
    up = job(server, ref(answer))
    assert (up["action"], up["parent_id"], up["index"]) == ("UPSCALE", job_id, 1)


# --- follow-ups ---------------------------------------------------------------------------------


@pytest.mark.parametrize(("upscale", "vary"), [("U2", "vary strong"), ("放大第二张", "强烈变化")])
def test_three_turn_conversation(server: ServerProcess, client: openai.OpenAI, upscale: str, vary: str) -> None:
    messages: list[dict[str, Any]] = [{"role": "user", "content": f"a red fox in snow ({upscale})"}]
    text, _ = stream_text(client, messages)
    grid_id = ref(text)
    messages += [{"role": "assistant", "content": text}, {"role": "user", "content": upscale}]
    second = ask(client, messages)
    up = job(server, ref(second))
    assert (up["action"], up["parent_id"], up["index"], up["status"]) == ("UPSCALE", grid_id, 2, "SUCCESS")
    assert MD_IMAGE.search(second) and "`Vary (Strong)`" in second
    messages += [{"role": "assistant", "content": second}, {"role": "user", "content": vary}]
    third, chunks = stream_text(client, messages)
    strong = job(server, ref(third))
    assert (strong["action"], strong["parent_id"], strong["status"]) == ("VARY_STRONG", up["id"], "SUCCESS")
    assert chunks[-1].choices[0].finish_reason == "stop"
    fetch_png(MD_IMAGE.findall(third)[-1])


def test_follow_up_found_by_image_url_alone(server: ServerProcess, client: openai.OpenAI) -> None:
    """A UI that keeps only the image markdown of the answer still lets V3 find the grid."""
    text, _ = stream_text(client, [{"role": "user", "content": "a paper crane"}])
    grid_id = ref(text)
    only_image = "![grid](" + MD_IMAGE.findall(text)[-1] + ")"
    assert "job `" not in only_image
    answer = ask(client, [{"role": "user", "content": "a paper crane"}, {"role": "assistant", "content": only_image}, {"role": "user", "content": "V3"}])
    v = job(server, ref(answer))
    assert (v["action"], v["parent_id"], v["index"]) == ("VARIATION", grid_id, 3)


def test_follow_up_without_a_grid_gets_a_helpful_answer(client: openai.OpenAI) -> None:
    result = client.chat.completions.create(model="midjourney", messages=[{"role": "user", "content": "U2"}])
    content = result.choices[0].message.content or ""
    assert result.choices[0].finish_reason == "stop"
    assert "no Midjourney image in this conversation" in content and "U1-U4" in content
    assert (result.model_extra or {}).get("job_id") is None


def test_a_button_the_result_lacks_is_explained(client: openai.OpenAI) -> None:
    text, _ = stream_text(client, [{"role": "user", "content": "a tin robot"}])
    messages = [{"role": "user", "content": "a tin robot"}, {"role": "assistant", "content": text}]
    answer = ask(client, [*messages, {"role": "user", "content": "vary strong"}])
    assert "has no **Vary (Strong)**" in answer and "`U1`" in answer and "Upscale one of its images first" in answer
    answer = ask(client, [*messages, {"role": "user", "content": "vary region"}])
    assert "mask" in answer


def submitted_total(server: ServerProcess) -> int:
    text = httpx.get(server.base + "/metrics", headers=ADMIN).text
    return sum(int(float(line.rsplit(" ", 1)[1])) for line in text.splitlines() if line.startswith("mj_jobs_submitted_total{"))


def test_another_keys_history_cannot_act_on_your_job(server: ServerProcess, client: openai.OpenAI) -> None:
    text, _ = stream_text(client, [{"role": "user", "content": "mine, not yours"}])
    other = openai.OpenAI(base_url=server.v1, api_key=KEY_B, max_retries=0, timeout=30)
    stolen = [{"role": "user", "content": "mine, not yours"}, {"role": "assistant", "content": text}]
    before = submitted_total(server)
    for command in ("U1", "cancel"):
        result = other.chat.completions.create(model="midjourney", messages=[*stolen, {"role": "user", "content": command}])  # type: ignore[arg-type]
        content = result.choices[0].message.content or ""
        assert "no Midjourney" in content, content
        assert (result.model_extra or {}).get("job_id") is None
    assert submitted_total(server) == before
    # the same history works for its owner
    answer = ask(client, [*stolen, {"role": "user", "content": "U1"}])
    assert job(server, ref(answer))["parent_id"] == ref(text)


# --- images in messages -------------------------------------------------------------------------


def test_describe_an_image_part(server: ServerProcess, client: openai.OpenAI) -> None:
    messages = [
        {
            "role": "user",
            "content": [{"type": "text", "text": "describe"}, {"type": "image_url", "image_url": {"url": data_url(png((200, 50, 50)))}}],
        }
    ]
    text, _ = stream_text(client, messages)
    d = job(server, ref(text))
    assert d["action"] == "DESCRIBE" and len(d["texts"]) == 4
    for i in range(1, 5):
        assert re.search(rf"^{i}\. \S", text, re.M), text
    # an image alone asks the same
    answer = ask(client, [{"role": "user", "content": [{"type": "image_url", "image_url": {"url": data_url(png((1, 2, 3)))}}]}])
    assert job(server, ref(answer))["action"] == "DESCRIBE"


def test_blend_image_parts(server: ServerProcess, client: openai.OpenAI, foreign_host: str) -> None:
    parts = [
        {"type": "text", "text": "blend portrait"},
        {"type": "image_url", "image_url": {"url": data_url(png((250, 200, 0)))}},
        {"type": "image_url", "image_url": foreign_host},  # some UIs send a bare string
    ]
    text, _ = stream_text(client, [{"role": "user", "content": parts}])
    b = job(server, ref(text))
    assert b["action"] == "BLEND" and b["status"] == "SUCCESS"
    img = fetch_png(MD_IMAGE.findall(text)[-1])
    assert img.height > img.width  # portrait
    # two images and no text blend too
    answer = ask(client, [{"role": "user", "content": parts[1:]}])
    assert job(server, ref(answer))["action"] == "BLEND"


def test_image_prompt_from_a_url_and_from_our_own_result(server: ServerProcess, client: openai.OpenAI, foreign_host: str) -> None:
    first, _ = stream_text(client, [{"role": "user", "content": "a cathedral"}])
    ours = MD_IMAGE.findall(first)[-1]
    parts = [
        {"type": "text", "text": "in the style of stained glass"},
        {"type": "image_url", "image_url": {"url": foreign_host}},
        {"type": "image_url", "image_url": {"url": ours}},
    ]
    text, _ = stream_text(client, [{"role": "user", "content": parts}])
    imagine = job(server, ref(text))
    assert imagine["action"] == "IMAGINE" and imagine["final_prompt"].count("https://s.mj.run/") == 2


def test_unfetchable_image_is_a_400(client: openai.OpenAI) -> None:
    parts = [{"type": "text", "text": "a cat"}, {"type": "image_url", "image_url": {"url": "http://169.254.169.254/latest/meta-data"}}]
    with pytest.raises(openai.BadRequestError) as err:
        client.chat.completions.create(model="midjourney", messages=[{"role": "user", "content": parts}])  # type: ignore[list-item]
    assert err.value.body["param"] == "messages" and "Image 1" in err.value.body["message"]  # type: ignore[index]


def test_shorten(server: ServerProcess, client: openai.OpenAI) -> None:
    answer = ask(client, [{"role": "user", "content": "shorten a very detailed and rather long prompt about a castle on a hill at sunset"}])
    s = job(server, ref(answer))
    assert s["action"] == "SHORTEN" and re.search(r"^1\. \S", answer, re.M)


# --- the non-streaming form, refusals, errors ---------------------------------------------------


def test_non_streaming(server: ServerProcess, client: openai.OpenAI) -> None:
    result = client.chat.completions.create(model="niji", messages=[{"role": "system", "content": "be nice"}, {"role": "user", "content": "a koi pond"}])
    assert result.object == "chat.completion" and result.id.startswith("chatcmpl-")
    choice = result.choices[0]
    assert choice.finish_reason == "stop" and choice.message.role == "assistant"
    content = choice.message.content or ""
    assert "⏳" not in content and "Preview" not in content  # progress belongs to streams
    job_id = (result.model_extra or {})["job_id"]
    assert ref(content) == job_id and job(server, job_id)["status"] == "SUCCESS"
    fetch_png(MD_IMAGE.findall(content)[0])
    assert result.usage and result.usage.completion_tokens > 0 and result.model == "niji"


def test_content_policy_refusals(client: openai.OpenAI) -> None:
    # our local list: refused before any job
    text, chunks = stream_text(client, [{"role": "user", "content": "a nude portrait"}])
    assert chunks[-1].choices[0].finish_reason == "content_filter" and "banned word" in text
    # Midjourney's own moderation, after the stream has started
    text, chunks = stream_text(client, [{"role": "user", "content": "a forbidden door"}])
    assert chunks[-1].choices[0].finish_reason == "content_filter" and "🚫" in text and JOB_REF.search(text)
    result = client.chat.completions.create(model="midjourney", messages=[{"role": "user", "content": "another forbidden door"}])
    assert result.choices[0].finish_reason == "content_filter"


@pytest.mark.parametrize(
    ("body", "status", "param", "code"),
    [
        ({"model": "midjourney", "messages": [{"role": "user", "content": "x"}], "n": 2}, 400, "n", None),
        ({"model": "dall-e-9", "messages": [{"role": "user", "content": "x"}]}, 404, "model", "model_not_found"),
        ({"model": "midjourney", "messages": []}, 400, "messages", None),
        ({"model": "midjourney", "messages": [{"role": "system", "content": "only"}]}, 400, "messages", None),
        ({"model": "midjourney", "messages": [{"role": "user", "content": 5}]}, 400, "messages", None),
        ({"model": "midjourney", "messages": [{"role": "user", "content": "x"}], "stream": "yes"}, 400, "stream", None),
    ],
)
def test_errors_before_the_stream_have_openai_shape(server: ServerProcess, body: dict[str, Any], status: int, param: str, code: str | None) -> None:
    for stream in (False, True):
        r = httpx.post(server.v1 + "/chat/completions", json={**body, "stream": body.get("stream", stream)}, headers={"Authorization": f"Bearer {KEY_A}"})
        assert r.status_code == status, r.text
        assert r.headers["content-type"].startswith("application/json")
        error = r.json()["error"]
        assert error["param"] == param and error["message"] and error["type"] == "invalid_request_error"
        if code:
            assert error["code"] == code


def test_auth_required(server: ServerProcess) -> None:
    r = httpx.post(server.v1 + "/chat/completions", json={"messages": [{"role": "user", "content": "x"}]})
    assert r.status_code == 401 and r.json()["error"]["code"] == "invalid_api_key"


def test_help(client: openai.OpenAI) -> None:
    answer = ask(client, [{"role": "user", "content": "help"}])
    assert "U1-U4" in answer and "放大第二张" in answer
