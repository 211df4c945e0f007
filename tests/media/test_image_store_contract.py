"""One contract, two image stores: the local directory and an S3-compatible bucket (moto's server
on loopback) must answer every case alike — keys, refs, content types, missing keys, deletion,
and what the `/images/{key}` route serves from them."""

from __future__ import annotations

import sys
import time
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from types import SimpleNamespace

import pytest
from litestar import Litestar
from litestar.testing import AsyncTestClient

from adapter.api.admin.routes import image_file
from adapter.config import Settings
from adapter.domain.jobs import ImageRef
from adapter.media.store import ImageStore, LocalImageStore, image_url, is_valid_key, job_id_from_key, key_from_url

from .conftest import make_image

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from s3_server import CREDENTIALS, MotoServer, moto_session  # noqa: E402

MP4 = b"\x00\x00\x00\x18ftypmp42\x00\x00\x00\x00mp42isom" + b"\x00" * 64
PREFIX = "tenants/acme/mj"  # a nested prefix
CACHE = "public, max-age=31536000, immutable"  # what the route sends without retention


@pytest.fixture(scope="session")
def moto(tmp_path_factory: pytest.TempPathFactory) -> Iterator[MotoServer]:
    yield from moto_session(tmp_path_factory)


@pytest.fixture
def bucket(moto: MotoServer) -> Iterator[str]:
    yield from moto.new_bucket()


def s3_store(moto: MotoServer, bucket: str, monkeypatch: pytest.MonkeyPatch, prefix: str = PREFIX) -> ImageStore:
    from adapter.media.s3_store import S3ImageStore, parse_s3_url

    for name, value in CREDENTIALS.items():
        monkeypatch.setenv(name, value)
    location = parse_s3_url(f"s3://{bucket}/{prefix}?endpoint_url={moto.endpoint}&region=us-east-1")
    return S3ImageStore(location, cache_control=CACHE)


@pytest.fixture(params=["local", "s3"])
def store(request: pytest.FixtureRequest, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> ImageStore:
    if request.param == "local":
        return LocalImageStore(tmp_path / "data")
    moto: MotoServer = request.getfixturevalue("moto")
    return s3_store(moto, request.getfixturevalue("bucket"), monkeypatch)


async def read_all(chunks: AsyncIterator[bytes] | None) -> bytes:
    assert chunks is not None
    return b"".join([c async for c in chunks])


async def served(store: ImageStore, key: str, retention_days: float | None = None) -> tuple[int, dict[str, str], bytes]:
    """What the real `/images/{key}` route answers from this store (in-process ASGI)."""
    app = Litestar(route_handlers=[image_file])
    app.state.ctx = SimpleNamespace(images=store, settings=Settings(retention_days=retention_days))
    async with AsyncTestClient(app) as client:
        r = await client.get(f"/images/{key}")
        return r.status_code, dict(r.headers), r.content


@pytest.mark.parametrize(
    "fmt,mime,ext",
    [("PNG", "image/png", "png"), ("JPEG", "image/jpeg", "jpg"), ("WEBP", "image/webp", "webp"), ("GIF", "image/gif", "gif")],
)
async def test_put_get_open_round_trip(store: ImageStore, fmt: str, mime: str, ext: str) -> None:
    data = make_image(fmt, (12, 7))
    before = time.time()
    # the hint is wrong on purpose: the bytes decide, in both stores
    ref = await store.put(data, "image/png" if fmt != "PNG" else "image/jpeg", job_id="j_round", name="result.png")
    assert isinstance(ref, ImageRef)
    assert (ref.width, ref.height, ref.content_type) == (12, 7, mime)
    assert is_valid_key(ref.key) and ref.key.startswith("j_round/") and ref.key.endswith(f"-result.{ext}")
    assert job_id_from_key(ref.key) == "j_round"

    got = await store.get(ref.key)
    assert got is not None and got.data == data and got.content_type == mime

    opened = await store.open(ref.key)
    assert opened is not None
    assert (opened.content_type, opened.size) == (mime, len(data))
    assert before - 5 <= opened.mtime <= time.time() + 5
    body = await read_all(opened.chunks)
    assert body == data


async def test_a_put_that_need_not_be_durable_reads_back_alike(store: ImageStore) -> None:
    """`durable=False` (progress previews) is accepted by every store and changes nothing that
    can be read."""
    data = make_image("WEBP", (9, 6))
    ref = await store.put(data, "image/webp", job_id="j_preview", name="preview-1.webp", durable=False)
    assert (ref.width, ref.height, ref.content_type, ref.size) == (9, 6, "image/webp", len(data))
    got = await store.get(ref.key)
    assert got is not None and got.data == data
    opened = await store.open(ref.key)
    assert opened is not None and await read_all(opened.chunks) == data


async def test_a_seeded_key_is_the_same_in_every_process(store: ImageStore) -> None:
    """A derived image (a converted copy) stored under a key derived from a secret seed: the same
    seed gives the same key, so a second store of it replaces the first instead of adding one."""
    data = make_image()
    a = await store.put(data, "image/png", job_id="j_seeded", name="copy", seed="converted|j_seeded/x|webp")
    b = await store.put(data, "image/png", job_id="j_seeded", name="copy", seed="converted|j_seeded/x|webp")
    c = await store.put(data, "image/png", job_id="j_seeded", name="copy", seed="converted|j_seeded/y|webp")
    assert a.key == b.key != c.key and is_valid_key(a.key)
    got = await store.get(a.key)
    assert got is not None and got.data == data


async def test_mp4_is_kept_as_video(store: ImageStore) -> None:
    ref = await store.put(MP4, "video/mp4", job_id="j_video", name="clip")
    assert (ref.width, ref.height, ref.content_type) == (0, 0, "video/mp4")
    assert ref.key.endswith("-clip.mp4")
    got = await store.get(ref.key)
    assert got is not None and got.data == MP4 and got.content_type == "video/mp4"


async def test_missing_and_foreign_keys(store: ImageStore) -> None:
    ref = await store.put(make_image(), "image/png", job_id="j_there", name="1")
    token_twin = ref.key.replace("j_there/", "j_other/")
    for key in (token_twin, "j_there/" + "a" * 26 + "-1.png", "../etc/passwd", "j_there/../x.png", "", "j_there"):
        assert await store.get(key) is None
        assert await store.open(key) is None


async def test_bad_input_is_refused(store: ImageStore) -> None:
    with pytest.raises(ValueError):
        await store.put(make_image(), "image/png", job_id="../escape", name="1")
    with pytest.raises(ValueError):
        await store.delete_job("a/b")


async def test_delete_job_removes_that_job_only(store: ImageStore) -> None:
    a1 = await store.put(make_image(), "image/png", job_id="j_a", name="1")
    a2 = await store.put(make_image("JPEG"), "image/jpeg", job_id="j_a", name="2")
    b = await store.put(make_image(), "image/png", job_id="j_ab", name="1")  # shares a name prefix
    await store.delete_job("j_a")
    assert await store.get(a1.key) is None and await store.get(a2.key) is None
    assert await store.open(a1.key) is None
    assert await store.get(b.key) is not None
    await store.delete_job("j_a")  # idempotent
    await store.delete_job("j_never")


async def test_the_route_serves_it_with_our_headers(store: ImageStore) -> None:
    data = make_image("WEBP", (9, 9))
    ref = await store.put(data, "image/webp", job_id="j_serve", name="1")
    status, headers, body = await served(store, ref.key)
    assert status == 200 and body == data
    assert headers["content-type"] == "image/webp"
    assert headers["x-content-type-options"] == "nosniff"
    assert headers["cache-control"] == CACHE
    assert headers["content-length"] == str(len(data))
    assert headers["content-disposition"].startswith("inline")

    # with retention: the time left, counted from when the store wrote it
    _, headers, _ = await served(store, ref.key, retention_days=1)
    max_age = int(headers["cache-control"].rsplit("=", 1)[1])
    assert 86_400 - 60 <= max_age <= 86_400

    for missing in (ref.key.replace("j_serve/", "j_gone/"), "not-a-key.png", "j_serve/../../x.png"):
        status, _, _ = await served(store, missing)
        assert status == 404
    await store.delete_job("j_serve")
    assert (await served(store, ref.key))[0] == 404


# -- S3 only: where the objects are and what they carry ------------------------------------------


async def test_s3_objects_mirror_the_local_layout_with_metadata(moto: MotoServer, bucket: str, monkeypatch: pytest.MonkeyPatch) -> None:
    store = s3_store(moto, bucket, monkeypatch)
    ref = await store.put(make_image("JPEG"), "image/jpeg", job_id="j_layout", name="1")
    assert moto.keys(bucket) == [f"{PREFIX}/images/{ref.key}"]
    head = moto.client.head_object(Bucket=bucket, Key=f"{PREFIX}/images/{ref.key}")
    assert head["ContentType"] == "image/jpeg"
    assert head["CacheControl"] == CACHE

    # the bucket's own URL for it is one of "our" URLs: follow-ups on it find the key
    bucket_base = f"{moto.endpoint}/{bucket}/{PREFIX}"
    url = image_url(bucket_base, ref.key)
    assert url == f"{moto.endpoint}/{bucket}/{PREFIX}/images/{ref.key}"
    assert key_from_url(url) == ref.key
    assert key_from_url(url, bucket_base) == ref.key


async def test_s3_without_prefix_and_many_objects_deleted_in_batches(moto: MotoServer, bucket: str, monkeypatch: pytest.MonkeyPatch) -> None:
    store = s3_store(moto, bucket, monkeypatch, prefix="")
    png = make_image()
    refs = [await store.put(png, "image/png", job_id="j_many", name=str(i)) for i in range(25)]
    other = await store.put(png, "image/png", job_id="j_keep", name="1")
    assert len(moto.keys(bucket, "images/j_many/")) == 25
    await store.delete_job("j_many")
    assert moto.keys(bucket) == [f"images/{other.key}"]
    assert all([await store.get(r.key) is None for r in refs])


async def test_s3_missing_bucket_is_an_error_not_a_missing_image(moto: MotoServer, monkeypatch: pytest.MonkeyPatch) -> None:
    store = s3_store(moto, "mj-test-no-such-bucket", monkeypatch)
    with pytest.raises(Exception) as info:
        await store.put(make_image(), "image/png", job_id="j_x", name="1")
    # the secret never shows in what reaches logs
    assert CREDENTIALS["AWS_SECRET_ACCESS_KEY"] not in str(info.value)
