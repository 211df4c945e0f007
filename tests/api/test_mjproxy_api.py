"""The midjourney-proxy (/mj) front door against a real server in demo mode: the request
sequences of the two best-known client kinds (a web UI that polls fetch and follows code 21
with a modal; a relay that sends Bearer keys and mode prefixes), the error codes for bad input,
and one engine behind both front doors."""

from __future__ import annotations

import base64
import io
import re
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import openai
import pytest
from PIL import Image

sys.path.insert(0, str(Path(__file__).parent))
from server_process import KEY_A, KEY_B, ServerProcess  # noqa: E402

WEB_UI = {"mj-api-secret": KEY_A, "content-type": "application/json"}
RELAY = {"Authorization": f"Bearer {KEY_B}"}
FINISHED = ("SUCCESS", "FAILURE", "CANCEL")
PROGRESS_RE = re.compile(r"^(\d|[1-9]\d|100)%$")
TASK_FIELDS = {
    "id", "action", "status", "prompt", "promptEn", "description", "state", "submitTime", "startTime",
    "finishTime", "progress", "imageUrl", "failReason", "buttons", "properties",
}  # fmt: skip


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerProcess]:
    s = ServerProcess(tmp_path_factory.mktemp("mj")).start()
    yield s
    s.stop()


def png(colour: tuple[int, int, int], size: tuple[int, int] = (64, 64)) -> bytes:
    buf = io.BytesIO()
    Image.new("RGB", size, colour).save(buf, "PNG")
    return buf.getvalue()


def data_url(data: bytes, mime: str = "image/png") -> str:
    return f"data:{mime};base64,{base64.b64encode(data).decode()}"


def post(server: ServerProcess, path: str, body: Any, headers: dict[str, str], prefix: str = "/mj") -> httpx.Response:
    return httpx.post(f"{server.base}{prefix}{path}", json=body, headers=headers, timeout=30)


def submit(server: ServerProcess, path: str, body: Any, headers: dict[str, str], prefix: str = "/mj", codes: tuple[int, ...] = (1, 22)) -> dict[str, Any]:
    r = post(server, path, body, headers, prefix)
    assert r.status_code == 200, r.text
    answer = r.json()
    assert set(answer) == {"code", "description", "result", "properties"}
    assert answer["code"] in codes, answer
    return answer  # type: ignore[no-any-return]


def poll(server: ServerProcess, task_id: str, headers: dict[str, str], prefix: str = "/mj", interval: float = 0.05, timeout: float = 30) -> list[dict[str, Any]]:
    """Fetch every `interval` (the web UI does it every 5 s) until the task ends; every snapshot."""
    seen: list[dict[str, Any]] = []
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        r = httpx.get(f"{server.base}{prefix}/task/{task_id}/fetch", headers=headers, timeout=10)
        assert r.status_code == 200, r.text
        task = r.json()
        assert TASK_FIELDS <= set(task), set(task) ^ TASK_FIELDS
        assert PROGRESS_RE.match(task["progress"]), task["progress"]
        seen.append(task)
        if task["status"] in FINISHED:
            return seen
        time.sleep(interval)
    raise TimeoutError(f"task {task_id} still {seen[-1]['status'] if seen else '?'}")


def image_at(url: str) -> Image.Image:
    r = httpx.get(url, timeout=10)
    assert r.status_code == 200, (url, r.status_code)
    img = Image.open(io.BytesIO(r.content))
    img.load()
    return img


def button(task: dict[str, Any], label: str) -> str:
    for b in task["buttons"]:
        if b["label"] == label or b["emoji"] == label:
            assert set(b) == {"customId", "emoji", "label", "type", "style"} and b["type"] == 2
            return str(b["customId"])
    raise AssertionError(f"no {label!r} button in {[b['label'] or b['emoji'] for b in task['buttons']]}")


# --- the web UI -------------------------------------------------------------------------------


def test_web_ui_imagine_poll_upscale_custom_zoom_and_vary_region(server: ServerProcess) -> None:
    red = data_url(png((220, 30, 30)))
    answer = submit(server, "/submit/imagine", {"prompt": "a red fox in snow", "base64Array": [red], "notifyHook": "", "state": "ui-1"}, WEB_UI)
    task_id = answer["result"]
    snapshots = poll(server, task_id, WEB_UI)
    done = snapshots[-1]
    assert done["status"] == "SUCCESS", done
    assert done["action"] == "IMAGINE" and done["progress"] == "100%" and done["state"] == "ui-1"
    assert done["prompt"] == "a red fox in snow" and done["failReason"] is None
    # milliseconds since the epoch, in order
    assert done["submitTime"] > 1_600_000_000_000 and done["submitTime"] <= done["startTime"] <= done["finishTime"]
    # while running, imageUrl is the preview; at the end, our re-hosted grid
    running = [s for s in snapshots if s["status"] == "IN_PROGRESS" and s["imageUrl"]]
    if running:
        assert "preview" in running[-1]["imageUrl"] and image_at(running[-1]["imageUrl"]).width > 0
    assert done["imageUrl"].startswith(server.base + "/images/" + task_id + "/")
    grid = image_at(done["imageUrl"])
    assert grid.width >= 2 and grid.height >= 2
    # the image prompt reached Midjourney as a link in front of the text
    assert "a red fox in snow" in done["properties"]["finalPrompt"] and "https://" in done["properties"]["finalPrompt"]
    assert done["properties"]["discordInstanceId"] and done["properties"]["messageHash"]

    # press U2
    up = submit(server, "/submit/action", {"taskId": task_id, "customId": button(done, "U2"), "state": "ui-2"}, WEB_UI)
    upscaled = poll(server, up["result"], WEB_UI)[-1]
    assert upscaled["status"] == "SUCCESS" and upscaled["action"] == "UPSCALE" and upscaled["state"] == "ui-2"
    assert upscaled["properties"]["parentId"] == task_id and upscaled["properties"]["index"] == 2
    image_at(upscaled["imageUrl"])

    # Custom Zoom needs a modal: code 21, the task waits in MODAL until /submit/modal answers it
    cz = submit(server, "/submit/action", {"taskId": upscaled["id"], "customId": button(upscaled, "Custom Zoom")}, WEB_UI, codes=(21,))
    assert cz["description"] and cz["result"]
    waiting = httpx.get(f"{server.base}/mj/task/{cz['result']}/fetch", headers=WEB_UI).json()
    assert waiting["status"] == "MODAL" and waiting["action"] == "ZOOM" and waiting["progress"] == "0%"
    submit(server, "/submit/modal", {"taskId": cz["result"], "prompt": "a red fox in snow --zoom 1.8"}, WEB_UI)
    zoomed = poll(server, cz["result"], WEB_UI)[-1]
    assert zoomed["status"] == "SUCCESS" and "--zoom 1.8" in zoomed["properties"]["finalPrompt"]

    # Vary (Region): code 21, then the mask (white = redo) and a prompt
    vr = submit(server, "/submit/action", {"taskId": upscaled["id"], "customId": button(upscaled, "Vary (Region)")}, WEB_UI, codes=(21,))
    mask = data_url(png((255, 255, 255), (32, 32)))
    missing = submit(server, "/submit/modal", {"taskId": vr["result"], "prompt": "a blue hat"}, WEB_UI, codes=(4,))
    assert "mask" in missing["description"].lower()
    submit(server, "/submit/modal", {"taskId": vr["result"], "prompt": "a blue hat", "maskBase64": mask}, WEB_UI)
    varied = poll(server, vr["result"], WEB_UI)[-1]
    assert varied["status"] == "SUCCESS" and varied["action"] == "VARIATION"
    assert varied["properties"]["jobAction"] == "VARY_REGION"


def test_web_ui_describe_blend_shorten(server: ServerProcess) -> None:
    described = submit(server, "/submit/describe", {"base64": data_url(png((10, 120, 200)))}, WEB_UI)
    task = poll(server, described["result"], WEB_UI)[-1]
    assert task["status"] == "SUCCESS" and task["action"] == "DESCRIBE"
    # four prompts, numbered with keycaps as Midjourney writes them
    assert [line[:3] for line in task["prompt"].split("\n\n")] == ["1\ufe0f\u20e3", "2\ufe0f\u20e3", "3\ufe0f\u20e3", "4\ufe0f\u20e3"]
    assert task["imageUrl"] and image_at(task["imageUrl"]).width == 64  # the described image
    # a pick imagines that prompt
    pick = submit(server, "/submit/action", {"taskId": task["id"], "customId": button(task, "2")}, WEB_UI)
    picked = poll(server, pick["result"], WEB_UI)[-1]
    assert picked["status"] == "SUCCESS" and picked["action"] == "IMAGINE"
    assert picked["prompt"] in task["prompt"]

    blend = submit(server, "/submit/blend", {"base64Array": [data_url(png((250, 0, 0))), data_url(png((0, 0, 250)))], "dimensions": "LANDSCAPE"}, WEB_UI)
    blended = poll(server, blend["result"], WEB_UI)[-1]
    assert blended["status"] == "SUCCESS" and blended["action"] == "BLEND" and blended["buttons"]
    assert "3:2" in blended["properties"]["finalPrompt"]

    short = submit(server, "/submit/shorten", {"prompt": "a very long and elaborate prompt about a castle on a hill at dusk, cinematic"}, WEB_UI)
    shortened = poll(server, short["result"], WEB_UI)[-1]
    assert shortened["status"] == "SUCCESS" and shortened["action"] == "SHORTEN"
    assert shortened["prompt"].startswith("1\ufe0f\u20e3") and shortened["description"].startswith("/shorten ")


# --- the relay --------------------------------------------------------------------------------


def test_relay_with_bearer_keys_and_mode_prefixes(server: ServerProcess) -> None:
    answer = submit(server, "/submit/imagine", {"prompt": "a lighthouse --fast", "botType": "MID_JOURNEY"}, RELAY, prefix="/mj-relax/mj")
    task = poll(server, answer["result"], RELAY, prefix="/mj-relax/mj")[-1]
    assert task["status"] == "SUCCESS"
    # the prefix forces the mode: the prompt's own speed flag gave way
    assert task["properties"]["mode"] == "relax"
    assert "--relax" in task["properties"]["finalPrompt"] and "--fast" not in task["properties"]["finalPrompt"]

    v2 = submit(server, "/submit/simple-change", {"content": f"{task['id']} V2"}, RELAY, prefix="/mj-turbo/mj")
    varied = poll(server, v2["result"], RELAY, prefix="/mj-fast/mj")[-1]
    assert varied["status"] == "SUCCESS" and varied["action"] == "VARIATION" and varied["properties"]["mode"] == "turbo"

    u3 = submit(server, "/submit/change", {"taskId": task["id"], "action": "UPSCALE", "index": 3}, RELAY)
    up = poll(server, u3["result"], RELAY)[-1]
    assert up["status"] == "SUCCESS" and up["properties"]["index"] == 3

    listed = post(server, "/task/list-by-condition", {"ids": [task["id"], u3["result"], "j_00000000000000000000"]}, RELAY, prefix="/mj-fast/mj")
    assert listed.status_code == 200 and {t["id"] for t in listed.json()} == {task["id"], u3["result"]}
    recent = httpx.get(f"{server.base}/mj/task/list", headers=RELAY).json()
    assert {task["id"], v2["result"], u3["result"]} <= {t["id"] for t in recent}

    # tasks belong to the key that made them
    other = httpx.get(f"{server.base}/mj/task/{task['id']}/fetch", headers={"mj-api-secret": KEY_A})
    assert other.status_code == 404 and other.json()["code"] == 3
    assert post(server, "/task/list-by-condition", {"ids": [task["id"]]}, {"mj-api-secret": KEY_A}).json() == []
    stolen = post(server, "/submit/action", {"taskId": task["id"], "customId": button(task, "U1")}, {"mj-api-secret": KEY_A})
    assert stolen.json()["code"] == 3
    # no key, a wrong key
    for headers in ({}, {"mj-api-secret": "sk-wrong"}, {"Authorization": "Bearer sk-wrong"}):
        r = post(server, "/submit/imagine", {"prompt": "x"}, headers)
        assert r.status_code == 401 and r.json()["code"] == 4 and "mj-api-secret" in r.json()["description"]


def test_one_engine_behind_both_front_doors(server: ServerProcess) -> None:
    client = openai.OpenAI(base_url=server.v1, api_key=KEY_A, max_retries=0, timeout=60)
    made = client.images.generate(model="midjourney", prompt="a paper boat", n=1)
    job_id = (made.model_extra or {})["job_ids"][0]
    task = httpx.get(f"{server.base}/mj/task/{job_id}/fetch", headers=WEB_UI).json()
    assert task["status"] == "SUCCESS" and task["action"] == "IMAGINE" and task["prompt"] == "a paper boat"
    up = submit(server, "/submit/action", {"taskId": job_id, "customId": button(task, "U1")}, WEB_UI)
    poll(server, up["result"], WEB_UI)
    view = httpx.get(f"{server.v1}/jobs/{up['result']}", headers={"Authorization": f"Bearer {KEY_A}"}).json()
    assert view["status"] == "SUCCESS" and view["parent_id"] == job_id and view["action"] == "UPSCALE"

    # a task made through /mj, followed up in chat by the same key
    mine = submit(server, "/submit/imagine", {"prompt": "a tin robot"}, WEB_UI)
    poll(server, mine["result"], WEB_UI)
    chat = client.chat.completions.create(
        model="midjourney",
        messages=[
            {"role": "user", "content": "a tin robot"},
            {"role": "assistant", "content": f"Done: job `{mine['result']}`"},
            {"role": "user", "content": "U4"},
        ],
    )
    content = chat.choices[0].message.content or ""
    children = [t for t in httpx.get(f"{server.base}/mj/task/list", headers=WEB_UI).json() if t["properties"].get("parentId") == mine["result"]]
    assert len(children) == 1 and children[0]["properties"]["index"] == 4 and children[0]["status"] == "SUCCESS", content
    assert "/images/" + children[0]["id"] in content


# --- bad input --------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def finished(server: ServerProcess) -> dict[str, Any]:
    answer = submit(server, "/submit/imagine", {"prompt": "a finished grid"}, WEB_UI)
    return poll(server, answer["result"], WEB_UI)[-1]


@pytest.mark.parametrize(
    ("path", "body", "code", "words"),
    [
        ("/submit/imagine", {}, 4, "prompt"),
        ("/submit/imagine", {"prompt": "   "}, 4, "prompt"),
        ("/submit/imagine", {"prompt": 123}, 4, "prompt"),
        ("/submit/imagine", {"prompt": "x", "base64Array": ["data:image/png;base64,!!!not-base64"]}, 4, "base64Array[0]"),
        ("/submit/imagine", {"prompt": "x", "base64Array": ["data:image/png;base64,aGVsbG8gd29ybGQ="]}, 4, "base64Array[0]"),
        ("/submit/imagine", {"prompt": "x", "botType": "DALL_E"}, 4, "botType"),
        ("/submit/imagine", {"prompt": "x", "notifyHook": "ftp://example.com/hook"}, 4, "notifyHook"),
        ("/submit/imagine", {"prompt": "x", "notifyHook": "http://169.254.169.254/latest"}, 4, "notifyHook"),
        ("/submit/imagine", {"prompt": "a nsfw photo"}, 24, "banned"),
        ("/submit/blend", {"base64Array": ["data:image/png;base64,AAAA"] * 6}, 4, "base64Array"),
        ("/submit/blend", {"base64Array": ["x"]}, 4, "2 to 5"),
        ("/submit/blend", {"base64Array": ["a", "b"], "dimensions": "HUGE"}, 4, "dimensions"),
        ("/submit/describe", {}, 4, "base64"),
        ("/submit/shorten", {"prompt": ""}, 4, "prompt"),
        ("/submit/action", {"taskId": "j_00000000000000000000", "customId": "MJ::JOB::upsample::1::x"}, 3, "does not exist"),
        ("/submit/action", {"taskId": "", "customId": "MJ::JOB::upsample::1::x"}, 4, "taskId"),
        ("/submit/action", {"taskId": "j_00000000000000000000"}, 4, "customId"),
        ("/submit/modal", {"taskId": "nope", "prompt": "x"}, 3, "does not exist"),
        ("/submit/change", {"taskId": "j_00000000000000000000", "action": "ZOOM", "index": 1}, 4, "UPSCALE"),
        ("/submit/change", {"taskId": "j_00000000000000000000", "action": "UPSCALE", "index": 7}, 4, "index"),
        ("/submit/simple-change", {"content": "garbage"}, 4, "content"),
        ("/submit/simple-change", {"content": "j_00000000000000000000 U2"}, 3, "does not exist"),
        ("/task/nope/cancel", {}, 3, "does not exist"),
    ],
)
def test_bad_input_gets_protocol_codes(server: ServerProcess, path: str, body: Any, code: int, words: str) -> None:
    r = post(server, path, body, WEB_UI)
    assert r.status_code == 200, r.text
    answer = r.json()
    assert answer["code"] == code and words.lower() in answer["description"].lower(), answer
    if code == 24:
        assert answer["properties"]["bannedWord"] == "nsfw" and answer["properties"]["promptEn"]


def test_bad_input_on_real_tasks(server: ServerProcess, finished: dict[str, Any]) -> None:
    # a customId the task does not have
    r = post(server, "/submit/action", {"taskId": finished["id"], "customId": "MJ::JOB::upsample::1::00000000-0000-0000-0000-000000000000"}, WEB_UI).json()
    assert r["code"] == 4 and "no such button" in r["description"]
    # an action on an unfinished task
    running = submit(server, "/submit/imagine", {"prompt": "still running"}, WEB_UI)["result"]
    r = post(server, "/submit/action", {"taskId": running, "customId": button(finished, "U1")}, WEB_UI).json()
    assert r["code"] == 4 and ("finished" in r["description"] or "no such button" in r["description"]), r
    poll(server, running, WEB_UI)
    # a modal for a task that is not waiting for one
    r = post(server, "/submit/modal", {"taskId": finished["id"], "prompt": "x"}, WEB_UI).json()
    assert r["code"] == 4 and "not waiting for a modal" in r["description"]
    # cancel of a finished task
    r = post(server, f"/task/{finished['id']}/cancel", {}, WEB_UI).json()
    assert r["code"] == 4 and "already ended" in r["description"]
    # image-seed of an unknown task: 404 + code 3 (a finished task's seed: test_image_seed)
    assert httpx.get(f"{server.base}/mj/task/nope/image-seed", headers=WEB_UI).status_code == 404
    unknown = httpx.get(f"{server.base}/mj/task/nope/fetch", headers=WEB_UI)
    assert unknown.status_code == 404 and unknown.json()["code"] == 3
    # not JSON, not an object
    for raw in (b"{not json", b"[1, 2]"):
        r = httpx.post(f"{server.base}/mj/submit/imagine", content=raw, headers=WEB_UI)
        assert r.status_code == 200 and r.json()["code"] == 4
    # an unknown /mj URL answers in the protocol's shape, not OpenAI's
    r = httpx.get(f"{server.base}/mj/no/such/thing", headers=WEB_UI)
    assert r.status_code == 404 and "code" in r.json()


def test_queued_code_22_and_cancel(tmp_path: Path) -> None:
    slow = ServerProcess(tmp_path, env={"MJ_ADAPTER_SIMULATOR_SPEED": "4", "MJ_ADAPTER_SIMULATOR_ACCOUNTS": "1"}).start()
    try:
        answers = [submit(slow, "/submit/imagine", {"prompt": f"queue {i}"}, WEB_UI) for i in range(5)]
        queued = [a for a in answers if a["code"] == 22]
        assert queued, answers
        for a in queued:
            assert re.fullmatch(r"queued, \d+ ahead", a["description"]) and a["properties"]["numberOfQueues"] >= 0
        last = queued[-1]["result"]
        cancelled = submit(slow, f"/task/{last}/cancel", {}, WEB_UI)
        assert cancelled["result"] == last
        task = httpx.get(f"{slow.base}/mj/task/{last}/fetch", headers=WEB_UI).json()
        assert task["status"] == "CANCEL" and task["failReason"]
        for a in answers:
            if a["result"] != last:
                httpx.post(f"{slow.base}/mj/task/{a['result']}/cancel", headers=WEB_UI)
    finally:
        slow.stop()


def test_image_seed(server: ServerProcess, finished: dict[str, Any]) -> None:
    """As midjourney-proxy Plus answers it: code 1, "Success", the seed in `result`; then the
    task carries it in properties.seed and the OpenAI door's job view shows it too."""
    r = httpx.get(f"{server.base}/mj/task/{finished['id']}/image-seed", headers=WEB_UI, timeout=60)
    assert r.status_code == 200, r.text
    answer = r.json()
    assert answer["code"] == 1 and answer["description"] == "Success" and answer["result"].isdigit(), answer
    seed = answer["result"]
    again = httpx.get(f"{server.base}/mj/task/{finished['id']}/image-seed", headers=WEB_UI, timeout=60).json()
    assert again["result"] == seed  # kept on the task: the same answer without asking again
    task = httpx.get(f"{server.base}/mj/task/{finished['id']}/fetch", headers=WEB_UI).json()
    assert task["properties"]["seed"] == seed
    job = httpx.get(f"{server.v1}/jobs/{finished['id']}", headers={"Authorization": f"Bearer {KEY_A}"}).json()
    assert job["seed"] == seed
    # another key's task does not exist for you
    assert httpx.get(f"{server.base}/mj/task/{finished['id']}/image-seed", headers=RELAY).status_code == 404
    # a task without an image has no seed
    shortened = submit(server, "/submit/shorten", {"prompt": "a red fox, snow, forest, winter light, detailed"}, WEB_UI)["result"]
    assert poll(server, shortened, WEB_UI)[-1]["status"] == "SUCCESS"
    r = httpx.get(f"{server.base}/mj/task/{shortened}/image-seed", headers=WEB_UI, timeout=60)
    assert r.status_code == 400 and r.json()["code"] == 4, r.text

