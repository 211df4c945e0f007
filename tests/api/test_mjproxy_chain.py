"""A chain of two adapters: A's only account is the midjourney-proxy provider backend pointed at
B's /mj API (B runs in demo mode). A serves the OpenAI SDK, chat follow-ups, /mj actions and
describe end to end, re-hosting B's images as its own."""

from __future__ import annotations

import base64
import io
import json
import subprocess
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
from server_process import ADMIN, KEY_A, KEY_B, ServerProcess, free_port  # noqa: E402

A_HEADERS = {"mj-api-secret": KEY_A}


@pytest.fixture(scope="module")
def chain(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[ServerProcess, ServerProcess]]:
    upstream = ServerProcess(tmp_path_factory.mktemp("upstream")).start()
    provider = {
        "kind": "mjproxy",
        "id": "upstream",
        "base_url": upstream.base + "/mj",
        "secret": KEY_B,  # A is one client (key) of B
        "modes": ["fast", "relax", "turbo"],
        "concurrency": 4,
        "poll_initial_seconds": 0.05,
        "poll_interval_seconds": 0.3,
    }
    env = {
        "MJ_ADAPTER_ACCOUNTS": json.dumps([provider]),
        # A's own banned-word list differs from B's, so that B's code 24 can be seen through A
        "MJ_ADAPTER_BANNED_WORDS": "onlyonthefront",
        "MJ_ADAPTER_BANNED_WORDS_REPLACE": "true",
    }
    front = ServerProcess(tmp_path_factory.mktemp("front"), env=env)
    try:
        front.start()
    except Exception:
        upstream.stop()
        raise
    yield front, upstream
    front.stop()
    upstream.stop()


def wait_task(server: ServerProcess, task_id: str, headers: dict[str, str], timeout: float = 30) -> dict[str, Any]:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        task = httpx.get(f"{server.base}/mj/task/{task_id}/fetch", headers=headers, timeout=10).json()
        if task["status"] in ("SUCCESS", "FAILURE", "CANCEL"):
            return task  # type: ignore[no-any-return]
        time.sleep(0.05)
    raise TimeoutError(task_id)


def _png(colour: tuple[int, int, int]) -> bytes:
    buf = io.BytesIO()
    Image.new("RGB", (48, 48), colour).save(buf, "PNG")
    return buf.getvalue()


def fetch_png(url: str) -> Image.Image:
    r = httpx.get(url, timeout=10)
    assert r.status_code == 200, (url, r.status_code)
    img = Image.open(io.BytesIO(r.content))
    img.load()
    return img


def test_front_runs_on_the_provider_account(chain: tuple[ServerProcess, ServerProcess]) -> None:
    front, _ = chain
    ready = httpx.get(front.base + "/readyz", headers=ADMIN).json()
    assert ready["ready"] and not ready["demo"]
    assert [(a["id"], a["kind"], a["state"]) for a in ready["accounts"]] == [("upstream", "mjproxy", "ready")]


def test_images_generate_chat_follow_up_and_mj_action_through_the_chain(chain: tuple[ServerProcess, ServerProcess]) -> None:
    front, upstream = chain
    client = openai.OpenAI(base_url=front.v1, api_key=KEY_A, max_retries=0, timeout=60)
    result = client.images.generate(model="midjourney-relax", prompt="a chained castle", n=4, size="1792x1024")
    assert len(result.data) == 4
    for d in result.data:
        assert d.url and d.url.startswith(front.base + "/images/")  # A's own URLs, not B's
        img = fetch_png(d.url)
        assert abs(img.width / img.height - 7 / 4) < 0.05
    job_id = (result.model_extra or {})["job_ids"][0]

    # the job on A knows the upstream task and B's buttons
    task = httpx.get(f"{front.base}/mj/task/{job_id}/fetch", headers=A_HEADERS).json()
    assert task["status"] == "SUCCESS" and task["properties"]["discordInstanceId"] == "upstream"
    upstream_id = task["properties"]["messageId"]
    theirs = httpx.get(f"{upstream.base}/mj/task/{upstream_id}/fetch", headers={"mj-api-secret": KEY_B}).json()
    assert theirs["status"] == "SUCCESS" and theirs["properties"]["mode"] == "relax"
    assert [b["customId"] for b in task["buttons"]] == [b["customId"] for b in theirs["buttons"]]

    # a follow-up through A's /mj: the provider gets B's task id and B's customId
    u2 = next(b["customId"] for b in task["buttons"] if b["label"] == "U2")
    answer = httpx.post(f"{front.base}/mj/submit/action", json={"taskId": job_id, "customId": u2}, headers=A_HEADERS).json()
    assert answer["code"] == 1, answer
    upscaled = wait_task(front, answer["result"], A_HEADERS)
    assert upscaled["status"] == "SUCCESS" and upscaled["action"] == "UPSCALE"
    assert upscaled["imageUrl"].startswith(front.base + "/images/")
    fetch_png(upscaled["imageUrl"])
    child = httpx.get(f"{upstream.base}/mj/task/{upscaled['properties']['messageId']}/fetch", headers={"mj-api-secret": KEY_B}).json()
    assert child["action"] == "UPSCALE" and child["properties"]["parentId"] == upstream_id

    # a chat follow-up on A's result: "V1" of the grid
    chat = client.chat.completions.create(
        model="midjourney",
        messages=[
            {"role": "user", "content": "a chained castle"},
            {"role": "assistant", "content": f"![grid]({result.data[0].url})"},
            {"role": "user", "content": "V1"},
        ],
    )
    content = chat.choices[0].message.content or ""
    assert chat.choices[0].finish_reason == "stop" and "/images/" in content, content
    variations = [t for t in httpx.get(f"{front.base}/mj/task/list", headers=A_HEADERS).json() if t["properties"].get("parentId") == job_id and t["action"] == "VARIATION"]
    assert len(variations) == 1 and variations[0]["status"] == "SUCCESS"


def test_describe_and_custom_zoom_modal_through_the_chain(chain: tuple[ServerProcess, ServerProcess]) -> None:
    front, _ = chain
    buf = io.BytesIO()
    Image.new("RGB", (48, 48), (30, 160, 90)).save(buf, "PNG")
    image = "data:image/png;base64," + base64.b64encode(buf.getvalue()).decode()
    answer = httpx.post(f"{front.base}/mj/submit/describe", json={"base64": image}, headers=A_HEADERS).json()
    assert answer["code"] == 1, answer
    described = wait_task(front, answer["result"], A_HEADERS)
    assert described["status"] == "SUCCESS" and described["action"] == "DESCRIBE"
    prompts = described["prompt"].split("\n\n")
    assert len(prompts) == 4 and all(p.startswith(f"{i}\ufe0f\u20e3 ") and len(p) > 10 for i, p in enumerate(prompts, start=1))

    # blend: the provider receives the images and the dimensions
    other = "data:image/png;base64," + base64.b64encode(_png((200, 40, 40))).decode()
    blend = httpx.post(f"{front.base}/mj/submit/blend", json={"base64Array": [image, other], "dimensions": "PORTRAIT"}, headers=A_HEADERS).json()
    assert blend["code"] == 1, blend
    blended = wait_task(front, blend["result"], A_HEADERS)
    assert blended["status"] == "SUCCESS" and blended["action"] == "BLEND" and "2:3" in blended["properties"]["finalPrompt"]
    fetch_png(blended["imageUrl"])

    # the same chain through chat: describe answered as a numbered list
    client = openai.OpenAI(base_url=front.v1, api_key=KEY_A, max_retries=0, timeout=60)
    chat = client.chat.completions.create(
        model="midjourney",
        messages=[{"role": "user", "content": [{"type": "text", "text": "describe"}, {"type": "image_url", "image_url": {"url": image}}]}],
    )
    assert "1." in (chat.choices[0].message.content or "") or "1️⃣" in (chat.choices[0].message.content or "")

    # custom zoom needs a modal on A (code 21), which the provider answers upstream in one go
    made = httpx.post(f"{front.base}/mj/submit/imagine", json={"prompt": "a zoomable hill"}, headers=A_HEADERS).json()
    grid = wait_task(front, made["result"], A_HEADERS)
    u1 = next(b["customId"] for b in grid["buttons"] if b["label"] == "U1")
    up = wait_task(front, httpx.post(f"{front.base}/mj/submit/action", json={"taskId": grid["id"], "customId": u1}, headers=A_HEADERS).json()["result"], A_HEADERS)
    zoom = next(b["customId"] for b in up["buttons"] if b["label"] == "Custom Zoom")
    modal = httpx.post(f"{front.base}/mj/submit/action", json={"taskId": up["id"], "customId": zoom}, headers=A_HEADERS).json()
    assert modal["code"] == 21
    done = httpx.post(f"{front.base}/mj/submit/modal", json={"taskId": modal["result"], "prompt": "a zoomable hill --zoom 1.5"}, headers=A_HEADERS).json()
    assert done["code"] == 1, done
    zoomed = wait_task(front, modal["result"], A_HEADERS)
    assert zoomed["status"] == "SUCCESS" and "--zoom 1.5" in zoomed["properties"]["finalPrompt"], zoomed


def test_upstream_refusals_map_to_our_failures(chain: tuple[ServerProcess, ServerProcess]) -> None:
    front, _ = chain
    client = openai.OpenAI(base_url=front.v1, api_key=KEY_A, max_retries=0, timeout=60)
    # "forbidden" is on neither adapter's local list, but Midjourney (the simulator behind B)
    # refuses it: B's task fails, and A's job fails with the same content-policy category
    with pytest.raises(openai.BadRequestError) as err:
        client.images.generate(model="midjourney", prompt="a forbidden door")
    assert err.value.code == "content_policy_violation"
    # a word on B's local list only (A replaced its list): B refuses at submit with code 24
    with pytest.raises(openai.BadRequestError) as err:
        client.images.generate(model="midjourney", prompt="a nsfw door")
    assert err.value.code == "content_policy_violation" and "nsfw" in err.value.message


def test_a_mixed_pool_of_a_discord_account_and_a_provider(tmp_path: Path, chain: tuple[ServerProcess, ServerProcess]) -> None:
    _, upstream = chain
    sim_port = free_port()
    sim_log = open(tmp_path / "simulator.log", "ab")  # noqa: SIM115 - closed below
    sim = subprocess.Popen(
        [sys.executable, "-m", "adapter", "simulator", "--port", str(sim_port), "--speed", "25", "--accounts", "1"],
        stdout=sim_log,
        stderr=subprocess.STDOUT,
    )
    mixed: ServerProcess | None = None
    try:
        sim_base = f"http://127.0.0.1:{sim_port}"
        deadline = time.monotonic() + 20
        while True:
            try:
                acct = httpx.get(sim_base + "/_simulator/accounts", timeout=1).json()[0]
                break
            except (httpx.HTTPError, IndexError, ValueError):
                assert time.monotonic() < deadline, "simulator did not start"
                time.sleep(0.05)
        accounts = [
            {
                "kind": "discord",
                "id": "discord-sim",
                "token": acct["token"],
                "guild_id": acct["guild_id"],
                "channel_id": acct["channel_id"],
                "rest_base": sim_base + "/api/v9",
                "inpaint_submit_url": sim_base + "/inpaint/api/submit-job",
                "min_gap_seconds": 0.01,
                "gap_jitter_seconds": 0,
            },
            {"kind": "mjproxy", "id": "upstream", "base_url": upstream.base, "secret": KEY_B, "concurrency": 3, "poll_initial_seconds": 0.05, "poll_interval_seconds": 0.3},
        ]
        mixed = ServerProcess(tmp_path / "mixed", env={"MJ_ADAPTER_ACCOUNTS": json.dumps(accounts), "MJ_ADAPTER_FETCH_ALLOW_HOSTS": "127.0.0.1"}).start()
        kinds = {a["id"]: (a["kind"], a["state"]) for a in httpx.get(mixed.base + "/readyz", headers=ADMIN).json()["accounts"]}
        assert kinds == {"discord-sim": ("discord", "ready"), "upstream": ("mjproxy", "ready")}

        ids = [httpx.post(f"{mixed.base}/mj/submit/imagine", json={"prompt": f"mixed {i}"}, headers=A_HEADERS).json()["result"] for i in range(6)]
        grids = [wait_task(mixed, i, A_HEADERS, timeout=60) for i in ids]
        assert all(g["status"] == "SUCCESS" for g in grids), [g["failReason"] for g in grids]
        used = {g["properties"]["discordInstanceId"] for g in grids}
        assert used == {"discord-sim", "upstream"}
        # follow-ups run where their parent lives, whichever kind of account that is
        for grid in {g["properties"]["discordInstanceId"]: g for g in grids}.values():
            u1 = next(b["customId"] for b in grid["buttons"] if b["label"] == "U1")
            child_id = httpx.post(f"{mixed.base}/mj/submit/action", json={"taskId": grid["id"], "customId": u1}, headers=A_HEADERS).json()["result"]
            child = wait_task(mixed, child_id, A_HEADERS, timeout=60)
            assert child["status"] == "SUCCESS" and child["properties"]["discordInstanceId"] == grid["properties"]["discordInstanceId"]
    finally:
        if mixed is not None:
            mixed.stop()
        sim.terminate()
        try:
            sim.wait(timeout=10)
        except subprocess.TimeoutExpired:
            sim.kill()
        sim_log.close()
