from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

from adapter.domain.job_ids import new_job_id
from adapter.domain.jobs import ImageRef
from adapter.media.decoding import ImageError
from adapter.media.store import (
    ImageStore,
    LocalImageStore,
    StoredImage,
    image_url,
    is_valid_key,
    job_id_from_key,
    key_from_url,
    new_key,
)

from .conftest import make_image


@pytest.fixture
def store(tmp_path: Path) -> LocalImageStore:
    return LocalImageStore(tmp_path)


async def test_round_trip(store: LocalImageStore, tmp_path: Path) -> None:
    job_id = new_job_id()
    png = make_image("PNG", (12, 7))
    ref = await store.put(png, "image/png", job_id=job_id, name="1")
    assert isinstance(ref, ImageRef)
    assert (ref.width, ref.height, ref.content_type) == (12, 7, "image/png")
    assert ref.key.startswith(f"{job_id}/") and ref.key.endswith("-1.png")
    assert job_id_from_key(ref.key) == job_id

    got = await store.get(ref.key)
    assert isinstance(got, StoredImage)
    assert got.data == png and got.content_type == "image/png"
    path = await store.path(ref.key)
    assert path is not None and path.read_bytes() == png
    assert path.is_relative_to(tmp_path / "images" / job_id)
    # written atomically: no temp files left behind
    assert [p.name for p in path.parent.iterdir()] == [path.name]
    assert isinstance(store, ImageStore)


async def test_content_type_comes_from_the_bytes(store: LocalImageStore) -> None:
    webp = make_image("WEBP", (5, 5))
    ref = await store.put(webp, "image/png", job_id="j_abc", name="result.png")
    assert ref.content_type == "image/webp"
    assert ref.key.endswith("-result.webp")
    stored = await store.get(ref.key)
    assert stored is not None and stored.content_type == "image/webp"
    jpeg_ref = await store.put(make_image("JPEG", (4, 4)), "image/jpeg", job_id="j_abc", name="x")
    assert jpeg_ref.key.endswith(".jpg")


async def test_non_image_refused(store: LocalImageStore, tmp_path: Path) -> None:
    with pytest.raises(ImageError):
        await store.put(b"hello", "image/png", job_id="j_abc", name="1")
    assert not (tmp_path / "images" / "j_abc").exists()


@pytest.mark.parametrize("job_id", ["", "..", "a/b", "../etc", "x" * 65, "j abc", "j_ü"])
async def test_invalid_job_ids_refused(store: LocalImageStore, job_id: str) -> None:
    with pytest.raises(ValueError):
        await store.put(make_image(), "image/png", job_id=job_id, name="1")
    with pytest.raises(ValueError):
        await store.delete_job(job_id)


@pytest.mark.parametrize(
    "key",
    [
        "../secret.png",
        "j_abc/../../etc/passwd",
        "/etc/passwd",
        "j_abc/..",
        "j_abc\\..\\x.png",
        "j_abc/aaaaaaaaaaaaaaaaaaaaaaaaaa-1.png/../../x",
        "j_abc/aaaaaaaaaaaaaaaaaaaaaaaaaa-1.exe",
        "j_abc/short-1.png",
        "",
    ],
)
async def test_traversal_and_malformed_keys_refused(store: LocalImageStore, tmp_path: Path, key: str) -> None:
    (tmp_path / "secret.png").write_bytes(make_image())
    assert await store.get(key) is None
    assert await store.path(key) is None
    assert job_id_from_key(key) is None
    assert not is_valid_key(key)


async def test_missing_key_is_none(store: LocalImageStore) -> None:
    key = new_key("j_abc", "1", "image/png")
    assert is_valid_key(key)
    assert await store.get(key) is None
    assert await store.path(key) is None


async def test_keys_unguessable_and_unique(store: LocalImageStore) -> None:
    png = make_image()
    refs = await asyncio.gather(*(store.put(png, "image/png", job_id="j_same", name="1") for _ in range(50)))
    keys = {r.key for r in refs}
    assert len(keys) == 50
    for key in keys:
        token = key.split("/", 1)[1].split("-", 1)[0]
        assert len(token) == 26  # 130 bits of base32 carrying 128 random bits
        assert token.isalnum() and token == token.lower()
    # url-safe as is
    for key in keys:
        assert all(c.isalnum() or c in "/_-." for c in key)
    for key in keys:
        stored = await store.get(key)
        assert stored is not None and stored.data == png


async def test_names_are_sanitised() -> None:
    key = new_key("j_abc", "../../we ird/näme.png", "image/png")
    assert is_valid_key(key)
    assert key.startswith("j_abc/") and "/" not in key.split("/", 1)[1]
    assert new_key("j_abc", "", "image/gif").endswith("-image.gif")
    with pytest.raises(ValueError):
        new_key("j_abc", "x", "text/html")


async def test_delete_job(store: LocalImageStore) -> None:
    a = await store.put(make_image(), "image/png", job_id="j_a", name="1")
    b = await store.put(make_image(), "image/png", job_id="j_b", name="1")
    await store.delete_job("j_a")
    assert await store.get(a.key) is None
    assert await store.get(b.key) is not None
    await store.delete_job("j_a")  # idempotent
    await store.delete_job("j_never")


def test_image_url_and_back() -> None:
    key = new_key("j_abcdefghijklmnopqrst", "2", "image/png")
    url = image_url("https://mj.example.com/", key)
    assert url == f"https://mj.example.com/images/{key}"
    assert key_from_url(url) == key
    assert key_from_url(url, "https://mj.example.com") == key
    assert key_from_url(url, "https://MJ.example.com/") == key
    assert key_from_url(url + "?download=1#x") == key
    # a base with a path prefix (behind a reverse proxy)
    prefixed = image_url("http://host:8080/mj", key)
    assert prefixed == f"http://host:8080/mj/images/{key}"
    assert key_from_url(prefixed, "http://host:8080/mj/") == key
    assert key_from_url(prefixed) == key
    assert job_id_from_key(key_from_url(prefixed) or "") == "j_abcdefghijklmnopqrst"


@pytest.mark.parametrize(
    "url,base",
    [
        ("https://other.example/images/{key}", "https://mj.example.com"),
        ("http://mj.example.com/images/{key}", "https://mj.example.com"),
        ("https://mj.example.com/files/{key}", None),
        ("https://mj.example.com/images/../{key}", None),
        ("https://mj.example.com/images/j_a/not-a-key.png", None),
        ("https://cdn.discordapp.com/attachments/1/2/grid_0.webp", None),
        ("not a url", None),
        ("", None),
    ],
)
def test_key_from_url_rejects_foreign_urls(url: str, base: str | None) -> None:
    key = new_key("j_a", "1", "image/png")
    assert key_from_url(url.format(key=key), base) is None


async def test_an_opened_image_reads_whole_after_retention_deletes_it(tmp_path: Path) -> None:
    """Retention may delete a job's folder between opening an image and sending its body; the
    answer must still be whole (its Content-Length already went out)."""
    store = LocalImageStore(tmp_path / "images")
    png = make_image()
    ref = await store.put(png, "image/png", job_id="j_race", name="1")
    opened = await store.open(ref.key)
    assert opened is not None and opened.size == len(png)
    await store.delete_job("j_race")
    assert await store.open(ref.key) is None
    body = b"".join([chunk async for chunk in opened.chunks])
    assert body == png


# -- durable or not: fsync, and never a partial file under a key ----------------------------------


@pytest.mark.parametrize("durable", [True, False])
async def test_fsync_only_for_durable_puts_and_the_file_appears_whole(
    store: LocalImageStore, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, durable: bool
) -> None:
    """A preview (durable=False) is not fsynced; durable or not, the file is written under a
    temporary name that is never a key and renamed into place whole: at no moment does a reader
    of the key find a partial file."""
    import os

    from adapter.media import store as store_module

    data = make_image("PNG", (64, 48))
    synced: list[int] = []
    renamed: list[tuple[str, str]] = []
    real_fsync, real_replace = os.fsync, os.replace

    def fsync(fd: int) -> None:
        synced.append(fd)
        real_fsync(fd)

    def replace(src: str | Path, dst: str | Path) -> None:
        src, dst = Path(src), Path(dst)
        # just before the rename: the key's path does not exist, the temporary file is whole
        assert not dst.exists()
        assert src.read_bytes() == data
        assert src.name.startswith(".") and not is_valid_key(f"{dst.parent.name}/{src.name}")
        renamed.append((src.name, dst.name))
        real_replace(src, dst)

    monkeypatch.setattr(store_module.os, "fsync", fsync)
    monkeypatch.setattr(store_module.os, "replace", replace)
    ref = await store.put(data, "image/png", job_id="j_durable", name="preview-1.png", durable=durable)
    assert len(renamed) == 1
    assert bool(synced) is durable
    assert (await store.get(ref.key)) == StoredImage(data=data, content_type="image/png")
    # nothing else is left in the job's directory
    assert [p.name for p in (tmp_path / "images" / "j_durable").iterdir()] == [ref.key.split("/", 1)[1]]


async def test_a_failed_non_durable_write_leaves_nothing(
    store: LocalImageStore, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from adapter.media import store as store_module

    def replace(src: str | Path, dst: str | Path) -> None:
        raise OSError("disk full")

    monkeypatch.setattr(store_module.os, "replace", replace)
    with pytest.raises(OSError):
        await store.put(make_image(), "image/png", job_id="j_failed", name="preview-1.png", durable=False)
    assert list((tmp_path / "images" / "j_failed").iterdir()) == []


# -- big durable files: direct I/O where the filesystem takes it, the usual write where not --------


def _big_png(extra: int) -> bytes:
    """A valid PNG of more than a MiB whose length is not a multiple of 4 KiB."""
    import os

    png = make_image("PNG", (8, 8))
    # an ancillary chunk of noise before IEND (PNG readers skip unknown lower-case chunks)
    import struct
    import zlib

    body = os.urandom((1 << 20) + extra)
    chunk = struct.pack(">I", len(body)) + b"raNd" + body + struct.pack(">I", zlib.crc32(b"raNd" + body))
    return png[:-12] + chunk + png[-12:]


@pytest.mark.parametrize("extra", [0, 1, 4093, 123457])
async def test_a_big_durable_file_is_written_whole(store: LocalImageStore, tmp_path: Path, extra: int) -> None:
    from adapter.media import store as store_module

    data = _big_png(extra)
    assert len(data) >= store_module._DIRECT_MIN_BYTES and len(data) % 4096
    ref = await store.put(data, "image/png", job_id="j_big", name="result.png")
    assert (await store.get(ref.key)) == StoredImage(data=data, content_type="image/png")
    assert [p.name for p in (tmp_path / "images" / "j_big").iterdir()] == [ref.key.split("/", 1)[1]]


@pytest.mark.parametrize("where", ["open", "write"])
async def test_no_direct_io_on_this_filesystem_falls_back_to_the_usual_write(
    store: LocalImageStore, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, where: str
) -> None:
    """A filesystem that refuses direct I/O (EINVAL at open or at the first write) gets the
    buffered write, fsynced, and is not asked again."""
    import errno
    import os

    from adapter.media import store as store_module

    if not hasattr(os, "O_DIRECT"):
        pytest.skip("no O_DIRECT on this platform")
    monkeypatch.setattr(store_module, "_direct_io", True)
    real_open, real_write, real_fsync = os.open, os.write, os.fsync
    direct_fds: set[int] = set()
    opened: list[bool] = []
    synced: list[int] = []

    def fake_open(path: str | Path, flags: int, mode: int = 0o777, **kw: object) -> int:
        direct = bool(flags & os.O_DIRECT)
        opened.append(direct)
        if direct and where == "open":
            raise OSError(errno.EINVAL, "Invalid argument")
        fd = real_open(path, flags, mode, **kw)  # type: ignore[arg-type]
        if direct:
            direct_fds.add(fd)
        return fd

    def fake_write(fd: int, data: bytes) -> int:
        if fd in direct_fds:
            raise OSError(errno.EINVAL, "Invalid argument")
        return real_write(fd, data)

    def fake_fsync(fd: int) -> None:
        synced.append(fd)
        real_fsync(fd)

    monkeypatch.setattr(store_module.os, "open", fake_open)
    monkeypatch.setattr(store_module.os, "write", fake_write)
    monkeypatch.setattr(store_module.os, "fsync", fake_fsync)
    data = _big_png(99)
    ref = await store.put(data, "image/png", job_id="j_nodirect", name="result.png")
    assert (await store.get(ref.key)) == StoredImage(data=data, content_type="image/png")
    assert [p.name for p in (tmp_path / "images" / "j_nodirect").iterdir()] == [ref.key.split("/", 1)[1]]
    assert opened[0] is True and synced  # tried once, then the usual write, fsynced
    assert store_module._direct_io is False
    opened.clear()
    await store.put(data, "image/png", job_id="j_nodirect", name="again.png")
    assert True not in opened


async def test_a_big_preview_is_not_written_direct(store: LocalImageStore, monkeypatch: pytest.MonkeyPatch) -> None:
    import os

    from adapter.media import store as store_module

    if not hasattr(os, "O_DIRECT"):
        pytest.skip("no O_DIRECT on this platform")
    real_open = os.open
    flags_seen: list[int] = []

    def fake_open(path: str | Path, flags: int, mode: int = 0o777, **kw: object) -> int:
        flags_seen.append(flags)
        return real_open(path, flags, mode, **kw)  # type: ignore[arg-type]

    monkeypatch.setattr(store_module.os, "open", fake_open)
    await store.put(_big_png(5), "image/png", job_id="j_bigpreview", name="preview-1.png", durable=False)
    assert not any(f & os.O_DIRECT for f in flags_seen)


async def test_big_writes_one_after_another_and_at_once_each_read_back_whole(store: LocalImageStore) -> None:
    """The direct-I/O buffer kept between writes: a smaller file after a bigger one, and writes
    at the same moment (one gets the kept buffer, the others their own)."""
    sizes = [300_000, 5, 4096, 77_777, 1]
    datas = [_big_png(n) for n in sizes]
    for data in datas:
        ref = await store.put(data, "image/png", job_id="j_seq", name="tile.png")
        got = await store.get(ref.key)
        assert got is not None and got.data == data
    refs = await asyncio.gather(*(store.put(d, "image/png", job_id="j_par", name=f"{i}.png") for i, d in enumerate(datas)))
    for ref, data in zip(refs, datas):
        got = await store.get(ref.key)
        assert got is not None and got.data == data
