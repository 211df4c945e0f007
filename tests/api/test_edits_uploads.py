"""What /v1/images/edits and /variations do with oversized or broken multipart bodies and masks,
against a real server process (demo mode) with a small per-image byte cap."""

from __future__ import annotations

import base64
import io
import os
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from PIL import Image

sys.path.insert(0, str(Path(__file__).parent))
from server_process import KEY_A, ServerProcess  # noqa: E402

CAP = 2 * 1024 * 1024  # MJ_ADAPTER_FETCH_MAX_BYTES for this server
AUTH = {"Authorization": f"Bearer {KEY_A}"}


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerProcess]:
    s = ServerProcess(tmp_path_factory.mktemp("uploads"), env={"MJ_ADAPTER_FETCH_MAX_BYTES": str(CAP)}).start()
    yield s
    s.stop()


@pytest.fixture(scope="module")
def upscale_url(server: ServerProcess) -> str:
    """One of KEY_A's single images (quality hd: U1 then Upscale (Subtle)): masks apply to it."""
    r = httpx.post(server.v1 + "/images/generations", json={"prompt": "a quiet harbour", "quality": "hd"}, headers=AUTH, timeout=60)
    assert r.status_code == 200, r.text
    return str(r.json()["data"][0]["url"])


def png(size: tuple[int, int] = (64, 64)) -> bytes:
    buf = io.BytesIO()
    Image.new("RGB", size, (40, 90, 200)).save(buf, "PNG")
    return buf.getvalue()


def error(r: httpx.Response) -> dict[str, Any]:
    assert r.status_code == 400, r.text
    return r.json()["error"]  # type: ignore[no-any-return]


def post(server: ServerProcess, **kw: Any) -> httpx.Response:
    return httpx.post(server.v1 + "/images/edits", headers={**AUTH, **kw.pop("headers", {})}, timeout=60, **kw)


def test_a_60_mb_body_is_refused_on_its_declared_length(server: ServerProcess) -> None:
    r = post(server, data={"prompt": "x"}, files={"image": ("big.png", os.urandom(60 * 1000 * 1000), "image/png")})
    e = error(r)
    assert e["code"] == "upload_too_large" and "request body" in e["message"]


def test_a_60_mb_file_without_a_length_is_refused_while_it_arrives(server: ServerProcess) -> None:
    """Chunked, so only the stream tells: the handler stops reading after ~the cap and answers.
    (uvicorn then discards the rest of the body as it comes, to keep the connection usable; the
    unit tests of the reader count what it pulls.)"""

    def body() -> Iterator[bytes]:
        head = b'--xyz\r\nContent-Disposition: form-data; name="prompt"\r\n\r\nx\r\n'
        head += b'--xyz\r\nContent-Disposition: form-data; name="image"; filename="big.png"\r\n\r\n'
        yield head
        block = b"\0" * 65536
        for _ in range(60 * 1000 * 1000 // 65536):
            yield block
        yield b"\r\n--xyz--\r\n"

    e = error(post(server, content=body(), headers={"Content-Type": "multipart/form-data; boundary=xyz"}))
    assert (e["code"], e["param"]) == ("upload_too_large", "image") and "2 MiB" in e["message"]


def test_a_file_one_byte_over_the_cap(server: ServerProcess) -> None:
    e = error(post(server, data={"prompt": "x"}, files={"image": ("big.png", b"\0" * (CAP + 1), "image/png")}))
    assert (e["code"], e["param"]) == ("upload_too_large", "image")
    # at the cap it is read, then judged as an image (it is not one)
    e = error(post(server, data={"prompt": "x"}, files={"image": ("big.png", b"\0" * CAP, "image/png")}))
    assert (e["code"], e["param"]) == ("invalid_image", "image")


def test_a_text_field_longer_than_a_data_url_of_the_cap(server: ServerProcess) -> None:
    too_long = "data:image/png;base64," + "A" * (4 * CAP // 3 + 2048)
    e = error(post(server, data={"prompt": "x", "image": too_long}, files={"mask": ("m.png", png(), "image/png")}))
    assert (e["code"], e["param"]) == ("upload_too_large", "image")


def test_a_data_url_of_an_image_near_the_cap_is_read(server: ServerProcess) -> None:
    """A text field as long as a data URL of a (nearly) cap-sized file passes the reader; the
    image check then judges its bytes."""
    blob = b"\x89PNG\r\n\x1a\n" + b"\0" * (CAP - 100)
    url = "data:image/png;base64," + base64.b64encode(blob).decode()
    e = error(post(server, data={"prompt": "x", "image": url}, files={"note": ("n.txt", b"n", "text/plain")}))
    assert e["param"] == "image" and e["code"] != "upload_too_large"


def test_the_whole_body_has_a_budget(server: ServerProcess) -> None:
    files = [(name, ("f.png", b"\0" * (CAP - 10), "image/png")) for name in ("image[]", "image[]", "image[]")]
    e = error(post(server, data={"prompt": "x"}, files=files))
    assert e["code"] == "upload_too_large" and "request body" in e["message"]


def test_too_many_parts(server: ServerProcess) -> None:
    e = error(post(server, data={f"f{i}": "v" for i in range(33)}, files={"image": ("a.png", png(), "image/png")}))
    assert e["code"] == "upload_too_large" and "32 parts" in e["message"]


@pytest.mark.parametrize(
    ("content_type", "body"),
    [
        ("multipart/form-data; boundary=xyz", b'--xyz\r\nContent-Disposition: form-data; name="prompt"\r\n\r\nunfinished'),
        ("multipart/form-data; boundary=xyz", b"nothing like a multipart body"),
        ("multipart/form-data", b'--xyz\r\nContent-Disposition: form-data; name="prompt"\r\n\r\nx\r\n--xyz--\r\n'),
        ("multipart/form-data; boundary=xyz", b'--xyz\r\nContent-Disposition: form-data; name="prompt"\r\n\r\n\xff\xfe\r\n--xyz--\r\n'),
    ],
)
def test_malformed_bodies_are_400_invalid_multipart(server: ServerProcess, content_type: str, body: bytes) -> None:
    e = error(post(server, content=body, headers={"Content-Type": content_type}))
    assert e["code"] == "invalid_multipart" and e["message"]


def test_variations_read_the_same_way(server: ServerProcess) -> None:
    r = httpx.post(
        server.v1 + "/images/variations", files={"image": ("big.png", b"\0" * (CAP + 1), "image/png")}, headers=AUTH, timeout=60
    )
    e = error(r)
    assert (e["code"], e["param"]) == ("upload_too_large", "image")


# --- masks ------------------------------------------------------------------------------------


def palette_mask(side: int) -> bytes:
    img = Image.new("P", (side, side), 0)
    img.putpalette([0, 0, 0] * 256)
    buf = io.BytesIO()
    img.save(buf, "PNG", transparency=0)
    return buf.getvalue()


def mask_edit(server: ServerProcess, image_url: str, mask: bytes, name: str = "m.png") -> httpx.Response:
    return post(server, data={"image": image_url, "prompt": "a red boat"}, files={"mask": (name, mask, "image/png")})


def test_a_mask_beyond_the_mask_budget_names_its_size(server: ServerProcess, upscale_url: str) -> None:
    e = error(mask_edit(server, upscale_url, palette_mask(3000)))
    assert e["param"] == "mask" and "3000x3000" in e["message"] and "send the mask at the size of the image" in e["message"]


def test_a_mask_beyond_the_user_image_budget(server: ServerProcess, upscale_url: str) -> None:
    e = error(mask_edit(server, upscale_url, palette_mask(7999)))
    assert (e["param"], e["code"]) == ("mask", "image_too_large")


def test_a_big_jpeg_mask_is_downscaled_and_used(server: ServerProcess, upscale_url: str) -> None:
    img = Image.new("L", (5000, 5000), 0)
    img.paste(255, (1000, 1000, 2500, 2500))
    buf = io.BytesIO()
    img.save(buf, "JPEG", quality=60)
    r = mask_edit(server, upscale_url, buf.getvalue(), "m.jpg")
    assert r.status_code == 200, r.text
    job = httpx.get(f"{server.v1}/jobs/{r.json()['job_ids'][0]}", headers=AUTH, timeout=10).json()
    assert job["action"] == "VARY_REGION"


def test_an_oversized_mask_on_a_grid_tile_spends_no_upscale(server: ServerProcess) -> None:
    """A tile needs an upscale before Vary (Region): the mask is judged from its header first,
    so a mask that will be refused never costs that job."""
    r = httpx.post(server.v1 + "/images/generations", json={"prompt": "a quiet harbour"}, headers=AUTH, timeout=60)
    assert r.status_code == 200, r.text
    tile_url, grid_id = r.json()["data"][0]["url"], r.json()["job_ids"][0]
    e = error(mask_edit(server, tile_url, palette_mask(3000)))
    assert e["param"] == "mask" and "3000x3000" in e["message"]
    tasks = httpx.get(server.base + "/mj/task/list", headers={"mj-api-secret": KEY_A}, timeout=10).json()
    assert not [t for t in tasks if t["action"] == "UPSCALE" and t["properties"].get("parentId") == grid_id]
    assert not [t for t in tasks if t["action"] == "UPSCALE" and grid_id in str(t)], "an upscale was started for a refused mask"


def test_json_bodies_are_bounded_by_one_data_url_of_the_cap(server: ServerProcess) -> None:
    """A JSON body is held whole (then as strings, then as image bytes): it may carry one image
    at the cap as a data URL, not more. Multipart forms, spooled to disk, keep their own budget."""
    big = "data:image/png;base64," + base64.b64encode(os.urandom(CAP)).decode()
    one = {"model": "midjourney", "messages": [{"role": "user", "content": [{"type": "text", "text": "x"}, {"type": "image_url", "image_url": {"url": big}}]}]}
    r = httpx.post(server.v1 + "/chat/completions", json=one, headers=AUTH, timeout=60)
    assert r.status_code == 400 and "not" in r.json()["error"]["message"], r.text  # read, then refused as no image
    two = {**one, "messages": [{**one["messages"][0], "content": [*one["messages"][0]["content"], {"type": "image_url", "image_url": {"url": big}}]}]}
    r = httpx.post(server.v1 + "/chat/completions", json=two, headers=AUTH, timeout=60)
    assert r.status_code == 413 and r.json()["error"]["type"] == "invalid_request_error", r.text
    r = httpx.post(server.base + "/mj/submit/imagine", json={"prompt": "x", "base64Array": [big, big]}, headers={"mj-api-secret": KEY_A}, timeout=60)
    assert r.status_code == 413 and r.json()["code"] == 4, r.text
