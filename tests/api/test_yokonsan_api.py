"""The yokonsan/midjourney-api trigger API (/v1/api/trigger/*) end to end: a real server in demo
mode, the project's README requests replayed unchanged, its answers checked, and the callback
messages it documents received by a loopback receiver (signed by our webhook machinery)."""

from __future__ import annotations

import io
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from PIL import Image

sys.path.insert(0, str(Path(__file__).parent))
from server_process import ADMIN, KEY_A, KEY_B, ServerProcess  # noqa: E402
from webhook_receiver import Receiver  # noqa: E402

SECRET = "whsec_" + "eW9rb25zYW4tY2FsbGJhY2stc2VjcmV0LWZvci10ZXN0cw=="
A = {"Authorization": f"Bearer {KEY_A}"}
B = {"Authorization": f"Bearer {KEY_B}"}
# the README's curl headers, as sent
README_HEADERS = {"accept": "application/json", "Content-Type": "application/json"}

# yokonsan/midjourney-api README-EN.md (a5781c4) request bodies, unchanged
README_IMAGINE = '{\n  "prompt": "a cute cat"\n}'
README_IMAGINE_PICURL = '{\n  "prompt": "a cute cat",\n  "picurl": "https://xxxxxx/xxxxxxxxxxxx.jpg"\n}'
README_UPSCALE = '{\n  "index": 1,\n  "msg_id": "xxxxxxxxxx",\n  "msg_hash": "xxxxx-xxx-xxxx-xxxx-xxxxxx",\n  "trigger_id": "xxxxxxxxxx"\n}'
README_DESCRIBE = '{\n  "upload_filename": "b56ca21a-5fbe-40b4-89ab-6e0aa732f561/9231228408.jpg",\n  "trigger_id": "9231228408"\n}'


@pytest.fixture(scope="module")
def env(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[ServerProcess, Receiver]]:
    receiver = Receiver(SECRET)
    server = ServerProcess(
        tmp_path_factory.mktemp("yokonsan"),
        env={
            "MJ_ADAPTER_WEBHOOK_SECRET": SECRET,
            "MJ_ADAPTER_YOKONSAN_CALLBACK_URL": receiver.base + "/callback",
            "MJ_ADAPTER_WEBHOOK_ALLOW_HOSTS": "127.0.0.1",
        },
    ).start()
    try:
        yield server, receiver
    finally:
        server.stop()
        receiver.stop()


def post(server: ServerProcess, path: str, content: str, headers: dict[str, str] = A) -> httpx.Response:
    return httpx.post(f"{server.base}/v1/api/trigger/{path}", content=content.encode(), headers={**README_HEADERS, **headers}, timeout=30)


def messages(receiver: Receiver, trigger_id: str) -> list[dict[str, Any]]:
    return [a.task for a in receiver.accepted("/callback") if a.task.get("trigger_id") == trigger_id]


def final(receiver: Receiver, trigger_id: str, kinds: tuple[str, ...] = ("end",), timeout: float = 60) -> dict[str, Any]:
    receiver.wait_for(lambda: any(m["type"] in (*kinds, "error", "banned") for m in messages(receiver, trigger_id)), timeout=timeout)
    msg = next(m for m in messages(receiver, trigger_id) if m["type"] in (*kinds, "error", "banned"))
    assert msg["type"] in kinds, msg
    return msg


def msg_hash(message: dict[str, Any]) -> str:
    # the README's own recipe
    return str(message["attachments"][0]["filename"].split("_")[-1].split(".")[0])


def test_imagine_callback_and_follow_ups(env: tuple[ServerProcess, Receiver]) -> None:
    server, receiver = env
    r = post(server, "imagine", README_IMAGINE)
    assert r.status_code == 200, r.text
    answer = r.json()
    assert set(answer) == {"message", "trigger_id", "trigger_type"}
    assert answer["message"] == "success" and answer["trigger_type"] == "generate" and answer["trigger_id"]
    trigger_id = answer["trigger_id"]

    end = final(receiver, trigger_id)
    assert set(end) == {"type", "id", "content", "attachments", "embeds", "trigger_id"}
    assert isinstance(end["id"], int) and end["id"] > 0 and end["embeds"] == []
    assert f"<#{trigger_id}#>" in end["content"] and "a cute cat" in end["content"]
    att = end["attachments"][0]
    assert {"id", "url", "proxy_url", "filename", "content_type", "width", "height", "size", "ephemeral"} <= set(att)
    img = httpx.get(att["url"], timeout=10)
    assert img.status_code == 200 and img.headers["content-type"].startswith("image/")
    assert Image.open(io.BytesIO(img.content)).size == (att["width"], att["height"])
    assert att["size"] == len(img.content)  # bytes, as Discord reports them
    # progress came first, with the same trigger_id; every callback is signed
    kinds = [m["type"] for m in messages(receiver, trigger_id)]
    assert kinds[-1] == "end" and set(kinds) <= {"start", "generating", "end"}
    assert all(a.signed_ok for a in receiver.accepted("/callback"))

    # another key cannot act on this message
    body = f'{{"index": 2, "msg_id": "{end["id"]}", "msg_hash": "{msg_hash(end)}", "trigger_id": "{trigger_id}"}}'
    r = post(server, "upscale", body, B)
    assert r.status_code == 200 and r.json()["code"] == 13, r.text
    # a wrong msg_hash is refused
    r = post(server, "upscale", body.replace(msg_hash(end), "0000-bad-hash"))
    assert r.json()["code"] == 13, r.text

    # U2 with msg_id / msg_hash from the callback
    r = post(server, "upscale", body)
    assert r.status_code == 200, r.text
    assert r.json() == {"message": "success", "trigger_id": trigger_id, "trigger_type": "upscale"}
    receiver.wait_for(lambda: sum(m["type"] == "end" for m in messages(receiver, trigger_id)) >= 2, timeout=60)
    up = [m for m in messages(receiver, trigger_id) if m["type"] == "end"][-1]
    assert up["id"] != end["id"] and "Image #2" in up["content"]
    single = httpx.get(up["attachments"][0]["url"], timeout=10)
    assert single.status_code == 200
    w, h = Image.open(io.BytesIO(single.content)).size
    assert (w, h) == (up["attachments"][0]["width"], up["attachments"][0]["height"])

    # zoomout 50 (2x) on the upscale, with a new business trigger_id
    r = post(server, "zoomout", f'{{"msg_id": "{up["id"]}", "msg_hash": "{msg_hash(up)}", "zoomout": 50, "trigger_id": "zoom-1"}}')
    assert r.json() == {"message": "success", "trigger_id": "zoom-1", "trigger_type": "zoomout"}, r.text
    zoom = final(receiver, "zoom-1")
    assert httpx.get(zoom["attachments"][0]["url"], timeout=10).status_code == 200


def test_readme_examples_answers_and_errors(env: tuple[ServerProcess, Receiver]) -> None:
    server, receiver = env
    # image prompt example: the URL goes in front of the prompt, as the project sends it
    r = post(server, "imagine", README_IMAGINE_PICURL)
    assert r.status_code == 200 and r.json()["message"] == "success" and r.json()["trigger_type"] == "generate", r.text
    # the upscale example's placeholder message is unknown here: the project's error body
    r = post(server, "upscale", README_UPSCALE)
    assert r.status_code == 200 and set(r.json()) == {"code", "message"} and r.json()["code"] == 13, r.text
    r = post(server, "describe", README_DESCRIBE)
    assert r.json()["code"] == 13, r.text
    # validation: HTTP 400 + code 13 "request params error"
    r = post(server, "upscale", '{"index": 1}')
    assert r.status_code == 400 and r.json()["code"] == 13 and r.json()["message"].startswith("request params error"), r.text
    # keys: none -> 401 in the same shape
    r = httpx.post(f"{server.base}/v1/api/trigger/imagine", json={"prompt": "a cute cat"}, timeout=10)
    assert r.status_code == 401 and r.json()["code"] == 13
    # banned prompt -> code 14
    r = post(server, "imagine", '{"prompt": "a photo of nude people"}')
    assert r.status_code == 200 and r.json()["code"] == 14, r.text
    # queue release answers as the project does
    r = post(server, "queue/release", '{"trigger_id": "123"}')
    assert r.json() == {"message": "success", "trigger_id": "123", "trigger_type": ""}


def test_upload_describe_and_message(env: tuple[ServerProcess, Receiver]) -> None:
    server, receiver = env
    buf = io.BytesIO()
    Image.new("RGB", (96, 64), (200, 80, 40)).save(buf, "JPEG")
    r = httpx.post(f"{server.base}/v1/api/trigger/upload", files={"file": ("cH16Ifh.jpg", buf.getvalue(), "image/jpeg")}, headers={"accept": "application/json", **A}, timeout=30)
    assert r.status_code == 200, r.text
    up = r.json()
    assert set(up) == {"message", "upload_filename", "upload_url", "trigger_id"} and up["message"] == "success"
    assert httpx.get(up["upload_url"], timeout=10).status_code == 200

    r = post(server, "describe", f'{{"upload_filename": "{up["upload_filename"]}", "trigger_id": "{up["trigger_id"]}"}}')
    assert r.json() == {"message": "success", "trigger_id": up["trigger_id"], "trigger_type": "describe"}, r.text
    text = final(receiver, up["trigger_id"], kinds=("text",))
    assert text["attachments"] == [] and len(text["embeds"]) == 1
    assert text["embeds"][0]["description"] and text["embeds"][0]["image"]["url"]
    assert (text["embeds"][0]["image"]["width"], text["embeds"][0]["image"]["height"]) == (96, 64)

    r = post(server, "message", f'{{"upload_filename": "{up["upload_filename"]}"}}')
    assert r.status_code == 200 and r.json()["message"] == "success", r.text
    picurl = r.json()["picurl"]
    # the link works as an image prompt
    r = post(server, "imagine", f'{{"prompt": "a cute cat", "picurl": "{picurl}"}}')
    assert r.json()["message"] == "success", r.text
    final(receiver, r.json()["trigger_id"])

    r = httpx.post(f"{server.base}/v1/api/trigger/upload", files={"file": ("a.txt", b"hello", "text/plain")}, headers=A, timeout=10)
    assert r.json()["code"] == 13 and r.json()["message"] == "must image"


def test_numeric_ids_and_every_follow_up_callback(env: tuple[ServerProcess, Receiver]) -> None:
    """The project's pydantic 1.10 models take numbers for its str fields: msg_id as the callback's
    integer id, a numeric trigger_id. Every follow-up sends its own `end` callback."""
    server, receiver = env
    grid = final(receiver, post(server, "imagine", '{"prompt": "a red lighthouse"}').json()["trigger_id"])
    assert all(att["spoiler"] is False and att["ephemeral"] is False for att in grid["attachments"])

    # variation: V3 of the grid, msg_id sent as the number the callback carries, trigger_id a number
    r = post(server, "variation", f'{{"index": "3", "msg_id": {grid["id"]}, "msg_hash": "{msg_hash(grid)}", "trigger_id": 4242424242}}')
    assert r.json() == {"message": "success", "trigger_id": "4242424242", "trigger_type": "variation"}, r.text
    var = final(receiver, "4242424242")
    assert len(var["attachments"]) == 1 and var["id"] != grid["id"]

    r = post(server, "reset", f'{{"msg_id": "{grid["id"]}", "msg_hash": "{msg_hash(grid)}", "trigger_id": "reroll-1"}}')
    assert r.json() == {"message": "success", "trigger_id": "reroll-1", "trigger_type": "reset"}, r.text
    final(receiver, "reroll-1")

    r = post(server, "upscale", f'{{"index": 1, "msg_id": {grid["id"]}, "msg_hash": "{msg_hash(grid)}", "trigger_id": "up-1"}}')
    up = final(receiver, r.json()["trigger_id"])
    follow = {
        "solo_variation": '"index": 1',
        "solo_low_variation": '"index": 1',
        "solo_high_variation": '"index": 1',
        "expand": '"direction": "left"',
        "zoomout": '"zoomout": 75',
    }
    for path, extra in follow.items():
        trigger = f"{path}-1"
        r = post(server, path, f'{{{extra}, "msg_id": "{up["id"]}", "msg_hash": "{msg_hash(up)}", "trigger_id": "{trigger}"}}')
        assert r.json() == {"message": "success", "trigger_id": trigger, "trigger_type": path}, (path, r.text)
        done = final(receiver, trigger)
        assert done["attachments"] and f"<#{trigger}#>" in done["content"], (path, done)
        kinds = [m["type"] for m in messages(receiver, trigger)]
        assert kinds[-1] == "end" and set(kinds) <= {"start", "generating", "end"}, (path, kinds)
    # a direction or zoom the project does not know: its code 13
    r = post(server, "expand", f'{{"direction": "sideways", "msg_id": "{up["id"]}", "msg_hash": "{msg_hash(up)}", "trigger_id": "x"}}')
    assert r.status_code == 200 and r.json()["code"] == 13


def test_error_and_banned_callbacks(env: tuple[ServerProcess, Receiver]) -> None:
    server, receiver = env
    sim = httpx.get(server.base + "/readyz", headers=ADMIN, timeout=5).json()["simulator_url"]
    try:
        for _ in range(2):  # either demo account may take the job
            httpx.post(sim + "/_simulator/faults/fail-next-job", json={"title": "Sorry! Could not complete the job!"}, timeout=5).raise_for_status()
        r = post(server, "imagine", '{"prompt": "a glass bridge"}')
        assert r.json()["message"] == "success", r.text
        err = final(receiver, r.json()["trigger_id"], kinds=("error",))
        assert err["attachments"] == [] and "(Stopped)" in err["content"] and f"<#{r.json()['trigger_id']}#>" in err["content"]
    finally:
        httpx.post(sim + "/_simulator/faults/reset", timeout=5)
    # a word only Midjourney's moderation knows (not our local list): the project's "banned"
    r = post(server, "imagine", '{"prompt": "a forbidden garden"}')
    assert r.json()["message"] == "success", r.text
    banned = final(receiver, r.json()["trigger_id"], kinds=("banned",))
    assert banned["trigger_id"] == r.json()["trigger_id"] and banned["attachments"] == []
