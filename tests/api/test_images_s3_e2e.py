"""Images on an S3-compatible bucket, end to end: a real `mj-adapter serve` (demo mode) with
`MJ_ADAPTER_IMAGE_STORE_URL=s3://...` pointing at moto's server on loopback. Results land in the
bucket only, our URLs serve them, retention deletes them, and with `IMAGE_PUBLIC_BASE_URL` the
URLs we hand out point at the bucket and still work for follow-ups."""

from __future__ import annotations

import json
import secrets
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import openai
import pytest

sys.path.insert(0, str(Path(__file__).parent))
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from s3_server import CREDENTIALS, MotoServer, moto_session  # noqa: E402
from server_process import KEY_A, ServerProcess  # noqa: E402

from adapter.media.store import key_from_url  # noqa: E402

pytestmark = pytest.mark.slow
RETENTION_DAYS = "0.00003"  # about 2.6 s


@pytest.fixture(scope="session")
def moto(tmp_path_factory: pytest.TempPathFactory) -> Iterator[MotoServer]:
    yield from moto_session(tmp_path_factory)


@pytest.fixture
def bucket(moto: MotoServer) -> Iterator[str]:
    yield from moto.new_bucket()


def start(tmp_path: Path, moto: MotoServer, bucket: str, prefix: str, **extra: str) -> ServerProcess:
    env = {
        **CREDENTIALS,
        "MJ_ADAPTER_IMAGE_STORE_URL": f"s3://{bucket}/{prefix}?endpoint_url={moto.endpoint}",
        **extra,
    }
    return ServerProcess(tmp_path / "data", env=env).start()


def test_results_live_in_the_bucket_and_retention_deletes_them(tmp_path: Path, moto: MotoServer, bucket: str) -> None:
    prefix = f"run-{secrets.token_hex(4)}/mj"
    server = start(
        tmp_path, moto, bucket, prefix, MJ_ADAPTER_RETENTION_DAYS=RETENTION_DAYS, MJ_ADAPTER_RETENTION_INTERVAL_SECONDS="0.2"
    )
    try:
        client = openai.OpenAI(base_url=server.v1, api_key=KEY_A, max_retries=0, timeout=60)
        result = client.images.generate(model="midjourney", prompt="a lighthouse kept in a bucket", n=1, size="1024x1024")
        url = result.data[0].url or ""
        assert url.startswith(f"{server.base}/images/")
        key = key_from_url(url)
        assert key is not None

        # served by us, from the bucket: the same bytes as the object
        answer = httpx.get(url, timeout=10)
        assert answer.status_code == 200, server.log()
        assert answer.headers["content-type"] == "image/png"
        assert answer.headers["x-content-type-options"] == "nosniff"
        assert answer.headers["cache-control"].startswith("public, max-age=")
        obj = moto.client.get_object(Bucket=bucket, Key=f"{prefix}/images/{key}")
        assert obj["Body"].read() == answer.content
        assert obj["ContentType"] == "image/png"
        job_id = key.split("/", 1)[0]
        assert moto.keys(bucket, f"{prefix}/images/{job_id}/")  # the grid and its tiles
        # nothing was written to the local images directory
        assert not (server.data_dir / "images").exists()
        assert CREDENTIALS["AWS_SECRET_ACCESS_KEY"] not in server.log()

        deadline = time.monotonic() + 30
        while moto.keys(bucket, f"{prefix}/images/{job_id}/") or httpx.get(url, timeout=10).status_code != 404:
            assert time.monotonic() < deadline, f"still there after 30 s:\n{server.log()}"
            time.sleep(0.1)
        assert "retention: deleted 1 jobs" in server.log()
    finally:
        server.stop()


def test_urls_under_the_public_image_base_serve_and_chain(tmp_path: Path, moto: MotoServer, bucket: str) -> None:
    prefix = f"run-{secrets.token_hex(4)}"
    bucket_base = f"{moto.endpoint}/{bucket}/{prefix}"  # the bucket itself (path style), as a CDN would be
    # what an operator does for a public bucket (or a CDN's origin): anyone may read the images
    policy = {
        "Version": "2012-10-17",
        "Statement": [{"Effect": "Allow", "Principal": "*", "Action": "s3:GetObject", "Resource": f"arn:aws:s3:::{bucket}/{prefix}/images/*"}],
    }
    moto.client.put_bucket_policy(Bucket=bucket, Policy=json.dumps(policy))
    server = start(tmp_path, moto, bucket, prefix, MJ_ADAPTER_IMAGE_PUBLIC_BASE_URL=bucket_base + "/")
    try:
        client = openai.OpenAI(base_url=server.v1, api_key=KEY_A, max_retries=0, timeout=60)
        result = client.images.generate(model="midjourney", prompt="a koi pond behind a CDN", n=1, size="1024x1024")
        url = result.data[0].url or ""
        assert url.startswith(bucket_base + "/images/"), url
        key = key_from_url(url)
        assert key is not None
        obj = moto.client.get_object(Bucket=bucket, Key=f"{prefix}/images/{key}")
        assert obj["ContentType"] == "image/png"
        # what a CDN would fetch: the object at exactly that URL (anonymously)
        direct = httpx.get(url, timeout=10)
        assert direct.status_code == 200 and direct.content == obj["Body"].read()
        assert direct.headers.get("cache-control", "").startswith("public, max-age=")
        # our own route still answers for the same key
        assert httpx.get(f"{server.base}/images/{key}", timeout=10).status_code == 200

        # a follow-up on the pasted bucket URL finds the job that made it (chat: "U2" under it)
        chat = client.chat.completions.create(model="midjourney", messages=[{"role": "user", "content": f"{url} U2"}])
        answer = chat.choices[0].message.content or ""
        urls = [u for u in answer.replace("(", " ").replace(")", " ").split() if u.startswith(bucket_base + "/images/")]
        assert urls and urls[-1] != url, answer  # the upscale: a new image, in the bucket too
        assert httpx.get(urls[-1], timeout=10).status_code == 200
        assert not (server.data_dir / "images").exists()
    finally:
        server.stop()
