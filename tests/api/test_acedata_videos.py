"""/midjourney/videos end to end over a real demo server (the simulator plays Midjourney): make
an image, upscale it, animate it (its Animate button), get that API's documented video answer and
the MP4 files themselves; a prompt video from any image URL (with a new prompt, loop and an end
frame); extend a video by `video_id` + `video_index`; `async` + tasks retrieve; the signed
callback of the whole task; the refusals in that API's error shape; and AceDataCloud's own CLI
(`midjourney-pro-cli video` / `extend-video` / `wait`)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

sys.path.insert(0, str(Path(__file__).parent))
from server_process import ADMIN, KEY_A, KEY_B, ServerProcess  # noqa: E402
from webhook_receiver import Receiver  # noqa: E402

SECRET = "whsec_" + "YWNlZGF0YS12aWRlby1jYWxsYmFjay1zZWNyZXQ="
A = {"authorization": f"Bearer {KEY_A}", "accept": "application/json", "content-type": "application/json"}
B = {"authorization": f"Bearer {KEY_B}", "accept": "application/json", "content-type": "application/json"}
V1 = {"Authorization": f"Bearer {KEY_A}"}


@pytest.fixture(scope="module")
def receiver() -> Iterator[Receiver]:
    r = Receiver(SECRET)
    yield r
    r.stop()


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory, receiver: Receiver) -> Iterator[ServerProcess]:
    env = {
        "MJ_ADAPTER_WEBHOOK_SECRET": SECRET,
        "MJ_ADAPTER_WEBHOOK_ALLOW_HOSTS": "127.0.0.1",
        "MJ_ADAPTER_USER_URL_ALLOW_HOSTS": "127.0.0.1",
    }
    s = ServerProcess(tmp_path_factory.mktemp("acedata-videos"), env=env).start()
    yield s
    s.stop()


def post(server: ServerProcess, path: str, body: dict[str, Any], headers: dict[str, str] = A, timeout: float = 90) -> httpx.Response:
    return httpx.post(f"{server.base}/midjourney{path}", json=body, headers=headers, timeout=timeout)


def ok(r: httpx.Response) -> dict[str, Any]:
    assert r.status_code == 200, r.text
    return r.json()  # type: ignore[no-any-return]


def assert_error(r: httpx.Response, status: int, code: str) -> str:
    assert r.status_code == status, r.text
    body = r.json()
    assert body["success"] is False and body["error"]["code"] == code and body["error"]["message"] and body["trace_id"], body
    return str(body["error"]["message"])


def assert_mp4(url: str) -> bytes:
    r = httpx.get(url, timeout=10)
    assert r.status_code == 200, url
    assert r.headers["content-type"].startswith("video/mp4"), r.headers
    assert r.content[4:8] == b"ftyp", r.content[:16]
    return r.content


def assert_video_answer(v: dict[str, Any], count: int = 4) -> None:
    """That API's documented video result (its Videos guide)."""
    assert v["success"] is True and v["progress"] == 100, v
    assert v["task_id"] and v["video_id"] == v["task_id"] and v["trace_id"] == v["task_id"]
    assert len(v["video_urls"]) == count and len(set(v["video_urls"])) == count
    assert all("/images/" in u and u.endswith(".mp4") for u in v["video_urls"])
    assert v["image_url"] and v["image_width"] > 0 and v["image_height"] > 0


@pytest.fixture(scope="module")
def grid(server: ServerProcess) -> dict[str, Any]:
    return ok(post(server, "/imagine", {"action": "generate", "prompt": "a hummingbird at a red flower --v 7", "split_images": True}))


@pytest.fixture(scope="module")
def upscale(server: ServerProcess, grid: dict[str, Any]) -> dict[str, Any]:
    return ok(post(server, "/imagine", {"action": "upscale2", "image_id": grid["image_id"]}))


@pytest.fixture(scope="module")
def animated(server: ServerProcess, upscale: dict[str, Any]) -> dict[str, Any]:
    # an upscale's own Animate button: image_id (ours) and no new prompt
    return ok(post(server, "/videos", {"action": "generate", "image_id": upscale["image_id"], "motion": "high"}))


def test_animate_an_upscale_gives_four_mp4s(server: ServerProcess, upscale: dict[str, Any], animated: dict[str, Any]) -> None:
    assert_video_answer(animated)
    assert animated["image_url"] == upscale["image_url"]  # the cover: the first frame
    for url in animated["video_urls"]:
        assert_mp4(url)
    # the same job the other doors see: Midjourney's Animate (High motion) on that upscale
    job = httpx.get(f"{server.v1}/jobs/{animated['task_id']}", headers=V1, timeout=10).json()
    assert job["action"] == "ANIMATE" and job["parent_id"] == upscale["image_id"] and "--motion high" in job["final_prompt"], job
    # tasks retrieve shows it, with the videos at the top too (the CLI's `wait` reads them there)
    one = ok(post(server, "/tasks", {"action": "retrieve", "id": animated["task_id"]}))
    assert one["type"] == "videos" and one["request"]["action"] == "generate"
    assert one["success"] is True and one["video_urls"] == animated["video_urls"] and one["response"]["video_urls"] == animated["video_urls"]
    # a repeat of the wait attaches to the same videos: nothing is pressed twice
    again = ok(post(server, "/tasks", {"action": "retrieve_batch", "ids": [animated["task_id"]]}))
    assert again["items"][0]["video_urls"] == animated["video_urls"]


def test_a_grid_is_refused_with_the_follow_up_it_needs(server: ServerProcess, grid: dict[str, Any]) -> None:
    for body in ({"image_id": grid["image_id"]}, {"image_url": grid["image_url"]}):
        message = assert_error(post(server, "/videos", {"action": "generate", **body}), 400, "bad_request")
        assert "upscale" in message and "grid" in message, message


def test_prompt_video_from_an_image_url(server: ServerProcess, grid: dict[str, Any]) -> None:
    # any first frame by URL (here a grid tile of ours) with that API's documented fields
    tile, end = grid["sub_image_urls"][0], grid["sub_image_urls"][3]
    v = ok(post(server, "/videos", {"action": "generate", "prompt": "A cat sitting on a table", "image_url": tile, "end_image_url": end,
                                    "mode": "fast", "resolution": "720p", "loop": True}))
    assert_video_answer(v)
    assert_mp4(v["video_urls"][2])
    job = httpx.get(f"{server.v1}/jobs/{v['task_id']}", headers=V1, timeout=10).json()
    # /imagine <uploaded first frame> <text> --video --motion low --loop --end <link>
    assert job["action"] == "IMAGINE" and "A cat sitting on a table" in job["final_prompt"] and "--video" in job["final_prompt"], job
    assert "--motion low" in job["final_prompt"] and "--loop" in job["final_prompt"] and "--end <https://s.mj.run/" in job["final_prompt"], job["final_prompt"]
    assert f"--end {end}" in job["prompt"], job["prompt"]  # sent as its link (Midjourney shortens links in its echo)


def test_extend_a_video_and_async_with_callback(server: ServerProcess, receiver: Receiver, animated: dict[str, Any]) -> None:
    hook = f"{receiver.base}/video-hook"
    r = ok(post(server, "/videos", {"action": "extend", "video_id": animated["video_id"], "video_index": 1, "prompt": "it flies away",
                                    "async": True, "callback_url": hook}, timeout=15))
    task_id = r["task_id"]
    assert r["success"] is True and r["progress"] < 100 and "video_urls" not in r

    def done() -> bool:
        return any(a.task.get("task_id") == task_id for a in receiver.accepted("/video-hook"))

    receiver.wait_for(done, timeout=60)
    mine = [a for a in receiver.accepted("/video-hook") if a.task.get("task_id") == task_id]
    assert len(mine) == 1 and mine[0].signed_ok, [a.task for a in mine]  # the whole result, once
    assert_video_answer(mine[0].task)
    for url in mine[0].task["video_urls"]:
        assert_mp4(url)
    assert mine[0].task["image_url"] == animated["image_url"]
    one = ok(post(server, "/tasks", {"action": "retrieve", "id": task_id}))
    assert one["type"] == "videos" and one["request"]["action"] == "extend" and one["video_urls"] == mine[0].task["video_urls"]
    job = httpx.get(f"{server.v1}/jobs/{task_id}", headers=V1, timeout=10).json()
    assert job["action"] == "ANIMATE" and job["status"] == "SUCCESS"  # Midjourney's Extend button


def test_a_failed_grid_still_calls_back_once(server: ServerProcess, receiver: Receiver, upscale: dict[str, Any]) -> None:
    hook = f"{receiver.base}/video-fails"
    sim = httpx.get(server.base + "/readyz", headers=ADMIN, timeout=5).json()["simulator_url"]
    try:
        for _ in range(2):  # either demo account may take the job
            httpx.post(sim + "/_simulator/faults/fail-next-job", json={"title": "Sorry! Could not complete the job!"}, timeout=5).raise_for_status()
        r = ok(post(server, "/videos", {"action": "generate", "image_id": upscale["image_id"], "async": True, "callback_url": hook}, timeout=15))
    finally:
        httpx.post(sim + "/_simulator/faults/reset", timeout=5)
    task_id = r["task_id"]
    receiver.wait_for(lambda: any(a.task.get("task_id") == task_id for a in receiver.accepted("/video-fails")), timeout=60)
    time.sleep(0.5)  # nothing else may follow
    mine = [a for a in receiver.accepted("/video-fails") if a.task.get("task_id") == task_id]
    assert len(mine) == 1 and mine[0].signed_ok and mine[0].task["success"] is False, [a.task for a in mine]
    assert "Could not complete" in mine[0].task["error"]["message"]


def test_video_refusals(server: ServerProcess, animated: dict[str, Any], upscale: dict[str, Any]) -> None:
    assert_error(post(server, "/videos", {"action": "generate", "prompt": "x"}), 400, "bad_request")  # no first frame
    assert_error(post(server, "/videos", {"action": "extend", "prompt": "x"}), 400, "bad_request")  # no video_id
    assert_error(post(server, "/videos", {"action": "extend", "video_id": animated["video_id"], "video_index": 9}), 400, "bad_request")
    assert_error(post(server, "/videos", {"action": "extend", "video_id": upscale["image_id"]}), 400, "bad_request")  # not a video
    assert_error(post(server, "/videos", {"action": "extend", "video_id": animated["video_id"], "loop": True}), 400, "api_not_implemented")
    assert_error(post(server, "/videos", {"action": "extend", "video_id": animated["video_id"], "end_image_url": upscale["image_url"]}), 400, "api_not_implemented")
    assert_error(post(server, "/videos", {"action": "generate", "image_id": animated["video_id"]}), 400, "bad_request")  # a video
    assert_error(post(server, "/videos", {"action": "generate", "image_id": "no-such"}), 404, "not_found")
    assert_error(post(server, "/videos", {"action": "generate", "image_id": upscale["image_id"]}, headers=B), 404, "not_found")
    assert_error(post(server, "/videos", {"action": "generate", "image_id": upscale["image_id"], "mode": "relax"}), 400, "bad_request")
    assert_error(post(server, "/videos", {"action": "generate", "image_url": "http://10.0.0.1/a.png"}), 400, "bad_request")
    assert_error(httpx.post(f"{server.base}/midjourney/videos", json={}, timeout=10), 401, "invalid_token")


# --- that API's own CLI ------------------------------------------------------------------------


def cli(server: ServerProcess, cwd: Path, *args: str) -> Any:
    env = {
        **os.environ,
        "ACEDATACLOUD_API_BASE_URL": server.base,
        "ACEDATACLOUD_API_TOKEN": KEY_A,
        "MIDJOURNEY_REQUEST_TIMEOUT": "60",
        "COLUMNS": "100000",
        "NO_COLOR": "1",
        "TERM": "dumb",
    }
    proc = subprocess.run([sys.executable, "-m", "midjourney_cli", *args], capture_output=True, text=True, env=env, cwd=cwd, timeout=120)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    return json.loads(proc.stdout)


def test_cli_video_extend_and_wait(server: ServerProcess, upscale: dict[str, Any], tmp_path: Path) -> None:
    pytest.importorskip("midjourney_cli", reason="midjourney-pro-cli is in the test extra")
    # `midjourney video` sends action generate, prompt, image_url, mode, resolution, loop, async
    started = cli(server, tmp_path, "video", "A cat walking", "--image-url", upscale["image_url"], "--json")
    assert started["success"] is True and started["task_id"]
    done = cli(server, tmp_path, "wait", started["task_id"], "--interval", "1", "--timeout", "90", "--json")
    assert done["success"] is True and len(done["video_urls"]) == 4, done
    assert_mp4(done["video_urls"][0])
    ext = cli(server, tmp_path, "extend-video", started["task_id"], "Continue the action", "--video-index", "3", "--json")
    ext_done = cli(server, tmp_path, "wait", ext["task_id"], "--interval", "1", "--timeout", "90", "--json")
    assert ext_done["request"]["action"] == "extend" and len(ext_done["video_urls"]) == 4
    shown = cli(server, tmp_path, "task", ext["task_id"], "--json")
    assert shown["video_urls"] == ext_done["video_urls"]
