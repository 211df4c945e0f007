"""Against a real server in demo mode: buttons newer than the grammar (v7 Animate, draft
Enhance, video upscales) reach every front door as they are and can be pressed through each;
seeds through /v1/jobs/{id}/seed."""

from __future__ import annotations

import re
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import openai
import pytest

sys.path.insert(0, str(Path(__file__).parent))
from server_process import KEY_A, KEY_B, ServerProcess  # noqa: E402

V1 = {"Authorization": f"Bearer {KEY_A}"}
MJ = {"mj-api-secret": KEY_A}
JOB_REF = re.compile(r"job `(j_[0-9a-z]{20})`")


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerProcess]:
    s = ServerProcess(tmp_path_factory.mktemp("buttons")).start()
    yield s
    s.stop()


def job(server: ServerProcess, job_id: str) -> dict[str, Any]:
    r = httpx.get(f"{server.v1}/jobs/{job_id}", headers=V1, timeout=10)
    assert r.status_code == 200, r.text
    return r.json()  # type: ignore[no-any-return]


def finish(server: ServerProcess, job_id: str, timeout: float = 30) -> dict[str, Any]:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        j = job(server, job_id)
        if j["status"] in ("SUCCESS", "FAILURE", "CANCEL"):
            assert j["status"] == "SUCCESS", j
            return j
        time.sleep(0.05)
    raise TimeoutError(job_id)


def imagine(server: ServerProcess, prompt: str) -> dict[str, Any]:
    r = httpx.post(f"{server.base}/mj/submit/imagine", json={"prompt": prompt}, headers=MJ, timeout=30)
    assert r.status_code == 200 and r.json()["code"] in (1, 22), r.text
    return finish(server, r.json()["result"])


def act(server: ServerProcess, job_id: str, custom_id: str, **extra: Any) -> dict[str, Any]:
    r = httpx.post(f"{server.v1}/jobs/{job_id}/actions", json={"custom_id": custom_id, **extra}, headers=V1, timeout=30)
    assert r.status_code == 200, r.text
    return finish(server, r.json()["id"])


def action(j: dict[str, Any], name: str, label: str | None = None) -> dict[str, Any]:
    for a in j["actions"]:
        if a.get("action") == name and (label is None or a.get("label") == label):
            return a  # type: ignore[no-any-return]
    raise AssertionError(f"no {name} {label or ''} in {j['actions']}")


@pytest.fixture(scope="module")
def v7_upscale(server: ServerProcess) -> dict[str, Any]:
    grid = imagine(server, "a hummingbird at a red flower --v 7")
    return act(server, grid["id"], action(grid, "UPSCALE")["custom_id"])


def test_v7_buttons_are_listed_with_midjourney_labels(v7_upscale: dict[str, Any]) -> None:
    high = action(v7_upscale, "ANIMATE", "Animate (High motion)")
    assert high["custom_id"].startswith("MJ::JOB::animate_high::") and high["custom_id"] in v7_upscale["buttons"]
    action(v7_upscale, "ANIMATE", "Animate (Low motion)")
    # the like button is a button we have no name for: listed, not dropped
    assert any(a["custom_id"].startswith("MJ::BOOKMARK::") and a["action"] == "CUSTOM" for a in v7_upscale["actions"])


def test_animate_through_v1_and_its_video_buttons_through_mj(server: ServerProcess, v7_upscale: dict[str, Any]) -> None:
    video = act(server, v7_upscale["id"], action(v7_upscale, "ANIMATE", "Animate (High motion)")["custom_id"])
    assert video["action"] == "ANIMATE" and video["image_url"]
    # /mj sees it as Plus names it, with every button as Midjourney sent it
    task = httpx.get(f"{server.base}/mj/task/{video['id']}/fetch", headers=MJ).json()
    assert task["action"] == "VIDEO" and task["status"] == "SUCCESS"
    ids = [b["customId"] for b in task["buttons"]]
    assert set(video["buttons"]) == set(ids)
    upscale = next(i for i in ids if "video_virtual_upscale" in i)
    r = httpx.post(f"{server.base}/mj/submit/action", json={"taskId": video["id"], "customId": upscale}, headers=MJ, timeout=30).json()
    assert r["code"] in (1, 22), r
    single = finish(server, r["result"])
    assert single["action"] == "CUSTOM" and single["image_url"]
    # Midjourney's video upscale is an MP4: kept and served as one, not refused as "not an image"
    served = httpx.get(single["image_url"], timeout=10)
    assert served.status_code == 200 and served.headers["content-type"].startswith("video/mp4")
    assert served.content[4:8] == b"ftyp"
    assert httpx.get(f"{server.base}/mj/task/{single['id']}/fetch", headers=MJ).json()["action"] == "ACTION"


def test_chat_offers_and_presses_buttons_by_their_labels(server: ServerProcess) -> None:
    client = openai.OpenAI(base_url=server.v1, api_key=KEY_A, max_retries=0)

    def ask(messages: list[dict[str, Any]]) -> str:
        return client.chat.completions.create(model="midjourney", messages=messages).choices[0].message.content or ""  # type: ignore[arg-type]

    messages: list[dict[str, Any]] = [{"role": "user", "content": "a red kite over a beach --v 7 --draft"}]
    grid = ask(messages)
    messages += [{"role": "assistant", "content": grid}, {"role": "user", "content": "U1"}]
    upscaled = ask(messages)
    assert "Animate (High motion)" in upscaled and "Enhance" in upscaled, upscaled
    messages += [{"role": "assistant", "content": upscaled}, {"role": "user", "content": "Enhance"}]
    enhanced = ask(messages)
    m = JOB_REF.search(enhanced)
    assert m, enhanced
    j = job(server, m.group(1))
    assert j["action"] == "CUSTOM" and j["status"] == "SUCCESS" and j["parent_id"] == JOB_REF.search(upscaled).group(1)  # type: ignore[union-attr]


def test_seed_through_v1(server: ServerProcess, v7_upscale: dict[str, Any]) -> None:
    r = httpx.get(f"{server.v1}/jobs/{v7_upscale['id']}/seed", headers=V1, timeout=60)
    assert r.status_code == 200, r.text
    seed = r.json()["seed"]
    assert seed.isdigit() and r.json()["object"] == "midjourney.seed"
    assert job(server, v7_upscale["id"])["seed"] == seed
    # another key's job does not exist for you
    other = httpx.get(f"{server.v1}/jobs/{v7_upscale['id']}/seed", headers={"Authorization": f"Bearer {KEY_B}"}, timeout=10)
    assert other.status_code == 404 and other.json()["error"]["code"] == "not_found"


def test_act_refusals(server: ServerProcess, v7_upscale: dict[str, Any]) -> None:
    r = httpx.post(f"{server.v1}/jobs/{v7_upscale['id']}/actions", json={}, headers=V1)
    assert r.status_code == 400 and r.json()["error"]["param"] == "custom_id"
    r = httpx.post(f"{server.v1}/jobs/{v7_upscale['id']}/actions", json={"custom_id": "MJ::JOB::nothing::1::x"}, headers=V1)
    assert r.status_code == 400 and "no such button" in r.json()["error"]["message"]
