"""POST /v1/images/edits and /v1/images/variations with the official `openai` SDK (and raw
multipart where a client might send something the SDK does not) against a real server process
in demo mode."""

from __future__ import annotations

import io
import os
import sys
import warnings
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import openai
import pytest
from PIL import Image

sys.path.insert(0, str(Path(__file__).parent))
from server_process import KEY_A, KEY_B, ServerProcess  # noqa: E402


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerProcess]:
    s = ServerProcess(tmp_path_factory.mktemp("edits")).start()
    yield s
    s.stop()


@pytest.fixture
def client(server: ServerProcess) -> openai.OpenAI:
    return openai.OpenAI(base_url=server.v1, api_key=KEY_A, max_retries=0, timeout=60)


@pytest.fixture(scope="module")
def grid(server: ServerProcess) -> dict[str, Any]:
    """One of KEY_A's grids: its job and the URLs of its four images."""
    c = openai.OpenAI(base_url=server.v1, api_key=KEY_A, max_retries=0, timeout=60)
    result = c.images.generate(prompt="a castle on a hill", n=4)
    job_id = (result.model_extra or {})["job_ids"][0]
    return {"id": job_id, "tiles": [d.url for d in result.data], "job": job(server, job_id)}


def png(color: tuple[int, int, int], size: tuple[int, int] = (64, 64)) -> bytes:
    buf = io.BytesIO()
    Image.new("RGB", size, color).save(buf, "PNG")
    return buf.getvalue()


def mask_png(size: tuple[int, int] = (64, 64)) -> bytes:
    """OpenAI's convention: opaque everywhere except a transparent square = the area to edit."""
    img = Image.new("RGBA", size, (0, 0, 0, 255))
    img.paste((0, 0, 0, 0), (size[0] // 4, size[1] // 4, size[0] // 2, size[1] // 2))
    buf = io.BytesIO()
    img.save(buf, "PNG")
    return buf.getvalue()


def job(server: ServerProcess, job_id: str, key: str = KEY_A) -> dict[str, Any]:
    r = httpx.get(f"{server.v1}/jobs/{job_id}", headers={"Authorization": f"Bearer {key}"}, timeout=10)
    assert r.status_code == 200, r.text
    return r.json()  # type: ignore[no-any-return]


def download(url: str) -> bytes:
    r = httpx.get(url, timeout=10)
    assert r.status_code == 200
    return r.content


def first_job(server: ServerProcess, result: Any) -> dict[str, Any]:
    return job(server, (result.model_extra or {})["job_ids"][0])


def upscale(server: ServerProcess, client: openai.OpenAI, prompt: str) -> dict[str, Any]:
    """A single upscaled image (quality hd: U1 then Upscale (Subtle)), as its job."""
    result = client.images.generate(prompt=prompt, quality="hd")
    up = job(server, (result.data[0].model_extra or {})["job_id"])
    assert up["action"] in ("UPSCALE", "UPSCALE_SUBTLE") and up["image_url"]
    return up


def variation(client: openai.OpenAI, data: bytes, **kw: Any) -> Any:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)  # the SDK marks the endpoint deprecated
        return client.images.create_variation(image=("image.png", data, "image/png"), **kw)


def error_of(exc: openai.APIStatusError) -> dict[str, Any]:
    assert isinstance(exc.body, dict)
    return exc.body


# --- edits: image prompts ---------------------------------------------------------------------


def test_edit_with_one_image_is_an_image_prompt(server: ServerProcess, client: openai.OpenAI) -> None:
    result = client.images.edit(image=("photo.png", png((200, 30, 30)), "image/png"), prompt="a red lantern", size="1536x1024")
    assert len(result.data) == 1 and result.data[0].url
    j = first_job(server, result)
    assert j["action"] == "IMAGINE" and j["final_prompt"].count("https://s.mj.run/") == 1
    assert "a red lantern" in j["final_prompt"] and "--ar 3:2" in j["final_prompt"]
    img = Image.open(io.BytesIO(download(result.data[0].url)))
    assert img.format == "PNG" and abs(img.width / img.height - 1.5) < 0.05


def test_edit_with_several_images(server: ServerProcess, client: openai.OpenAI) -> None:
    images = [(f"i{i}.png", png((60 * i, 90, 200)), "image/png") for i in range(3)]
    result = client.images.edit(image=images, prompt="three things together", n=2, response_format="b64_json")
    assert len(result.data) == 2 and all(d.b64_json for d in result.data)
    j = first_job(server, result)
    assert j["action"] == "IMAGINE" and j["final_prompt"].count("https://s.mj.run/") == 3


def test_edit_stream_uses_image_edit_events(client: openai.OpenAI) -> None:
    events = list(client.images.edit(image=("p.png", png((1, 200, 1)), "image/png"), prompt="a streamed edit", stream=True))
    types = [e.type for e in events]
    assert types[-1] == "image_edit.completed" and set(types) <= {"image_edit.partial_image", "image_edit.completed"}


# --- edits: vary region -----------------------------------------------------------------------


def test_mask_on_our_grid_tile_is_vary_region_of_its_upscale(server: ServerProcess, client: openai.OpenAI, grid: dict[str, Any]) -> None:
    tile = download(grid["tiles"][1])
    result = client.images.edit(image=("tile.png", tile, "image/png"), mask=("mask.png", mask_png(), "image/png"), prompt="a dragon on the tower")
    region = first_job(server, result)
    assert region["action"] == "VARY_REGION" and region["status"] == "SUCCESS"
    assert region["prompt"] == "a dragon on the tower"
    up = job(server, region["parent_id"])
    assert (up["action"], up["parent_id"], up["index"]) == ("UPSCALE", grid["id"], 2)
    assert len(result.data) == 1 and download(result.data[0].url or "")
    # again on the same tile: the existing upscale is reused, no second U2
    again = client.images.edit(image=("tile.png", tile, "image/png"), mask=("mask.png", mask_png(), "image/png"), prompt="a griffin")
    assert first_job(server, again)["parent_id"] == up["id"]


def test_mask_on_our_upscale_by_url(server: ServerProcess, grid: dict[str, Any]) -> None:
    """A client that sends our image URL as the `image` field instead of the file."""
    c = openai.OpenAI(base_url=server.v1, api_key=KEY_A, max_retries=0, timeout=60)
    up = upscale(server, c, "a quiet harbour")
    r = httpx.post(
        server.v1 + "/images/edits",
        data={"image": up["image_url"], "prompt": "a red boat"},
        files={"mask": ("mask.png", mask_png((32, 32)), "image/png")},
        headers={"Authorization": f"Bearer {KEY_A}"},
        timeout=60,
    )
    assert r.status_code == 200, r.text
    region = job(server, r.json()["job_ids"][0])
    assert (region["action"], region["parent_id"]) == ("VARY_REGION", up["id"])


def test_mask_on_a_foreign_image_is_refused(client: openai.OpenAI) -> None:
    with pytest.raises(openai.BadRequestError) as err:
        client.images.edit(image=("mine.png", png((5, 5, 5)), "image/png"), mask=("mask.png", mask_png(), "image/png"), prompt="x")
    body = error_of(err.value)
    assert body["param"] == "mask" and "Vary (Region)" in body["message"] and "not one of them" in body["message"]


def test_mask_on_another_keys_result_is_refused(server: ServerProcess, grid: dict[str, Any]) -> None:
    other = openai.OpenAI(base_url=server.v1, api_key=KEY_B, max_retries=0, timeout=60)
    with pytest.raises(openai.BadRequestError) as err:
        other.images.edit(image=("t.png", download(grid["tiles"][0]), "image/png"), mask=("m.png", mask_png(), "image/png"), prompt="x")
    assert error_of(err.value)["param"] == "mask"


def test_mask_on_a_whole_grid_asks_for_one_image(server: ServerProcess, grid: dict[str, Any]) -> None:
    r = httpx.post(
        server.v1 + "/images/edits",
        data={"image": grid["job"]["image_url"], "prompt": "x"},
        files={"mask": ("mask.png", mask_png(), "image/png")},
        headers={"Authorization": f"Bearer {KEY_A}"},
    )
    assert r.status_code == 400 and r.json()["error"]["param"] == "image" and "grid" in r.json()["error"]["message"]


def test_mask_that_marks_nothing(client: openai.OpenAI, grid: dict[str, Any]) -> None:
    opaque = io.BytesIO()
    Image.new("RGBA", (64, 64), (0, 0, 0, 255)).save(opaque, "PNG")
    with pytest.raises(openai.BadRequestError) as err:
        client.images.edit(image=("t.png", download(grid["tiles"][2]), "image/png"), mask=("m.png", opaque.getvalue(), "image/png"), prompt="x")
    assert error_of(err.value)["param"] == "mask"


# --- variations -------------------------------------------------------------------------------


def test_variation_of_our_grid_tile_is_v_of_its_grid(server: ServerProcess, client: openai.OpenAI, grid: dict[str, Any]) -> None:
    result = variation(client, download(grid["tiles"][2]), n=2)
    v = first_job(server, result)
    assert (v["action"], v["parent_id"], v["index"], v["status"]) == ("VARIATION", grid["id"], 3, "SUCCESS")
    assert len(result.data) == 2


def test_variation_of_our_upscale_is_vary_strong(server: ServerProcess, client: openai.OpenAI) -> None:
    up = upscale(server, client, "a lone tree")
    result = variation(client, download(up["image_url"]), response_format="b64_json")
    strong = first_job(server, result)
    assert (strong["action"], strong["parent_id"]) == ("VARY_STRONG", up["id"])
    assert result.data[0].b64_json


def test_variation_of_a_foreign_image_is_an_image_prompt(server: ServerProcess, client: openai.OpenAI) -> None:
    result = variation(client, png((120, 10, 200), (80, 80)), size="1024x1024")
    j = first_job(server, result)
    assert j["action"] == "IMAGINE" and j["final_prompt"].count("https://s.mj.run/") == 1 and "--ar 1:1" in j["final_prompt"]


def test_variation_of_another_keys_result_is_treated_as_foreign(server: ServerProcess, grid: dict[str, Any]) -> None:
    other = openai.OpenAI(base_url=server.v1, api_key=KEY_B, max_retries=0, timeout=60)
    result = variation(other, download(grid["tiles"][0]))
    j = job(server, (result.model_extra or {})["job_ids"][0], KEY_B)
    assert j["action"] == "IMAGINE" and j["final_prompt"].count("https://s.mj.run/") == 1


# --- upload limits ----------------------------------------------------------------------------


def post_edit(server: ServerProcess, files: list[tuple[str, tuple[str, bytes, str]]], data: dict[str, str] | None = None) -> httpx.Response:
    return httpx.post(
        server.v1 + "/images/edits",
        data=data if data is not None else {"prompt": "x"},
        files=files,
        headers={"Authorization": f"Bearer {KEY_A}"},
        timeout=60,
    )


@pytest.mark.parametrize(
    ("files", "param", "code"),
    [
        ([("image[]", (f"{i}.png", png((i, i, i)), "image/png")) for i in range(6)], "image", None),
        ([("image", ("notes.txt", b"hello, not an image", "text/plain"))], "image", "invalid_image"),
        ([("image", ("fake.png", b"\x89PNG\r\n\x1a\n" + b"\0" * 100, "image/png"))], "image", "invalid_image"),
        ([("image", ("empty.png", b"", "image/png"))], "image", "image_empty"),
        ([("note", ("n.txt", b"no image field", "text/plain"))], "image", None),
        ([("image", ("ok.png", png((1, 1, 1)), "image/png")), ("mask", ("m.txt", b"nope", "text/plain"))], "mask", "invalid_image"),
    ],
)
def test_upload_refusals(server: ServerProcess, files: list[Any], param: str, code: str | None) -> None:
    r = post_edit(server, files)
    assert r.status_code == 400, r.text
    error = r.json()["error"]
    assert error["param"] == param and error["message"]
    if code:
        assert error["code"] == code


def test_too_many_pixels(server: ServerProcess) -> None:
    buf = io.BytesIO()
    Image.new("1", (9000, 9000)).save(buf, "PNG")  # 81 Mpx, a few kB
    r = post_edit(server, [("image", ("huge.png", buf.getvalue(), "image/png"))])
    assert r.status_code == 400 and r.json()["error"]["param"] == "image" and r.json()["error"]["code"] == "image_too_large"


def test_too_many_bytes(server: ServerProcess) -> None:
    # refused by the multipart reader while the file arrives (the cap is fetch_max_bytes, 20 MiB)
    r = post_edit(server, [("image", ("big.png", os.urandom(21 * 1024 * 1024), "image/png"))])
    assert r.status_code == 400 and r.json()["error"]["code"] == "upload_too_large" and r.json()["error"]["param"] == "image"


def test_edit_needs_a_prompt_and_multipart(server: ServerProcess, client: openai.OpenAI) -> None:
    r = post_edit(server, [("image", ("ok.png", png((1, 2, 3)), "image/png"))], data={})
    assert r.status_code == 400 and r.json()["error"]["param"] == "prompt"
    r = httpx.post(server.v1 + "/images/edits", json={"prompt": "x"}, headers={"Authorization": f"Bearer {KEY_A}"})
    assert r.status_code == 400 and "multipart" in r.json()["error"]["message"]
    with pytest.raises(openai.NotFoundError):
        client.images.edit(image=("ok.png", png((1, 2, 3)), "image/png"), prompt="x", model="dall-e-9")
    with pytest.raises(openai.BadRequestError) as err:
        client.images.edit(image=("ok.png", png((1, 2, 3)), "image/png"), prompt="x", n=11)
    assert error_of(err.value)["param"] == "n"
    r = httpx.post(server.v1 + "/images/variations", files={"image": ("ok.png", png((1, 2, 3)), "image/png")})
    assert r.status_code == 401
