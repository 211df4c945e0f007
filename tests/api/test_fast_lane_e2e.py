"""Against a real server: repeated reads of finished jobs are answered by the fast lane
(adapter/api/common/fast_lane.py) with exactly what the handler gave, never to another key,
never after the job changed, never past the keyless browser guard; anything else still reaches
the framework whole (bodies included)."""

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
from server_process import ADMIN, KEY_A, KEY_B, ServerProcess  # noqa: E402

pytestmark = pytest.mark.timeout(90)

V1 = {"Authorization": f"Bearer {KEY_A}"}
MJ = {"mj-api-secret": KEY_A}


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerProcess]:
    s = ServerProcess(tmp_path_factory.mktemp("fast-lane")).start()
    yield s
    s.stop()


def repeats(server: ServerProcess) -> int:
    text = httpx.get(f"{server.base}/metrics", headers=ADMIN, timeout=10).text
    m = re.search(r"^mj_http_repeat_answers_total (\d+)$", text, re.M)
    assert m is not None, text
    return int(m.group(1))


def finished_task(server: ServerProcess, prompt: str) -> str:
    r = httpx.post(f"{server.base}/mj/submit/imagine", json={"prompt": prompt}, headers=MJ, timeout=30)
    assert r.status_code == 200 and r.json()["code"] in (1, 22), r.text
    task_id = str(r.json()["result"])
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        status = httpx.get(f"{server.base}/mj/task/{task_id}/fetch", headers=MJ, timeout=10).json()["status"]
        if status == "SUCCESS":
            return task_id
        assert status not in ("FAILURE", "CANCEL"), status
        time.sleep(0.05)
    raise TimeoutError(task_id)


def served_twice(server: ServerProcess, method: str, url: str, **kw: Any) -> tuple[httpx.Response, httpx.Response, int]:
    """The same request twice in a row: (first, second, how many of them the lane answered).
    The store vouches for a finished job for 5 s at a time, so the second is a repeat unless
    that moment fell between the two; a few tries make that harmless."""
    for _ in range(3):
        before = repeats(server)
        first = httpx.request(method, url, timeout=30, **kw)
        second = httpx.request(method, url, timeout=30, **kw)
        given = repeats(server) - before
        if given:
            return first, second, given
    return first, second, 0


def test_a_finished_task_poll_is_answered_again_as_the_handler_answered_it(server: ServerProcess) -> None:
    task_id = finished_task(server, "a lighthouse, fast lane poll")
    first, second, given = served_twice(server, "GET", f"{server.base}/mj/task/{task_id}/fetch", headers=MJ)
    assert given >= 1
    assert first.status_code == second.status_code == 200
    assert second.content == first.content
    for name in ("content-type", "content-length"):
        assert second.headers[name] == first.headers[name]
    assert sorted(k for k in second.headers if k != "date") == sorted(k for k in first.headers if k != "date")
    assert second.json()["status"] == "SUCCESS" and second.json()["id"] == task_id
    # the mode-prefixed door is its own request, answered the same way
    fast = httpx.get(f"{server.base}/mj-fast/mj/task/{task_id}/fetch", headers=MJ, timeout=10)
    assert fast.status_code == 200 and fast.json()["id"] == task_id


def test_another_key_never_gets_a_kept_answer(server: ServerProcess) -> None:
    task_id = finished_task(server, "a lighthouse, someone else's")
    _, _, given = served_twice(server, "GET", f"{server.base}/mj/task/{task_id}/fetch", headers=MJ)
    assert given >= 1
    before = repeats(server)
    for headers in ({"mj-api-secret": KEY_B}, {"Authorization": f"Bearer {KEY_B}"}, {}, {"mj-api-secret": KEY_A + "x"}):
        r = httpx.get(f"{server.base}/mj/task/{task_id}/fetch", headers=headers, timeout=10)
        assert r.status_code in (401, 404), (headers, r.status_code)
        assert task_id not in r.text or r.json().get("code") == 3
    assert repeats(server) == before


def test_a_change_to_a_finished_job_is_seen_at_once(server: ServerProcess) -> None:
    task_id = finished_task(server, "a lighthouse, seeded later")
    url = f"{server.v1}/jobs/{task_id}"
    first, second, given = served_twice(server, "GET", url, headers=V1)
    assert given >= 1 and second.content == first.content
    assert first.json().get("seed") is None
    seed = httpx.get(f"{url}/seed", headers=V1, timeout=30)
    assert seed.status_code == 200, seed.text
    # the seed was written to the job: the kept answer no longer holds
    after = httpx.get(url, headers=V1, timeout=10)
    assert after.status_code == 200 and after.json()["seed"] == seed.json()["seed"]


def test_an_idempotent_retry_gets_the_same_images_with_a_fresh_created(server: ServerProcess) -> None:
    client = openai.OpenAI(base_url=server.v1, api_key=KEY_A, max_retries=0, timeout=60)
    headers = {"Idempotency-Key": "fast-lane-replay-1"}
    answers = [client.images.generate(model="midjourney", prompt="a red kite, replayed", n=2, extra_headers=headers)]
    before = repeats(server)
    for _ in range(3):
        answers.append(client.images.generate(model="midjourney", prompt="a red kite, replayed", n=2, extra_headers=headers))
    assert repeats(server) > before
    urls = [[d.url for d in a.data] for a in answers]
    assert all(u == urls[0] for u in urls) and len(urls[0]) == 2
    created = [a.created for a in answers]
    assert created == sorted(created) and created[-1] <= int(time.time())
    # another body under the same key is not a repeat of this one: the handler answers it
    before = repeats(server)
    other = client.images.generate(model="midjourney", prompt="a red kite, replayed", n=1, extra_headers=headers)
    assert repeats(server) == before
    assert other.data[0].url == urls[0][0]  # the key's job, as the handler has always answered


def test_the_model_list_is_answered_again_to_its_key_only(server: ServerProcess) -> None:
    first, second, given = served_twice(server, "GET", f"{server.v1}/models", headers=V1)
    assert given >= 1 and second.content == first.content and first.status_code == 200
    assert "midjourney" in [m["id"] for m in second.json()["data"]]
    before = repeats(server)
    for headers in ({"Authorization": "Bearer wrong"}, {}):
        r = httpx.get(f"{server.v1}/models", headers=headers, timeout=10)
        assert r.status_code == 401 and r.json()["error"]["code"] == "invalid_api_key"
    assert repeats(server) == before


def test_requests_from_pages_go_through_the_framework(server: ServerProcess) -> None:
    task_id = finished_task(server, "a lighthouse, from a page")
    headers = {**MJ, "Origin": "http://localhost:3000"}
    before = repeats(server)
    for _ in range(3):
        r = httpx.get(f"{server.base}/mj/task/{task_id}/fetch", headers=headers, timeout=10)
        assert r.status_code == 200
    assert repeats(server) == before


def test_bodies_reach_the_framework_whole(server: ServerProcess) -> None:
    # read by the lane (small JSON), handed on: the prompt arrives intact
    r = httpx.post(f"{server.base}/mj/submit/imagine", json={"prompt": "a blue whale 🐋, handed on"}, headers=MJ, timeout=30)
    assert r.status_code == 200 and r.json()["code"] in (1, 22), r.text
    task = httpx.get(f"{server.base}/mj/task/{r.json()['result']}/fetch", headers=MJ, timeout=10).json()
    assert task["prompt"] == "a blue whale 🐋, handed on"

    # chunked: not read by the lane at all
    def chunks() -> Iterator[bytes]:
        yield b'{"prompt": "a green '
        yield b'whale, chunked"}'

    r = httpx.post(
        f"{server.base}/mj/submit/imagine", content=chunks(), headers={**MJ, "Content-Type": "application/json"}, timeout=30
    )
    assert r.status_code == 200 and r.json()["code"] in (1, 22), r.text
    task = httpx.get(f"{server.base}/mj/task/{r.json()['result']}/fetch", headers=MJ, timeout=10).json()
    assert task["prompt"] == "a green whale, chunked"

    # malformed JSON still gets the door's own error
    r = httpx.post(f"{server.base}/mj/submit/imagine", content=b'{"prompt": ', headers={**MJ, "Content-Type": "application/json"}, timeout=10)
    assert r.json()["code"] == 4 and "not valid JSON" in r.json()["description"]


def test_keyless_repeats_still_meet_the_browser_guard(tmp_path: Path) -> None:
    keyless = ServerProcess(tmp_path, env={"MJ_ADAPTER_API_KEYS": "", "MJ_ADAPTER_ADMIN_KEYS": ""}).start()
    try:
        r = httpx.post(f"{keyless.base}/mj/submit/imagine", json={"prompt": "a lighthouse, keyless"}, timeout=30)
        assert r.status_code == 200, r.text
        url = f"{keyless.base}/mj/task/{r.json()['result']}/fetch"
        deadline = time.monotonic() + 30
        while httpx.get(url, timeout=10).json()["status"] != "SUCCESS":
            assert time.monotonic() < deadline
            time.sleep(0.05)
        good = [httpx.get(url, timeout=10) for _ in range(3)]
        assert all(g.status_code == 200 and g.content == good[0].content for g in good)
        # the same request under another Host (DNS rebinding) or from a foreign page
        for headers in ({"Host": "evil.example"}, {"Origin": "https://evil.example"}, {"Sec-Fetch-Site": "cross-site"}):
            r = httpx.get(url, headers=headers, timeout=10)
            assert r.status_code == 403, (headers, r.status_code, r.text)
            assert r.json()["code"] == 4
    finally:
        keyless.stop()
