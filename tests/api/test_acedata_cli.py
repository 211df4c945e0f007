"""The action-style API's own published client against us: AceDataCloud's `midjourney-pro-cli`
(PyPI; it reads ACEDATACLOUD_API_BASE_URL and ACEDATACLOUD_API_TOKEN) run as a subprocess against a
real demo server on loopback. Each command is run unchanged with `--json` (the raw answers):
imagine (it always sends `async`), wait (it polls /midjourney/tasks and reads `success` and
`image_url` at the record's top level), transform, task by id and by --trace-id, tasks with
paging, seed, describe, variation_region with a base64 mask, and translate's refusal."""

from __future__ import annotations

import base64
import io
import json
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from PIL import Image

sys.path.insert(0, str(Path(__file__).parent))
from server_process import KEY_A, ServerProcess  # noqa: E402

pytest.importorskip("midjourney_cli", reason="midjourney-pro-cli is in the test extra")


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerProcess]:
    # describe fetches one of our own images
    s = ServerProcess(tmp_path_factory.mktemp("acedata-cli"), env={"MJ_ADAPTER_USER_URL_ALLOW_HOSTS": "127.0.0.1"}).start()
    yield s
    s.stop()


@pytest.fixture(scope="module")
def workdir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("cli-cwd")  # no stray .env is read


def cli(server: ServerProcess, workdir: Path, *args: str, ok: bool = True) -> Any:
    env = {
        **os.environ,
        "ACEDATACLOUD_API_BASE_URL": server.base,
        "ACEDATACLOUD_API_TOKEN": KEY_A,
        "MIDJOURNEY_REQUEST_TIMEOUT": "60",
        "COLUMNS": "100000",  # rich would wrap long JSON lines at 80 columns
        "NO_COLOR": "1",
        "TERM": "dumb",
    }
    proc = subprocess.run([sys.executable, "-m", "midjourney_cli", *args], capture_output=True, text=True, env=env, cwd=workdir, timeout=120)
    if not ok:
        assert proc.returncode != 0, proc.stdout
        return proc.stdout + proc.stderr
    assert proc.returncode == 0, proc.stdout + proc.stderr
    return json.loads(proc.stdout)


def test_cli_imagine_wait_transform_seed_tasks(server: ServerProcess, workdir: Path) -> None:
    first = cli(server, workdir, "imagine", "A cat sitting on a table", "--mode", "fast", "--split", "--json")
    assert first["success"] is True and first["task_id"] and first["trace_id"] == first["task_id"]
    done = cli(server, workdir, "wait", first["task_id"], "--interval", "1", "--timeout", "60", "--json")
    assert done["success"] is True and done["image_url"] and done["response"]["actions"], done
    assert len(done["response"]["sub_image_urls"]) == 4
    image_id = done["response"]["image_id"]

    up = cli(server, workdir, "transform", image_id, "upscale2", "--json")
    up_done = cli(server, workdir, "wait", up["task_id"], "--interval", "1", "--timeout", "60", "--json")
    assert up_done["request"]["action"] == "upscale2" and "variation_region" in up_done["response"]["actions"]

    by_trace = cli(server, workdir, "task", "--trace-id", up["trace_id"], "--json")
    assert by_trace["id"] == up["task_id"]
    both = cli(server, workdir, "tasks", first["task_id"], up["task_id"], "--json")
    assert both["count"] == 2 and [i["id"] for i in both["items"]] == [first["task_id"], up["task_id"]]
    page = cli(server, workdir, "tasks", first["task_id"], up["task_id"], "--offset", "1", "--limit", "1", "--json")
    assert page["count"] == 1 and page["items"][0]["id"] == up["task_id"]

    seed = cli(server, workdir, "seed", image_id, "--json")
    assert set(seed) == {"seed"} and seed["seed"].isdigit()

    # variation_region with the CLI's base64 mask
    img = Image.new("L", (256, 256), 0)
    img.paste(255, (64, 64, 128, 128))
    buf = io.BytesIO()
    img.save(buf, "PNG")
    mask = base64.b64encode(buf.getvalue()).decode()
    region = cli(server, workdir, "transform", up_done["response"]["image_id"], "variation_region", "--mask", mask, "--prompt", "a red hat", "--json")
    region_done = cli(server, workdir, "wait", region["task_id"], "--interval", "1", "--timeout", "60", "--json")
    assert region_done["success"] is True and region_done["request"]["action"] == "variation_region"

    described = cli(server, workdir, "describe", done["response"]["sub_image_urls"][0], "--json")
    assert described["success"] is True and len(described["descriptions"]) == 4

    # no translator configured here: the CLI reports that API's refusal and exits 1
    out = cli(server, workdir, "translate", "一只猫坐在桌子上", ok=False)
    assert "api_not_implemented" in out or "translator" in out
