"""adapter.api.common.multipart: the streaming multipart/form-data reader, on hand-built bodies
(and once through Litestar's test client, in process)."""

from __future__ import annotations

import io
import tempfile
from collections.abc import AsyncIterator, Iterator
from typing import Any

import pytest
from litestar import Litestar, Request, post
from litestar.testing import TestClient

from adapter.api.common import multipart as mp
from adapter.api.common.multipart import FilePart, MultipartError, MultipartLimits, TextField, parse_multipart, read_multipart

BOUNDARY = "----mjBoundary7MA4YWxkTrZu0gW"
CT = f"multipart/form-data; boundary={BOUNDARY}"
ROOMY = MultipartLimits(max_file_bytes=1 << 20, max_field_bytes=1 << 16, max_total_bytes=8 << 20, spool_bytes=1024)


def text_part(name: str, value: bytes | str) -> bytes:
    body = value.encode() if isinstance(value, str) else value
    return f'--{BOUNDARY}\r\nContent-Disposition: form-data; name="{name}"\r\n\r\n'.encode() + body + b"\r\n"


def file_part(name: str, data: bytes, filename: str = "f.png", content_type: str = "image/png") -> bytes:
    head = f'--{BOUNDARY}\r\nContent-Disposition: form-data; name="{name}"; filename="{filename}"\r\nContent-Type: {content_type}\r\n\r\n'
    return head.encode() + data + b"\r\n"


def body(*parts: bytes) -> bytes:
    return b"".join(parts) + f"--{BOUNDARY}--\r\n".encode()


class Feed:
    """An async body in chunks of `size`, counting what the reader pulled."""

    def __init__(self, data: bytes, size: int) -> None:
        self.data = data
        self.size = size
        self.pulled = 0

    async def __aiter__(self) -> AsyncIterator[bytes]:
        for i in range(0, len(self.data), self.size):
            chunk = self.data[i : i + self.size]
            self.pulled += len(chunk)
            yield chunk


async def parse(data: bytes, limits: MultipartLimits = ROOMY, size: int = 65536, **kw: Any) -> mp.MultipartForm:
    return await parse_multipart(Feed(data, size), kw.pop("content_type", CT), limits, **kw)


async def refused(data: bytes, limits: MultipartLimits = ROOMY, size: int = 65536, **kw: Any) -> MultipartError:
    with pytest.raises(MultipartError) as err:
        await parse(data, limits, size, **kw)
    return err.value


@pytest.fixture
def spooled(monkeypatch: pytest.MonkeyPatch) -> Iterator[list[Any]]:
    """Every SpooledTemporaryFile the reader makes, to check they are all closed."""
    made: list[Any] = []
    real = tempfile.SpooledTemporaryFile

    def factory(*args: Any, **kwargs: Any) -> Any:
        f = real(*args, **kwargs)
        made.append(f)
        return f

    monkeypatch.setattr(mp.tempfile, "SpooledTemporaryFile", factory)
    yield made
    for f in made:
        f.close()


# --- reading ----------------------------------------------------------------------------------


@pytest.mark.parametrize("size", [1, 2, 3, 7, 31, 64, 1000, 1 << 20])
async def test_parts_in_order_whatever_the_chunking(size: int) -> None:
    png = bytes(range(256)) * 40  # 10 KB, beyond the 1 KB spool: lives on disk
    data = body(
        text_part("prompt", "a castle — 城堡"),
        file_part("image[]", png, "a.png"),
        text_part("n", "2"),
        file_part("image[]", b"\r\n--not-the-boundary\r\n", "b.bin", "application/octet-stream"),
        file_part("mask", b"", ""),
        text_part("empty", ""),
    )
    form = await parse(data, size=size)
    try:
        kinds = [(type(p).__name__, p.name) for p in form.parts]
        assert kinds == [
            ("TextField", "prompt"),
            ("FilePart", "image[]"),
            ("TextField", "n"),
            ("FilePart", "image[]"),
            ("FilePart", "mask"),
            ("TextField", "empty"),
        ]
        prompt, a, n, b, mask, empty = form.parts
        assert isinstance(prompt, TextField) and prompt.value == "a castle — 城堡"
        assert isinstance(a, FilePart) and (a.filename, a.content_type, a.size) == ("a.png", "image/png", len(png))
        assert await a.read() == png and await a.read() == png  # readable more than once
        assert isinstance(n, TextField) and n.value == "2"
        assert isinstance(b, FilePart) and await b.read() == b"\r\n--not-the-boundary\r\n" and b.content_type == "application/octet-stream"
        assert isinstance(mask, FilePart) and mask.filename == "" and mask.size == 0 and await mask.read() == b""
        assert isinstance(empty, TextField) and empty.value == ""
    finally:
        form.close()


async def test_many_small_parts() -> None:
    parts = [text_part(f"f{i}", str(i)) if i % 2 else file_part(f"f{i}", bytes([i])) for i in range(32)]
    form = await parse(body(*parts), size=5)
    assert [p.name for p in form.parts] == [f"f{i}" for i in range(32)]
    assert [p.value for p in form.parts if isinstance(p, TextField)] == [str(i) for i in range(1, 32, 2)]
    assert [await p.read() for p in form.parts if isinstance(p, FilePart)] == [bytes([i]) for i in range(0, 32, 2)]
    form.close()


async def test_preamble_and_epilogue_are_ignored() -> None:
    data = b"a preamble nobody reads\r\n" + body(text_part("a", "1")) + b"an epilogue"
    form = await parse(data, size=3)
    assert [(p.name, p.value) for p in form.parts if isinstance(p, TextField)] == [("a", "1")]


# --- limits -----------------------------------------------------------------------------------


def limits(**kw: int) -> MultipartLimits:
    base = {"max_file_bytes": 1000, "max_field_bytes": 100, "max_total_bytes": 1 << 20, "spool_bytes": 256}
    return MultipartLimits(**(base | kw))


@pytest.mark.parametrize("size", [1, 13, 4096])
async def test_file_at_the_limit_is_read_one_byte_more_is_refused(size: int, spooled: list[Any]) -> None:
    form = await parse(body(file_part("image", b"x" * 1000)), limits(), size=size)
    [part] = form.parts
    assert isinstance(part, FilePart) and part.size == 1000 and await part.read() == b"x" * 1000
    form.close()
    err = await refused(body(text_part("prompt", "p"), file_part("image", b"x" * 1001)), limits(), size=size)
    assert (err.code, err.field) == ("upload_too_large", "image")
    assert "image" in err.message and "1000 bytes" in err.message
    assert spooled and all(f.closed for f in spooled)


@pytest.mark.parametrize("size", [1, 4096])
async def test_text_field_at_the_limit_is_read_one_byte_more_is_refused(size: int) -> None:
    form = await parse(body(text_part("image", "d" * 100)), limits(), size=size)
    assert form.parts == [TextField("image", "d" * 100)]
    err = await refused(body(text_part("image", "d" * 101)), limits(), size=size)
    assert (err.code, err.field) == ("upload_too_large", "image") and "100 bytes" in err.message


async def test_total_at_the_limit_is_read_one_byte_more_is_refused(spooled: list[Any]) -> None:
    data = body(text_part("prompt", "p" * 50), file_part("image", b"i" * 500), file_part("mask", b"m" * 500))
    form = await parse(data, limits(max_total_bytes=len(data)), size=100)
    assert len(form.parts) == 3
    form.close()
    err = await refused(data, limits(max_total_bytes=len(data) - 1), size=100)
    assert err.code == "upload_too_large" and "request body" in err.message
    assert err.field == "mask"  # the part being read when the budget ran out
    assert all(f.closed for f in spooled)


async def test_declared_length_over_the_total_is_refused_before_reading() -> None:
    data = body(text_part("a", "1"))
    feed = Feed(data, 10)
    with pytest.raises(MultipartError) as err:
        await parse_multipart(feed, CT, limits(max_total_bytes=len(data) - 1), content_length=len(data))
    assert err.value.code == "upload_too_large" and feed.pulled == 0


@pytest.mark.parametrize("count", [31, 32])
async def test_part_count_within_the_limit(count: int) -> None:
    form = await parse(body(*(text_part(f"p{i}", "v") for i in range(count))), limits(max_parts=32))
    assert len(form.parts) == count


async def test_one_part_too_many_is_refused() -> None:
    err = await refused(body(*(text_part(f"p{i}", "v") for i in range(33))), limits(max_parts=32))
    assert (err.code, err.field) == ("upload_too_large", "p32") and "32 parts" in err.message


async def test_header_too_long_or_too_many() -> None:
    long_name = "n" * 5000
    err = await refused(body(text_part(long_name, "v")), limits(max_header_bytes=4096))
    assert err.code == "invalid_multipart" and "headers" in err.message
    many = f"--{BOUNDARY}\r\n" + "".join(f"X-H{i}: v\r\n" for i in range(9)) + 'Content-Disposition: form-data; name="a"\r\n\r\nv\r\n'
    err = await refused(body(many.encode()), limits(max_headers=8))
    assert err.code == "invalid_multipart"


async def test_a_60_mb_part_is_refused_after_reading_about_the_cap(spooled: list[Any]) -> None:
    """Only ~cap bytes (plus one chunk) are pulled from a 60 MB body; memory stays at the spool
    threshold because the part goes to disk."""
    cap = 2 * 1024 * 1024
    chunk = 64 * 1024
    pulled = 0

    async def sixty_mb() -> AsyncIterator[bytes]:
        nonlocal pulled
        head = f'--{BOUNDARY}\r\nContent-Disposition: form-data; name="image"; filename="big.png"\r\n\r\n'.encode()
        pulled += len(head)
        yield head
        block = b"\x00" * chunk
        for _ in range(60 * 1024 * 1024 // chunk):
            pulled += chunk
            yield block
        yield f"\r\n--{BOUNDARY}--\r\n".encode()

    lim = MultipartLimits(max_file_bytes=cap, max_field_bytes=1024, max_total_bytes=100 << 20, spool_bytes=256 * 1024)
    with pytest.raises(MultipartError) as err:
        await parse_multipart(sixty_mb(), CT, lim)
    assert (err.value.code, err.value.field) == ("upload_too_large", "image")
    assert cap < pulled <= cap + 2 * chunk
    assert len(spooled) == 1 and spooled[0].closed


# --- malformed bodies -------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("content_type", "words"),
    [
        ("application/json", "multipart/form-data"),
        (None, "multipart/form-data"),
        ("multipart/form-data", "boundary"),
        ("multipart/form-data; boundary=", "boundary"),
        ("multipart/form-data; boundary=" + "b" * 300, "boundary"),
        ("multipart/mixed; boundary=abc", "multipart/form-data"),
    ],
)
async def test_content_type_must_be_form_data_with_a_boundary(content_type: str | None, words: str) -> None:
    err = await refused(body(text_part("a", "1")), content_type=content_type)
    assert err.code == "invalid_multipart" and words in err.message and err.field is None


@pytest.mark.parametrize(
    ("data", "field"),
    [
        (b"", None),  # no body at all
        (b"just some bytes, no boundary anywhere" * 10, None),
        (text_part("a", "1"), "a"),  # no closing boundary: the body ends inside a part
        (f'--{BOUNDARY}\r\nContent-Disposition: form-data; name="a"\r\n'.encode(), None),  # ends in the headers
        (f"--{BOUNDARY}\r\nContent-Disposition: form-data; name=\"a\"\n\nv\r\n--{BOUNDARY}--\r\n".encode(), None),  # bare LF
        (f"--{BOUNDARY}X\r\n".encode() + body(text_part("a", "1")), None),  # junk after the first boundary
    ],
)
async def test_malformed_bodies(data: bytes, field: str | None, spooled: list[Any]) -> None:
    err = await refused(data, size=7)
    assert err.code == "invalid_multipart" and err.message.startswith("The multipart body is malformed")
    assert err.field == field
    assert all(f.closed for f in spooled)


async def test_truncated_inside_a_file_closes_it(spooled: list[Any]) -> None:
    data = file_part("image", b"z" * 5000)  # no closing boundary
    err = await refused(data, size=512)
    assert (err.code, err.field) == ("invalid_multipart", "image")
    assert len(spooled) == 1 and spooled[0].closed


@pytest.mark.parametrize(
    "part",
    [
        f"--{BOUNDARY}\r\nContent-Type: text/plain\r\n\r\nv\r\n".encode(),  # no Content-Disposition
        f'--{BOUNDARY}\r\nContent-Disposition: attachment; name="a"\r\n\r\nv\r\n'.encode(),
        f"--{BOUNDARY}\r\nContent-Disposition: form-data\r\n\r\nv\r\n".encode(),  # no name
        f'--{BOUNDARY}\r\nContent-Disposition: form-data; name=""\r\n\r\nv\r\n'.encode(),
    ],
)
async def test_a_part_needs_a_form_data_name(part: bytes) -> None:
    err = await refused(body(part))
    assert err.code == "invalid_multipart" and ("name" in err.message or "Content-Disposition" in err.message)


async def test_text_must_be_utf8() -> None:
    err = await refused(body(text_part("prompt", b"caf\xe9")))
    assert (err.code, err.field) == ("invalid_multipart", "prompt") and "UTF-8" in err.message


async def test_a_client_that_goes_away_mid_body_leaves_no_open_file(spooled: list[Any]) -> None:
    async def cut() -> AsyncIterator[bytes]:
        yield file_part("image", b"a" * 3000)[:2000]
        raise ConnectionResetError("gone")

    with pytest.raises(ConnectionResetError):
        await parse_multipart(cut(), CT, ROOMY)
    assert len(spooled) == 1 and spooled[0].closed


async def test_close_frees_every_file(spooled: list[Any]) -> None:
    form = await parse(body(file_part("a", b"1" * 5000), file_part("b", b"2")))
    async with form:
        assert not any(f.closed for f in spooled)
    assert len(spooled) == 2 and all(f.closed for f in spooled)


# --- through Litestar -------------------------------------------------------------------------


@post("/form", status_code=200)
async def echo_form(request: Request[Any, Any, Any]) -> dict[str, Any]:
    try:
        form = await read_multipart(request, limits(max_file_bytes=5000, max_total_bytes=20000))
    except MultipartError as exc:
        return {"error": exc.code, "field": exc.field, "message": exc.message}
    async with form:
        return {"parts": [[p.name, p.value] if isinstance(p, TextField) else [p.name, (await p.read()).decode()] for p in form.parts]}


def test_read_multipart_over_a_litestar_request() -> None:
    with TestClient(Litestar([echo_form])) as client:
        r = client.post("/form", data={"prompt": "hello"}, files={"image": ("i.txt", io.BytesIO(b"file body"), "text/plain")})
        assert r.json() == {"parts": [["prompt", "hello"], ["image", "file body"]]}
        r = client.post("/form", files={"image": ("i.txt", io.BytesIO(b"x" * 5001), "text/plain")})
        assert r.json()["error"] == "upload_too_large" and r.json()["field"] == "image"
        r = client.post("/form", files={"image": ("i.txt", io.BytesIO(b"x" * 4000), "text/plain"), "mask": ("m", io.BytesIO(b"y" * 4000))}, data={"a": "b" * 90})
        assert r.json()["parts"][0] == ["a", "b" * 90]
        big = {f"f{i}": ("f", io.BytesIO(b"z" * 4000)) for i in range(6)}
        r = client.post("/form", files=big)
        assert r.json()["error"] == "upload_too_large" and "request body" in r.json()["message"]
        r = client.post("/form", content=b"{}", headers={"Content-Type": "application/json"})
        assert r.json()["error"] == "invalid_multipart"
