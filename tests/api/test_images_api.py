"""The OpenAI Images API, driven with the official `openai` SDK against a real server process in
demo mode (the simulator plays Midjourney over loopback)."""

from __future__ import annotations

import asyncio
import base64
import io
import sys
from collections.abc import Iterator
from pathlib import Path

import httpx
import openai
import pytest
from PIL import Image

sys.path.insert(0, str(Path(__file__).parent))
from server_process import ADMIN, KEY_A, KEY_B, ServerProcess  # noqa: E402


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerProcess]:
    s = ServerProcess(tmp_path_factory.mktemp("api")).start()
    yield s
    s.stop()


@pytest.fixture
def client(server: ServerProcess) -> openai.OpenAI:
    return openai.OpenAI(base_url=server.v1, api_key=KEY_A, max_retries=0, timeout=60)


def decode(b64: str) -> Image.Image:
    img = Image.open(io.BytesIO(base64.b64decode(b64)))
    img.load()
    return img


def fetch(url: str) -> tuple[Image.Image, str]:
    r = httpx.get(url, timeout=10)
    assert r.status_code == 200, (url, r.status_code)
    img = Image.open(io.BytesIO(r.content))
    img.load()
    return img, r.headers["content-type"]


def test_models(client: openai.OpenAI) -> None:
    ids = {m.id for m in client.models.list()}
    assert {"midjourney", "midjourney-relax", "midjourney-turbo", "niji", "niji-relax", "niji-turbo", "dall-e-3", "gpt-image-1"} <= ids
    assert client.models.retrieve("niji").id == "niji"


def test_generate_one_url(client: openai.OpenAI) -> None:
    result = client.images.generate(model="midjourney", prompt="a lighthouse at dawn", n=1, size="1024x1024")
    assert len(result.data) == 1
    datum = result.data[0]
    assert datum.url and datum.revised_prompt and "a lighthouse at dawn" in datum.revised_prompt
    img, ctype = fetch(datum.url)
    assert ctype == "image/png" and img.width == img.height


def test_generate_four_b64_with_aspect_ratio(client: openai.OpenAI) -> None:
    result = client.images.generate(model="dall-e-3", prompt="a wide valley", n=4, size="1792x1024", response_format="b64_json")
    assert len(result.data) == 4
    images = [decode(d.b64_json or "") for d in result.data]
    for img in images:
        assert abs(img.width / img.height - 7 / 4) < 0.05
    assert "--ar 7:4" in (result.data[0].revised_prompt or "")
    # four different tiles of one grid
    assert len({img.tobytes() for img in images}) == 4


def test_generate_six_uses_two_grids(client: openai.OpenAI) -> None:
    result = client.images.generate(model="midjourney", prompt="six ravens", n=6, size="1024x1536", response_format="url")
    assert len(result.data) == 6
    extra = result.model_extra or {}
    assert len(extra.get("job_ids", [])) == 2
    for d in result.data:
        img, _ = fetch(d.url or "")
        assert abs(img.width / img.height - 2 / 3) < 0.05


def test_output_format_jpeg(client: openai.OpenAI) -> None:
    result = client.images.generate(model="midjourney", prompt="a jpeg", n=1, output_format="jpeg", response_format="b64_json")
    assert decode(result.data[0].b64_json or "").format == "JPEG"


def test_async_client(server: ServerProcess) -> None:
    async def go() -> int:
        aclient = openai.AsyncOpenAI(base_url=server.v1, api_key=KEY_A, max_retries=0)
        results = await asyncio.gather(*(aclient.images.generate(model="midjourney-turbo", prompt=f"async {i}", n=2) for i in range(3)))
        await aclient.close()
        return sum(len(r.data) for r in results)

    assert asyncio.run(go()) == 6


def test_streaming_events_in_order(client: openai.OpenAI) -> None:
    stream = client.images.generate(model="midjourney", prompt="a streamed koi pond", n=2, stream=True, response_format="b64_json")
    events = list(stream)
    types = [e.type for e in events]
    assert types.count("image_generation.completed") == 2
    first_done = types.index("image_generation.completed")
    assert all(t == "image_generation.partial_image" for t in types[:first_done])
    assert all(t == "image_generation.completed" for t in types[first_done:])
    partials = [e for e in events if e.type == "image_generation.partial_image"]
    assert partials, "previews should stream"
    assert [p.partial_image_index for p in partials] == list(range(len(partials)))
    decode(partials[0].b64_json)
    for e in events[first_done:]:
        decode(e.b64_json)
        assert (e.model_extra or {}).get("url", "").startswith("http://127.0.0.1")


def test_streaming_partial_images_cap(client: openai.OpenAI) -> None:
    events = list(client.images.generate(model="midjourney", prompt="capped previews", stream=True, partial_images=1))
    assert sum(e.type == "image_generation.partial_image" for e in events) <= 1
    assert sum(e.type == "image_generation.completed" for e in events) == 1


def test_streaming_raw_sse_has_headers_and_done(server: ServerProcess) -> None:
    with httpx.stream(
        "POST",
        server.v1 + "/images/generations",
        json={"prompt": "raw sse", "stream": True},
        headers={"Authorization": f"Bearer {KEY_A}"},
        timeout=30,
    ) as r:
        assert r.status_code == 200
        assert r.headers["content-type"].startswith("text/event-stream")
        assert r.headers.get("x-accel-buffering") == "no"
        lines = [line for line in r.iter_lines()]
    assert "data: [DONE]" in lines
    assert any(line == "event: image_generation.completed" for line in lines)


@pytest.mark.parametrize(
    ("kwargs", "status", "param", "code"),
    [
        ({"prompt": ""}, 400, "prompt", None),
        ({"prompt": "x", "n": 11}, 400, "n", None),
        ({"prompt": "x", "size": "huge"}, 400, "size", None),
        ({"prompt": "x", "response_format": "gif"}, 400, "response_format", None),
        ({"prompt": "x", "model": "dall-e-9"}, 404, "model", "model_not_found"),
        ({"prompt": "a nude portrait"}, 400, "prompt", "content_policy_violation"),
    ],
)
def test_errors_have_openai_shape(client: openai.OpenAI, kwargs: dict[str, object], status: int, param: str, code: str | None) -> None:
    with pytest.raises(openai.APIStatusError) as err:
        client.images.generate(**kwargs)  # type: ignore[arg-type]
    exc = err.value
    assert exc.status_code == status
    body = exc.body if isinstance(exc.body, dict) else {}
    assert body.get("param") == param and body.get("message")
    if code:
        assert body.get("code") == code


def test_midjourney_side_content_policy(client: openai.OpenAI) -> None:
    # "forbidden" is not on our local list but is on the simulator's (Midjourney's) list
    with pytest.raises(openai.BadRequestError) as err:
        client.images.generate(prompt="a forbidden door")
    assert err.value.code == "content_policy_violation"


def test_invalid_json_and_unknown_route(server: ServerProcess) -> None:
    h = {"Authorization": f"Bearer {KEY_A}"}
    r = httpx.post(server.v1 + "/images/generations", content=b"{not json", headers=h)
    assert r.status_code == 400 and r.json()["error"]["type"] == "invalid_request_error"
    r = httpx.get(server.v1 + "/nope", headers=h)
    assert r.status_code == 404 and "error" in r.json()


def test_auth_required_and_jobs_owned(server: ServerProcess, client: openai.OpenAI) -> None:
    with pytest.raises(openai.AuthenticationError):
        openai.OpenAI(base_url=server.v1, api_key="sk-wrong", max_retries=0).models.list()
    r = httpx.get(server.v1 + "/models")
    assert r.status_code == 401 and r.json()["error"]["code"] == "invalid_api_key"
    result = client.images.generate(prompt="mine alone", n=1)
    job_id = (result.model_extra or {})["job_ids"][0]
    mine = httpx.get(f"{server.v1}/jobs/{job_id}", headers={"Authorization": f"Bearer {KEY_A}"})
    assert mine.status_code == 200 and mine.json()["status"] == "SUCCESS"
    theirs = httpx.get(f"{server.v1}/jobs/{job_id}", headers={"Authorization": f"Bearer {KEY_B}"})
    assert theirs.status_code == 404 and theirs.json()["error"]["code"] == "not_found"


def submitted_total(server: ServerProcess) -> int:
    text = httpx.get(server.base + "/metrics", headers=ADMIN).text
    return sum(int(float(line.rsplit(" ", 1)[1])) for line in text.splitlines() if line.startswith("mj_jobs_submitted_total{"))


def test_idempotency_key_spends_one_job(server: ServerProcess, client: openai.OpenAI) -> None:
    before = submitted_total(server)
    a = client.images.generate(prompt="idempotent", n=1, extra_headers={"Idempotency-Key": "idem-1"})
    b = client.images.generate(prompt="idempotent", n=1, extra_headers={"Idempotency-Key": "idem-1"})
    assert (a.model_extra or {})["job_ids"] == (b.model_extra or {})["job_ids"]
    assert a.data[0].url == b.data[0].url
    assert submitted_total(server) - before == 1


def test_sdk_retries_attach_to_the_running_job(server: ServerProcess) -> None:
    """A client-side timeout makes the SDK retry the same body; every retry must attach to the
    job the first attempt started."""
    before = submitted_total(server)
    impatient = openai.OpenAI(base_url=server.v1, api_key=KEY_A, max_retries=8, timeout=0.15)
    result = impatient.images.generate(model="midjourney-relax", prompt="retried until done", n=1)
    assert result.data[0].url
    assert submitted_total(server) - before == 1
