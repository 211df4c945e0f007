"""Retention end to end: a real server process with a retention of a few seconds deletes a finished
job's record and its images, so the job and its image URL both answer 404."""

from __future__ import annotations

import sys
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import openai
import pytest

sys.path.insert(0, str(Path(__file__).parent))
from server_process import KEY_A, ServerProcess  # noqa: E402

RETENTION_DAYS = "0.00003"  # about 2.6 s: long enough to see the result first, short for a test


@pytest.fixture
def server(tmp_path: Path) -> Iterator[ServerProcess]:
    s = ServerProcess(
        tmp_path / "data",
        env={"MJ_ADAPTER_RETENTION_DAYS": RETENTION_DAYS, "MJ_ADAPTER_RETENTION_INTERVAL_SECONDS": "0.2"},
    ).start()
    yield s
    s.stop()


def test_a_finished_job_and_its_images_are_gone_after_the_retention(server: ServerProcess) -> None:
    client = openai.OpenAI(base_url=server.v1, api_key=KEY_A, max_retries=0, timeout=60)
    result = client.images.generate(model="midjourney", prompt="a short-lived lighthouse", n=1, size="1024x1024")
    url = result.data[0].url or ""
    (job_id,) = (result.model_extra or {})["job_ids"]
    auth = {"Authorization": f"Bearer {KEY_A}"}
    job_url = f"{server.v1}/jobs/{job_id}"

    # there first: the record, the image, and its folder on disk
    assert httpx.get(job_url, headers=auth, timeout=10).status_code == 200
    assert httpx.get(url, timeout=10).status_code == 200
    folder = server.data_dir / "images" / job_id
    assert folder.is_dir()

    deadline = time.monotonic() + 30
    while True:
        job_status = httpx.get(job_url, headers=auth, timeout=10).status_code
        image_status = httpx.get(url, timeout=10).status_code
        if job_status == 404 and image_status == 404:
            break
        assert time.monotonic() < deadline, f"still there after 30 s ({job_status}, {image_status}):\n{server.log()}"
        time.sleep(0.1)
    assert not folder.exists()
    assert "retention: deleted 1 jobs" in server.log()
