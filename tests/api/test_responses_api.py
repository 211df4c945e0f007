"""The Responses API (/v1/responses), driven with the official `openai` SDK (and raw SSE where
the wire matters) against a real server process in demo mode."""

from __future__ import annotations

import base64
import io
import json
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
from server_process import ADMIN, KEY_A, KEY_B, ServerProcess  # noqa: E402

JOB_REF = re.compile(r"job `(j_[0-9a-z]{20})`")


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerProcess]:
    s = ServerProcess(tmp_path_factory.mktemp("responses")).start()
    yield s
    s.stop()


@pytest.fixture
def client(server: ServerProcess) -> openai.OpenAI:
    return openai.OpenAI(base_url=server.v1, api_key=KEY_A, max_retries=0, timeout=60)


def extra(obj: Any) -> dict[str, Any]:
    return dict(obj.model_extra or {})


def job(server: ServerProcess, job_id: str) -> dict[str, Any]:
    r = httpx.get(f"{server.v1}/jobs/{job_id}", headers={"Authorization": f"Bearer {KEY_A}"}, timeout=10)
    assert r.status_code == 200, r.text
    return r.json()  # type: ignore[no-any-return]


def decode(b64: str) -> Image.Image:
    img = Image.open(io.BytesIO(base64.b64decode(b64)))
    img.load()
    return img


def call_of(response: Any) -> Any:
    calls = [o for o in response.output if o.type == "image_generation_call"]
    assert len(calls) == 1, response.output
    return calls[0]


def post(server: ServerProcess, body: dict[str, Any], key: str = KEY_A) -> httpx.Response:
    return httpx.post(server.v1 + "/responses", json=body, headers={"Authorization": f"Bearer {key}"}, timeout=30)


# --- one turn -----------------------------------------------------------------------------------


def test_create_answers_the_image_as_base64_and_the_text(server: ServerProcess, client: openai.OpenAI) -> None:
    r = client.responses.create(model="midjourney", input="a lighthouse at dawn, oil painting")
    assert r.object == "response" and r.status == "completed" and r.error is None
    assert [o.type for o in r.output] == ["image_generation_call", "message"]
    call = call_of(r)
    job_id = extra(call)["job_id"]
    assert r.id == f"resp_{job_id}" and call.id == f"ig_{job_id}" and extra(r)["job_id"] == job_id
    assert call.status == "completed" and call.output_format == "png" and call.action == "generate"
    grid = decode(call.result)
    assert grid.format == "PNG" and call.size == f"{grid.width}x{grid.height}"
    # the same image as our URL serves; a grid lists its four images too
    served = httpx.get(extra(call)["url"], timeout=10)
    assert served.status_code == 200 and served.content == base64.b64decode(call.result)
    assert len(extra(call)["image_urls"]) == 4
    assert call.revised_prompt and "lighthouse" in call.revised_prompt
    # the message is the chat answer: header with the job, the image, the follow-ups
    assert f"job `{job_id}`" in r.output_text and extra(call)["url"] in r.output_text and "`U2`" in r.output_text
    assert r.usage and r.usage.output_tokens > 0 and r.usage.total_tokens == r.usage.input_tokens + r.usage.output_tokens
    assert r.model == "midjourney" and r.completed_at and r.created_at <= r.completed_at
    assert job(server, job_id)["action"] == "IMAGINE"


def test_image_generation_tool_options_map_like_the_images_api(client: openai.OpenAI) -> None:
    r = client.responses.create(
        model="niji",
        input=[{"role": "user", "content": [{"type": "input_text", "text": "a koi pond"}]}],
        instructions="You draw things.",
        tools=[{"type": "image_generation", "size": "1536x1024", "output_format": "jpeg", "quality": "high", "background": "opaque"}],
    )
    call = call_of(r)
    img = decode(call.result)
    assert img.format == "JPEG" and abs(img.width / img.height - 3 / 2) < 0.05
    assert call.output_format == "jpeg" and call.quality == "high" and call.background == "opaque"
    assert "--ar 3:2" in call.revised_prompt
    assert r.model == "niji" and r.instructions == "You draw things."
    assert [t.type for t in r.tools] == ["image_generation"]


def test_a_prompt_with_its_own_aspect_keeps_it(client: openai.OpenAI) -> None:
    r = client.responses.create(model="midjourney", input="a tall tower --ar 2:3", tools=[{"type": "image_generation", "size": "1536x1024"}])
    img = decode(call_of(r).result)
    assert abs(img.width / img.height - 2 / 3) < 0.05 and "3:2" not in call_of(r).revised_prompt


def test_describe_an_input_image_answers_text_only(server: ServerProcess, client: openai.OpenAI) -> None:
    buf = io.BytesIO()
    Image.new("RGB", (64, 48), (200, 40, 40)).save(buf, "PNG")
    url = "data:image/png;base64," + base64.b64encode(buf.getvalue()).decode()
    r = client.responses.create(model="midjourney", input=[{"role": "user", "content": [{"type": "input_image", "image_url": url}]}])
    assert [o.type for o in r.output] == ["message"] and r.status == "completed"
    assert re.search(r"^1\. \S", r.output_text, re.M)
    assert job(server, extra(r)["job_id"])["action"] == "DESCRIBE"


# --- streaming ----------------------------------------------------------------------------------


def test_stream_events_partial_images_then_completed(client: openai.OpenAI) -> None:
    events = list(client.responses.create(model="midjourney", input="a red fox in the snow", stream=True))
    types = [e.type for e in events]
    assert [e.sequence_number for e in events] == list(range(len(events)))
    assert types[:4] == ["response.created", "response.in_progress", "response.output_item.added", "response.image_generation_call.in_progress"]
    assert types[-1] == "response.completed"
    partial = [e for e in events if e.type == "response.image_generation_call.partial_image"]
    assert partial, types
    assert [p.partial_image_index for p in partial] == list(range(len(partial)))
    assert all(decode(p.partial_image_b64).format == "PNG" for p in partial)
    done_at = types.index("response.image_generation_call.completed")
    assert types.index("response.image_generation_call.generating") < types.index("response.image_generation_call.partial_image") < done_at
    item_done = events[done_at + 1]
    assert item_done.type == "response.output_item.done" and item_done.item.type == "image_generation_call"
    assert decode(item_done.item.result).format == "PNG"
    # then the message, as text deltas
    assert types[done_at + 2 : done_at + 4] == ["response.output_item.added", "response.content_part.added"]
    text = "".join(e.delta for e in events if e.type == "response.output_text.delta")
    final = events[-1].response
    assert final.status == "completed" and text == final.output_text and JOB_REF.search(text)
    assert {e.response.id for e in events if e.type.startswith("response.") and hasattr(e, "response")} == {final.id}
    assert call_of(final).result == item_done.item.result


def test_stream_wire_format_names_each_event(server: ServerProcess) -> None:
    body = {"model": "midjourney", "input": "a raw stream", "stream": True, "tools": [{"type": "image_generation", "partial_images": 1}]}
    with httpx.stream("POST", server.v1 + "/responses", json=body, headers={"Authorization": f"Bearer {KEY_A}"}, timeout=30) as r:
        assert r.status_code == 200 and r.headers["content-type"].startswith("text/event-stream")
        lines = [line for line in r.iter_lines() if line and not line.startswith(":")]
    pairs = list(zip(lines[::2], lines[1::2]))
    assert pairs and all(e.startswith("event: ") and d.startswith("data: ") for e, d in pairs), lines[:6]
    for event_line, data_line in pairs:
        assert json.loads(data_line[6:])["type"] == event_line[7:]
    names = [e[7:] for e, _ in pairs]
    assert names.count("response.image_generation_call.partial_image") == 1  # partial_images caps them
    assert "[DONE]" not in "".join(lines)


def test_stream_helper_accumulates_the_final_response(client: openai.OpenAI) -> None:
    with client.responses.stream(model="midjourney", input="a blue heron") as stream:
        for _ in stream:
            pass
        final = stream.get_final_response()
    assert final.status == "completed" and JOB_REF.search(final.output_text)


def test_a_failed_job_is_response_failed(client: openai.OpenAI) -> None:
    events = list(client.responses.create(model="midjourney", input="a forbidden door", stream=True))
    last = events[-1]
    assert last.type == "response.failed" and last.response.status == "failed"
    assert last.response.error.code == "image_content_policy_violation" and last.response.error.message
    done = [e.item for e in events if e.type == "response.output_item.done"]
    assert done[0].type == "image_generation_call" and done[0].status == "failed" and done[0].result is None
    assert "🚫" in last.response.output_text
    # not streamed: the same failed Response, and retrieving it says the same
    r = client.responses.create(model="midjourney", input="another forbidden door")
    assert r.status == "failed" and r.error and r.error.code == "image_content_policy_violation"
    assert client.responses.retrieve(r.id).status == "failed"


def test_our_own_banned_words_are_an_incomplete_response(client: openai.OpenAI) -> None:
    r = client.responses.create(model="midjourney", input="a nude portrait")
    assert r.status == "incomplete" and r.incomplete_details and r.incomplete_details.reason == "content_filter"
    assert [o.type for o in r.output] == ["message"] and "banned word" in r.output_text


# --- previous_response_id -------------------------------------------------------------------------


def test_follow_ups_chain_by_previous_response_id(server: ServerProcess, client: openai.OpenAI) -> None:
    grid = client.responses.create(model="midjourney", input="a castle on a hill")
    grid_job = extra(grid)["job_id"]
    up = client.responses.create(model="midjourney", input="U2", previous_response_id=grid.id)
    up_job = job(server, extra(up)["job_id"])
    assert up_job["action"] == "UPSCALE" and up_job["parent_id"] == grid_job and up_job["index"] == 2
    assert up.previous_response_id == grid.id and call_of(up).action == "edit"
    assert decode(call_of(up).result).format == "PNG"
    vary = client.responses.create(model="midjourney", input="强烈变化", previous_response_id=up.id)
    vary_job = job(server, extra(vary)["job_id"])
    assert vary_job["action"] == "VARY_STRONG" and vary_job["parent_id"] == up_job["id"]
    # a turn without a job (help) still carries the conversation on
    helped = client.responses.create(model="midjourney", input="help", previous_response_id=grid.id)
    assert helped.status == "completed" and [o.type for o in helped.output] == ["message"] and "U1-U4" in helped.output_text
    assert helped.id.startswith(f"resp_{grid_job}_t")
    again = client.responses.create(model="midjourney", input="放大第二张", previous_response_id=helped.id)
    assert job(server, extra(again)["job_id"])["parent_id"] == grid_job
    # ... but cannot be retrieved: its text is not kept
    with pytest.raises(openai.NotFoundError):
        client.responses.retrieve(helped.id)


def test_follow_up_by_resent_output_items(server: ServerProcess, client: openai.OpenAI) -> None:
    """Without previous_response_id: the client sends the earlier output back as input."""
    grid = client.responses.create(model="midjourney", input="a paper boat")
    items = [{"id": o.id, "type": "image_generation_call"} for o in grid.output if o.type == "image_generation_call"]
    r = client.responses.create(model="midjourney", input=[{"role": "user", "content": "a paper boat"}, *items, {"role": "user", "content": "V3"}])
    v = job(server, extra(r)["job_id"])
    assert v["action"] == "VARIATION" and v["index"] == 3 and v["parent_id"] == extra(grid)["job_id"]


def test_follow_up_without_a_previous_image_is_explained(client: openai.OpenAI) -> None:
    r = client.responses.create(model="midjourney", input="U2")
    assert r.status == "completed" and "no Midjourney image" in r.output_text and extra(r).get("job_id") is None


# --- retrieve, background, keys -------------------------------------------------------------------


def test_retrieve_rebuilds_the_response(client: openai.OpenAI) -> None:
    r = client.responses.create(model="midjourney-relax", input="a windmill")
    got = client.responses.retrieve(r.id)
    assert got.id == r.id and got.status == "completed" and got.model == "midjourney-relax"
    assert call_of(got).result == call_of(r).result and got.output_text == r.output_text


def test_background_then_poll(client: openai.OpenAI) -> None:
    r = client.responses.create(model="midjourney", input="a slow sunrise", background=True)
    assert r.status in ("queued", "in_progress", "completed") and r.background is True
    deadline = time.monotonic() + 30
    while r.status in ("queued", "in_progress") and time.monotonic() < deadline:
        assert r.output_text == "" and call_of(r).result is None
        time.sleep(0.05)
        r = client.responses.retrieve(r.id)
    assert r.status == "completed" and decode(call_of(r).result).format == "PNG"


def test_background_while_running_and_cancel_by_command(server: ServerProcess, client: openai.OpenAI) -> None:
    sim = httpx.get(server.base + "/readyz", headers=ADMIN, timeout=10).json()["simulator_url"]
    assert httpx.post(sim + "/_simulator/faults/stall-next-job", json={}, timeout=10).json()["ok"]
    r = client.responses.create(model="midjourney", input="a stalled sunrise", background=True)
    assert r.status in ("queued", "in_progress") and r.background is True and r.usage is None
    assert [o.type for o in r.output] == ["image_generation_call"] and call_of(r).result is None
    time.sleep(0.3)
    still = client.responses.retrieve(r.id)
    assert still.status in ("queued", "in_progress") and call_of(still).status in ("in_progress", "generating")
    stopped = client.responses.create(model="midjourney", input="cancel", previous_response_id=r.id)
    assert "Cancelled" in stopped.output_text
    ended = client.responses.retrieve(r.id)
    assert ended.status == "cancelled" and ended.error is not None and call_of(ended).status == "failed"


def test_another_key_cannot_retrieve_or_continue(server: ServerProcess, client: openai.OpenAI) -> None:
    r = client.responses.create(model="midjourney", input="a secret garden")
    other = openai.OpenAI(base_url=server.v1, api_key=KEY_B, max_retries=0, timeout=60)
    with pytest.raises(openai.NotFoundError) as caught:
        other.responses.retrieve(r.id)
    assert caught.value.body["code"] == "not_found"  # type: ignore[index]
    with pytest.raises(openai.NotFoundError) as caught:
        other.responses.create(model="midjourney", input="U1", previous_response_id=r.id)
    assert caught.value.body["param"] == "previous_response_id"  # type: ignore[index]
    # nor by sending its output items back
    items = [{"id": o.id, "type": "image_generation_call"} for o in r.output if o.type == "image_generation_call"]
    answer = other.responses.create(model="midjourney", input=[*items, {"role": "user", "content": "U1"}])
    assert "no Midjourney image" in answer.output_text and extra(answer).get("job_id") is None


@pytest.mark.parametrize(
    ("body", "status", "param"),
    [
        ({"model": "midjourney"}, 400, "input"),
        ({"model": "midjourney", "input": []}, 400, "input"),
        ({"model": "midjourney", "input": [{"role": "system", "content": "only"}]}, 400, "input"),
        ({"model": "midjourney", "input": [{"role": "robot", "content": "x"}]}, 400, "input"),
        ({"model": "midjourney", "input": "a\x1b[31m red"}, 400, "input"),
        ({"model": "midjourney", "input": "x", "stream": "yes"}, 400, "stream"),
        ({"model": "midjourney", "input": "x", "tools": [{"type": "image_generation", "output_format": "gif"}]}, 400, "tools"),
        ({"model": "midjourney", "input": "x", "tools": [{"type": "image_generation", "size": "0x0"}]}, 400, "tools"),
        ({"model": "midjourney", "input": [{"role": "user", "content": [{"type": "input_image", "file_id": "file-1"}]}]}, 400, "input"),
        ({"model": "dall-e-9", "input": "x"}, 404, "model"),
        ({"model": "midjourney", "input": "U1", "previous_response_id": "resp_nope"}, 404, "previous_response_id"),
        ({"model": "midjourney", "input": "U1", "previous_response_id": "resp_j_00000000000000000000"}, 404, "previous_response_id"),
    ],
)
def test_errors_before_a_job_have_openai_shape(server: ServerProcess, body: dict[str, Any], status: int, param: str) -> None:
    for stream in (False, True):
        r = post(server, {**body, "stream": body.get("stream", stream)})
        assert r.status_code == status, r.text
        assert r.headers["content-type"].startswith("application/json")
        error = r.json()["error"]
        assert error["param"] == param and error["message"] and error["type"] == "invalid_request_error", error


def test_retrieve_unknown_and_unauthenticated(server: ServerProcess) -> None:
    for rid in ("resp_j_00000000000000000000", "nope", "resp_tabc"):
        r = httpx.get(f"{server.v1}/responses/{rid}", headers={"Authorization": f"Bearer {KEY_A}"}, timeout=10)
        assert r.status_code == 404 and r.json()["error"]["code"] == "not_found", r.text
    r = httpx.get(f"{server.v1}/responses/resp_j_00000000000000000000", timeout=10)
    assert r.status_code == 401 and r.json()["error"]["code"] == "invalid_api_key"
    r = httpx.post(server.v1 + "/responses", json={"input": "x"}, timeout=10)
    assert r.status_code == 401
