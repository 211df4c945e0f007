"""The /midjourney front door (the hosted action-style "Midjourney Imagine API") end to end: a
real `mj-adapter serve` in demo mode. The documented request examples, sent as they are, get the
documented answer shapes with finished images; follow-ups on a result's `image_id`; tasks
retrieve / retrieve_batch; describe, shorten, seed; translate without a translator; signed
callbacks in that API's shape; and another key's ids answer that API's not-found error."""

from __future__ import annotations

import base64
import io
import json
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from PIL import Image

sys.path.insert(0, str(Path(__file__).parent))
from server_process import ADMIN, KEY_A, KEY_B, ServerProcess  # noqa: E402
from webhook_receiver import Receiver  # noqa: E402

SECRET = "whsec_" + "YWNlZGF0YS1jYWxsYmFjay10ZXN0LXNlY3JldA=="
A = {"authorization": f"Bearer {KEY_A}", "accept": "application/json", "content-type": "application/json"}
B = {"authorization": f"Bearer {KEY_B}", "accept": "application/json", "content-type": "application/json"}
GRID_ACTIONS = {"upscale1", "upscale2", "upscale3", "upscale4", "reroll", "variation1", "variation2", "variation3", "variation4"}


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
        "MJ_ADAPTER_USER_URL_ALLOW_HOSTS": "127.0.0.1",  # describe fetches one of our own images
    }
    s = ServerProcess(tmp_path_factory.mktemp("acedata"), env=env).start()
    yield s
    s.stop()


def post(server: ServerProcess, path: str, body: dict[str, Any], headers: dict[str, str] = A, timeout: float = 60) -> httpx.Response:
    return httpx.post(f"{server.base}/midjourney{path}", json=body, headers=headers, timeout=timeout)


def image_at(url: str) -> Image.Image:
    r = httpx.get(url, timeout=10)
    assert r.status_code == 200, url
    return Image.open(io.BytesIO(r.content))


def assert_error(r: httpx.Response, status: int, code: str) -> dict[str, Any]:
    assert r.status_code == status, r.text
    body = r.json()
    assert body["success"] is False and body["error"]["code"] == code and body["error"]["message"], body
    return body  # type: ignore[no-any-return]


@pytest.fixture(scope="module")
def grid(server: ServerProcess) -> dict[str, Any]:
    # the documented imagine example, unchanged (no `async`: the call waits for the result)
    r = post(server, "/imagine", {"action": "generate", "prompt": "A cat sitting on a table", "mode": "fast", "timeout": 480, "translation": False, "split_images": True})
    assert r.status_code == 200, r.text
    return r.json()  # type: ignore[no-any-return]


def test_imagine_sync_answers_the_finished_grid(grid: dict[str, Any]) -> None:
    assert grid["success"] is True and grid["progress"] == 100
    assert grid["task_id"] and grid["image_id"] == grid["task_id"]
    assert set(grid["actions"]) == GRID_ACTIONS
    img = image_at(grid["image_url"])
    assert (img.width, img.height) == (grid["image_width"], grid["image_height"]) and img.width > 0
    assert grid["raw_image_url"] == grid["image_url"]
    subs = grid["sub_image_urls"]
    assert len(subs) == 4 and all(image_at(u).width == img.width // 2 for u in subs)


def test_upscale2_on_the_grid_then_follow_ups_of_the_upscale(server: ServerProcess, grid: dict[str, Any]) -> None:
    r = post(server, "/imagine", {"action": "upscale2", "image_id": grid["image_id"]})
    assert r.status_code == 200, r.text
    up = r.json()
    assert up["success"] is True and up["progress"] == 100 and up["image_id"] not in (grid["image_id"], None)
    assert image_at(up["image_url"]).width == image_at(grid["sub_image_urls"][1]).width
    # an upscale offers the single-image actions, not the grid's
    assert {"variation_subtle", "variation_strong", "zoom_out_2x", "pan_left"} <= set(up["actions"]), up["actions"]
    assert "upscale1" not in up["actions"]
    # the same job on /mj: U2 of the grid
    mj = httpx.get(f"{server.base}/mj/task/{up['task_id']}/fetch", headers={"mj-api-secret": KEY_A}, timeout=10).json()
    assert mj["status"] == "SUCCESS" and mj["action"] == "UPSCALE" and mj["properties"]["parentId"] == grid["task_id"] and mj["properties"]["index"] == 2
    # a grid action on an upscale: refused in that API's shape, naming what it offers
    body = assert_error(post(server, "/imagine", {"action": "upscale3", "image_id": up["image_id"]}), 400, "bad_request")
    assert "variation_subtle" in body["error"]["message"]
    # a single-image action on it works
    r = post(server, "/imagine", {"action": "zoom_out_2x", "image_id": up["image_id"]})
    assert r.status_code == 200 and r.json()["success"] is True and set(r.json()["actions"]) == GRID_ACTIONS, r.text


def test_async_then_tasks_retrieve_and_batch(server: ServerProcess, receiver: Receiver) -> None:
    hook = f"{receiver.base}/acedata-hook"
    r = post(server, "/imagine", {"action": "generate", "prompt": "a lighthouse at dusk", "async": True, "callback_url": hook}, timeout=10)
    assert r.status_code == 200, r.text
    task_id = r.json()["task_id"]
    assert r.json()["success"] is True and r.json()["progress"] < 100 and "actions" not in r.json(), r.text

    def done() -> bool:
        return any(a.task.get("task_id") == task_id and a.task.get("progress") == 100 for a in receiver.accepted("/acedata-hook"))

    receiver.wait_for(done, timeout=30)
    mine = [a for a in receiver.accepted("/acedata-hook") if a.task.get("task_id") == task_id]
    assert len(mine) == 1, [a.task.get("progress") for a in mine]  # the result once, no progress calls
    final = mine[0]
    assert final.signed_ok and final.task["success"] is True and final.task["image_url"] and set(final.task["actions"]) == GRID_ACTIONS

    one = post(server, "/tasks", {"id": task_id, "action": "retrieve"}).json()
    assert one["id"] == task_id and one["type"] == "imagine"
    assert one["request"]["action"] == "generate" and one["request"]["prompt"] == "a lighthouse at dusk" and one["request"]["callback_url"] == hook
    assert one["response"]["success"] is True and one["response"]["image_url"] == final.task["image_url"]
    assert one["duration"] >= 0 and one["finished_at"] >= one["created_at"]

    batch = post(server, "/tasks", {"ids": [task_id, "no-such-task"], "action": "retrieve_batch"}).json()
    assert batch["count"] == 1 and batch["items"][0]["id"] == task_id
    # another key: that API's not-found, and nothing in its batch
    assert_error(post(server, "/tasks", {"id": task_id, "action": "retrieve"}, B), 404, "not_found")
    assert post(server, "/tasks", {"ids": [task_id], "action": "retrieve_batch"}, B).json() == {"items": [], "count": 0}
    assert_error(post(server, "/imagine", {"action": "upscale1", "image_id": task_id}, B), 404, "not_found")
    assert_error(post(server, "/seed", {"image_id": task_id}, B), 404, "not_found")


def test_describe_shorten_seed(server: ServerProcess, grid: dict[str, Any]) -> None:
    r = post(server, "/describe", {"image_url": grid["sub_image_urls"][0]})
    assert r.status_code == 200, r.text
    d = r.json()
    assert d["success"] is True and d["task_id"] and len(d["descriptions"]) == 4 and all(isinstance(x, str) and x for x in d["descriptions"])

    r = post(server, "/shorten", {"prompt": "a serene mountain lake at sunrise, mist rising from the water, golden hour lighting, ultra detailed --ar 16:9"})
    assert r.status_code == 200, r.text
    s = r.json()
    assert s["success"] is True and s["task_id"] and s["prompts"] and all(isinstance(x, str) and x for x in s["prompts"])
    assert post(server, "/tasks", {"id": s["task_id"], "action": "retrieve"}).json()["type"] == "shorten"

    # the Seed guide's answer, exactly: {"seed": "..."}
    r = post(server, "/seed", {"image_id": grid["image_id"]})
    assert r.status_code == 200, r.text
    assert set(r.json()) == {"seed"} and r.json()["seed"].isdigit()


def test_translate_without_a_translator_is_a_clear_error(server: ServerProcess) -> None:
    body = assert_error(post(server, "/translate", {"content": "精致,无暇,洁白的天使"}), 400, "api_not_implemented")
    assert "translator" in body["error"]["message"]
    assert_error(post(server, "/imagine", {"prompt": "天使", "translation": True}), 400, "api_not_implemented")


def test_refusals_in_that_apis_shape(server: ServerProcess) -> None:
    assert_error(httpx.post(f"{server.base}/midjourney/imagine", json={"prompt": "x"}, timeout=10), 401, "invalid_token")
    assert_error(post(server, "/imagine", {"action": "generate"}), 400, "bad_request")
    assert_error(post(server, "/imagine", {"action": "upscale9", "image_id": "x"}), 400, "bad_request")
    assert_error(post(server, "/imagine", {"action": "upscale1"}), 400, "bad_request")
    assert_error(post(server, "/imagine", {"action": "upscale1", "image_id": "does-not-exist"}), 404, "not_found")
    assert_error(post(server, "/imagine", {"prompt": "x", "hd": True}), 400, "api_not_implemented")
    # that API's 403 forbidden for a moderated prompt (its OpenAPI document)
    body = assert_error(post(server, "/imagine", {"prompt": "a nude statue"}), 403, "forbidden")
    assert body["trace_id"]
    # its documented endpoints for web-only capabilities: said so in its format
    assert_error(post(server, "/edits", {"image_url": "https://example.com/a.png", "prompt": "x"}), 400, "api_not_implemented")
    # videos are image-to-video: a prompt alone is refused (test_acedata_videos.py makes videos)
    assert_error(post(server, "/videos", {"prompt": "x"}), 400, "bad_request")
    assert_error(post(server, "/imagine", {"prompt": "x", "callback_url": "http://10.0.0.1/hook"}), 400, "bad_request")
    assert_error(post(server, "/nothing-here", {}), 404, "not_found")
    r = httpx.post(f"{server.base}/midjourney/imagine", content=b"{not json", headers=A, timeout=10)
    assert_error(r, 400, "bad_request")
    json.dumps(r.json())  # plain JSON, no OpenAI error object
    assert "error" in r.json() and "type" not in r.json()["error"]


# --- trace ids, batches and pages (that API's OpenAPI document of /midjourney/tasks) ------------


def test_trace_id_retrieve_and_batch_paging(server: ServerProcess, grid: dict[str, Any]) -> None:
    # a task-making request's trace_id retrieves its task
    assert grid["trace_id"] == grid["task_id"]
    one = post(server, "/tasks", {"action": "retrieve", "trace_id": grid["trace_id"]}).json()
    assert one["id"] == grid["task_id"] and one["image_id"] == grid["image_id"] and one["request"]["trace_id"] == grid["trace_id"]
    assert one["started_at"] >= one["created_at"] and one["finished_at"] >= one["started_at"]
    # a finished task's outcome is at the top level too (what the CLI's `wait` reads)
    assert one["success"] is True and one["image_url"] == grid["image_url"] == one["response"]["image_url"]

    batch = post(server, "/tasks", {"action": "retrieve_batch", "trace_ids": [grid["trace_id"]], "ids": [grid["task_id"]]}).json()
    assert batch["count"] == 1 and batch["items"][0]["id"] == grid["task_id"]

    # neither ids nor trace_ids: the caller's newest tasks, paged
    for n in range(3):
        assert post(server, "/shorten", {"prompt": f"a very long prompt about a red fox number {n} in deep snow"}).status_code == 200
    newest = post(server, "/tasks", {"action": "retrieve_batch", "limit": 2}).json()
    assert newest["count"] == 2 and [i["type"] for i in newest["items"]] == ["shorten", "shorten"]
    page2 = post(server, "/tasks", {"action": "retrieve_batch", "limit": 2, "offset": 2}).json()
    assert page2["count"] == 2 and not {i["id"] for i in page2["items"]} & {i["id"] for i in newest["items"]}
    assert post(server, "/tasks", {"action": "retrieve_batch"}).json()["count"] >= 5  # default limit 12
    # another key lists none of them
    assert all(i["id"] not in {x["id"] for x in newest["items"]} for i in post(server, "/tasks", {"action": "retrieve_batch"}, B).json()["items"])
    # limits on everything
    assert_error(post(server, "/tasks", {"action": "retrieve_batch", "limit": 1000}), 400, "bad_request")
    assert_error(post(server, "/tasks", {"action": "retrieve_batch", "ids": ["x"] * 101}), 400, "bad_request")
    assert_error(post(server, "/tasks", {"action": "retrieve", "trace_id": "nope"}), 404, "not_found")


# --- NDJSON answers (accept: application/x-ndjson) ---------------------------------------------


def ndjson(server: ServerProcess, body: dict[str, Any]) -> tuple[httpx.Response, list[dict[str, Any]]]:
    headers = {**A, "accept": "application/x-ndjson"}
    with httpx.stream("POST", f"{server.base}/midjourney/imagine", json=body, headers=headers, timeout=60) as r:
        raw = r.read()
    assert raw.endswith(b"\r\n"), raw[-50:]
    return r, [json.loads(line) for line in raw.split(b"\r\n") if line]


def test_imagine_ndjson_streams_progress_then_the_result(server: ServerProcess) -> None:
    r, lines = ndjson(server, {"action": "generate", "prompt": "a paper boat on a pond", "mode": "fast"})
    assert r.status_code == 200 and r.headers["content-type"].startswith("application/x-ndjson")
    assert len(lines) >= 2, lines
    assert len({line["task_id"] for line in lines}) == 1
    progress = [line["progress"] for line in lines]
    assert progress == sorted(progress) and progress[-1] == 100 and progress[0] < 100
    last = lines[-1]
    assert last["success"] is True and set(last["actions"]) == GRID_ACTIONS and image_at(last["image_url"]).width > 0
    # the body switch does the same
    r, lines = ndjson(server, {"prompt": "a paper boat at night", "stream": True})
    assert lines[-1]["progress"] == 100
    # a refusal before the task starts is a plain error answer
    r = httpx.post(f"{server.base}/midjourney/imagine", json={"action": "generate"}, headers={**A, "accept": "application/x-ndjson"}, timeout=10)
    assert_error(r, 400, "bad_request")


def test_failures_sync_and_ndjson(server: ServerProcess) -> None:
    sim = httpx.get(server.base + "/readyz", headers=ADMIN, timeout=5).json()["simulator_url"]

    def arm() -> None:
        for _ in range(2):  # either demo account may take the job
            httpx.post(sim + "/_simulator/faults/fail-next-job", json={"title": "Sorry! Could not complete the job!"}, timeout=5).raise_for_status()

    try:
        arm()
        body = assert_error(post(server, "/imagine", {"prompt": "this one breaks"}), 500, "api_error")
        assert body["task_id"] and body["trace_id"] == body["task_id"] and "Could not complete" in body["error"]["message"]
        failed = post(server, "/tasks", {"action": "retrieve", "id": body["task_id"]}).json()
        assert failed["success"] is False and failed["response"]["success"] is False and failed["error"]["code"] == "api_error"
        httpx.post(sim + "/_simulator/faults/reset", timeout=5)
        arm()
        _, lines = ndjson(server, {"prompt": "this one breaks too"})
        assert lines[-1]["success"] is False and lines[-1]["error"]["code"] == "api_error" and lines[-1]["task_id"]
    finally:
        httpx.post(sim + "/_simulator/faults/reset", timeout=5)
    # Midjourney's own moderation: that API's forbidden
    body = assert_error(post(server, "/imagine", {"prompt": "a forbidden door"}), 403, "forbidden")
    assert body["task_id"]


# --- describe async, upscale_2x / upscale_4x, variation_region ----------------------------------


def wait_task(server: ServerProcess, task_id: str, timeout: float = 60) -> dict[str, Any]:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        task = post(server, "/tasks", {"action": "retrieve", "id": task_id}).json()
        if task.get("finished_at"):
            return task  # type: ignore[no-any-return]
        time.sleep(0.2)
    raise AssertionError(f"task {task_id} did not end")


def test_describe_async_then_retrieve(server: ServerProcess, grid: dict[str, Any]) -> None:
    r = post(server, "/describe", {"image_url": grid["sub_image_urls"][2], "async": True}, timeout=10)
    assert r.status_code == 200, r.text
    first = r.json()
    assert first["success"] is True and first["task_id"] and first["progress"] < 100 and not first.get("descriptions")
    task = wait_task(server, first["task_id"])
    assert task["type"] == "describe" and task["success"] is True
    assert len(task["response"]["descriptions"]) == 4 and task["response"]["task_id"] == first["task_id"]


def png_b64(img: Image.Image) -> str:
    buf = io.BytesIO()
    img.save(buf, "PNG")
    return base64.b64encode(buf.getvalue()).decode()


def test_upscale_2x_4x_and_variation_region(server: ServerProcess, grid: dict[str, Any]) -> None:
    up = post(server, "/imagine", {"action": "upscale3", "image_id": grid["image_id"]}).json()
    assert up["success"] is True and "upscale_2x" in up["actions"] and "variation_region" in up["actions"], up
    # Discord offers Upscale (Subtle) / (Creative), both 2x, on v6+ results: no 4x button to press
    body = assert_error(post(server, "/imagine", {"action": "upscale_4x", "image_id": up["image_id"]}), 400, "bad_request")
    assert "upscale_2x" in body["error"]["message"]
    two = post(server, "/imagine", {"action": "upscale_2x", "image_id": up["image_id"]}).json()
    assert two["success"] is True and image_at(two["image_url"]).width > image_at(up["image_url"]).width

    w, h = image_at(up["image_url"]).size
    mask = Image.new("L", (w, h), 0)
    mask.paste(255, (w // 4, h // 4, w // 2, h // 2))
    # the MCP server and CLI send bare base64; the OpenAPI document an image URL (a data URL here)
    for value in (png_b64(mask), "data:image/png;base64," + png_b64(mask)):
        r = post(server, "/imagine", {"action": "variation_region", "image_id": up["image_id"], "mask": value, "prompt": "a small red hat"})
        assert r.status_code == 200, r.text
        region = r.json()
        assert region["success"] is True and set(region["actions"]) == GRID_ACTIONS
        mj = httpx.get(f"{server.base}/mj/task/{region['task_id']}/fetch", headers={"mj-api-secret": KEY_A}, timeout=10).json()
        assert mj["status"] == "SUCCESS" and mj["properties"]["parentId"] == up["task_id"], mj
    assert_error(post(server, "/imagine", {"action": "variation_region", "image_id": up["image_id"]}), 400, "bad_request")
    assert_error(post(server, "/imagine", {"action": "variation_region", "image_id": up["image_id"], "mask": "not a mask!"}), 400, "bad_request")
    black = png_b64(Image.new("L", (w, h), 0))
    assert_error(post(server, "/imagine", {"action": "variation_region", "image_id": up["image_id"], "mask": black}), 400, "bad_request")
