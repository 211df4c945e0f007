"""The probe's malformed requests, replayed against a real server on every front door: each gets
a 4xx (or /mj's code 4) naming the field, and none starts a job or reaches a host."""

from __future__ import annotations

import http.server
import io
import sys
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import openai
import pytest
from PIL import Image

sys.path.insert(0, str(Path(__file__).parent))
from server_process import KEY_A, ServerProcess  # noqa: E402

AUTH = {"Authorization": f"Bearer {KEY_A}"}
MJ = {"mj-api-secret": KEY_A}
DEEP = b"[" * 5000 + b"]" * 5000


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerProcess]:
    s = ServerProcess(tmp_path_factory.mktemp("typed")).start()
    yield s
    s.stop()


@pytest.fixture(scope="module")
def loopback_host() -> Iterator[tuple[str, list[str]]]:
    """A loopback HTTP server that records every request: a user URL must never reach it."""
    seen: list[str] = []

    class Handler(http.server.BaseHTTPRequestHandler):
        def do_GET(self) -> None:  # noqa: N802
            seen.append(self.path)
            self.send_response(200)
            self.send_header("Content-Type", "text/html")
            self.end_headers()
            self.wfile.write(b"<html></html>")

        def log_message(self, *args: object) -> None:
            pass

    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=httpd.serve_forever, daemon=True).start()
    yield f"127.0.0.1:{httpd.server_address[1]}", seen
    httpd.shutdown()
    httpd.server_close()


def job_count(server: ServerProcess) -> int:
    r = httpx.get(f"{server.base}/mj/task/list", headers=MJ, timeout=10)
    assert r.status_code == 200, r.text
    return len(r.json())


def raw(server: ServerProcess, path: str, body: bytes, headers: dict[str, str]) -> httpx.Response:
    return httpx.post(server.base + path, content=body, headers={**headers, "content-type": "application/json"}, timeout=30)


@pytest.mark.parametrize(
    "path",
    ["/v1/images/generations", "/v1/chat/completions", "/v1/jobs/j_00000000000000000000/actions"],
)
def test_deep_json_is_a_400_on_openai_endpoints(server: ServerProcess, path: str) -> None:
    for body in (DEEP, b'{"prompt":"x","messages":[],"extra":' + DEEP + b"}"):
        r = raw(server, path, body, AUTH)
        assert r.status_code == 400, r.text
        assert r.json()["error"]["type"] == "invalid_request_error"


@pytest.mark.parametrize("path", ["/submit/imagine", "/submit/action", "/submit/blend", "/task/list-by-condition", "/submit/modal"])
def test_deep_json_is_code_4_on_mj_endpoints(server: ServerProcess, path: str) -> None:
    r = raw(server, "/mj" + path, b'{"prompt":"x","extra":' + DEEP + b"}", MJ)
    assert r.status_code == 200 and r.json()["code"] == 4, r.text
    assert "nested too deeply" in r.json()["description"]


@pytest.mark.parametrize(
    ("field", "value", "words"),
    [
        ("stream", "yes", "stream"),
        ("background", "plaid", "background"),
        ("size", "١٠x١٠", "ascii digits"),
        ("prompt", "a cat\u0000 --v 6", "control characters"),
        ("prompt", "a cat \u001b[2J", "control characters"),
        ("n", "2", "n"),
        ("n", 11, "n"),
        ("quality", "ultra", "quality"),
        ("response_format", "gif", "response_format"),
        ("output_compression", 101, "output_compression"),
    ],
)
def test_wrong_types_and_values_are_refused_without_a_job(server: ServerProcess, field: str, value: Any, words: str) -> None:
    before = job_count(server)
    client = openai.OpenAI(base_url=server.v1, api_key=KEY_A, max_retries=0, timeout=30)
    body: dict[str, Any] = {"prompt": "a red fox", field: value}
    with pytest.raises(openai.BadRequestError) as info:
        client.images.generate(**{"prompt": body.pop("prompt")}, extra_body=body)  # type: ignore[arg-type]
    error = info.value.body
    assert isinstance(error, dict) and error["param"] == field, error
    assert words.lower() in error["message"].lower()
    assert error["code"] in ("invalid_type", "invalid_value")
    assert job_count(server) == before


def test_chat_control_characters_and_wrong_stream_type(server: ServerProcess) -> None:
    before = job_count(server)
    for body in (
        {"model": "midjourney", "messages": [{"role": "user", "content": "a fox\u0000"}]},
        {"model": "midjourney", "messages": [{"role": "user", "content": "a fox"}], "stream": "yes"},
        {"model": "midjourney", "messages": [{"role": "user", "content": [{"type": "text", "text": "\u0007"}]}]},
    ):
        r = httpx.post(server.v1 + "/chat/completions", json=body, headers=AUTH, timeout=30)
        assert r.status_code == 400, r.text
        assert r.json()["error"]["param"] in ("messages", "stream")
    assert job_count(server) == before


@pytest.mark.parametrize(
    ("body", "words"),
    [
        ({"prompt": "x", "state": "s" * (1024 * 1024)}, "state"),
        ({"prompt": "x", "state": "a\u0000b"}, "state"),
        ({"prompt": "a fox\u0000"}, "control characters"),
        ({"prompt": "x" * 6001}, "prompt"),
        ({"prompt": "x", "base64Array": ["data:image/png;base64,AA"] * 6}, "base64Array"),
        ({"prompt": "x", "notifyHook": "h" * 3000}, "notifyHook"),
    ],
)
def test_mj_limits(server: ServerProcess, body: dict[str, Any], words: str) -> None:
    before = job_count(server)
    r = httpx.post(server.base + "/mj/submit/imagine", json=body, headers=MJ, timeout=30)
    assert r.status_code == 200 and r.json()["code"] == 4, r.text
    assert words.lower() in r.json()["description"].lower()
    assert job_count(server) == before


def test_user_urls_never_reach_loopback(server: ServerProcess, loopback_host: tuple[str, list[str]]) -> None:
    """The demo's simulator lives on loopback, but that exemption is for results only: a caller's
    URL to any loopback spelling is refused with one text, and no connection is made."""
    hostport, seen = loopback_host
    port = hostport.rsplit(":", 1)[1]
    spellings = [
        f"http://127.0.0.1:{port}/x.png",
        f"http://localhost:{port}/x.png",
        f"http://2130706433:{port}/x.png",
        f"http://0x7f000001:{port}/x.png",
        f"http://127.1:{port}/x.png",
        f"http://[::ffff:127.0.0.1]:{port}/x.png",
        f"http://[0:0:0:0:0:ffff:7f00:1]:{port}/x.png",
        "http://127.0.0.1:1/x.png",  # a closed port answers the same
    ]
    texts: set[str] = set()
    for url in spellings:
        chat = httpx.post(
            server.v1 + "/chat/completions",
            json={"model": "midjourney", "messages": [{"role": "user", "content": [{"type": "text", "text": "a fox"}, {"type": "image_url", "image_url": {"url": url}}]}]},
            headers=AUTH,
            timeout=30,
        )
        assert chat.status_code == 400, chat.text
        texts.add(chat.json()["error"]["message"].split(": ", 1)[1].rstrip("."))
        mj = httpx.post(server.base + "/mj/submit/describe", json={"link": url}, headers=MJ, timeout=30)
        assert mj.json()["code"] == 4, mj.text
        texts.add(mj.json()["description"].split(": ", 1)[1].rstrip("."))
        edit = httpx.post(server.v1 + "/images/edits", data={"prompt": "a fox", "image": url}, files={"x": ("x", b"")}, headers=AUTH, timeout=30)
        assert edit.status_code == 400, edit.text
        texts.add(edit.json()["error"]["message"].split(": ", 1)[1].rstrip("."))
    assert seen == []
    assert len(texts) == 1, texts
    assert all("127.0.0.1" not in t and "connect" not in t for t in texts)


@pytest.mark.parametrize(
    ("fields", "param"),
    [
        ({"prompt": "a fox", "stream": "yes"}, "stream"),
        ({"prompt": "a fox", "n": "two"}, "n"),
        ({"prompt": "a fox", "n": "0"}, "n"),
        ({"prompt": "a fox", "background": "plaid"}, "background"),
        ({"prompt": "a fox\u0000"}, "prompt"),
        ({"prompt": "a fox", "size": "١٠x١٠"}, "size"),
        ({"n": "1"}, "prompt"),
    ],
)
def test_multipart_fields_are_typed_too(server: ServerProcess, fields: dict[str, str], param: str) -> None:
    before = job_count(server)
    r = httpx.post(server.v1 + "/images/edits", data=fields, files={"image": ("a.png", _png(), "image/png")}, headers=AUTH, timeout=30)
    assert r.status_code == 400, r.text
    assert r.json()["error"]["param"] == param, r.text
    assert job_count(server) == before


def _png() -> bytes:
    buf = io.BytesIO()
    Image.new("RGB", (32, 32), (200, 40, 40)).save(buf, "PNG")
    return buf.getvalue()
