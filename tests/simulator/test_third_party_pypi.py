"""A second, independent third-party client against the standalone simulator: the PyPI
`mutiny-sdk` package (Artificial-Sweetener/Mutiny-SDK; a Discord user-token client: gateway +
REST + slash-command and component interactions), pinned, installed on first use into its own
venv under tests/.cache/pyclient.

`mj-adapter simulator` runs as its own process on loopback; `py_client/steps.py` (run with the
client's venv) drives every operation the client has — imagine with progress, U (standard),
V, vary subtle (from a grid tile: the client promotes the tile itself) and strong, zoom out 2x
and 1.5x, pan, custom zoom (button + modal), upscale subtle/creative (v7), vary region (the
iframe submit), describe (upload), blend, and its image recognition (resolve/split) — and prints
what each call returned; the tests assert on those answers.

The client hard-codes what it cannot be configured with: its command versions (the real ones,
which the simulator serves) and the gateway / iframe hosts (steps.py's shim points those at the
simulator; its REST base is its own `api_endpoint` option).

Animate / extend: the client sends Midjourney's prompt-video request (`/imagine <image url>
--video --motion high`), presses U1 on the video grid and takes the MP4; extend presses Extend
on that video, then U1 on the new grid.

Skips when python3 (3.11+) or the install is unavailable, fails instead when CI=true. Network:
loopback, plus PyPI for the one-time install.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from .test_third_party_npm import StandaloneSimulator, _ok, _unavailable, client_steps

PYPI_PACKAGE = "mutiny-sdk"
PYPI_VERSION = "1.1.0"
ROOT = Path(__file__).resolve().parents[2]
VENV = ROOT / "tests" / ".cache" / "pyclient"
PYTHON = VENV / "bin" / "python"
SCRIPT = Path(__file__).with_name("py_client") / "steps.py"
INSTALL_TIMEOUT = 600
PROMPT = "a red fox in the snow"
UUID = r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}"

STEPS = [
    "connect", "imagine", "upscale_u1", "variation_v2", "vary_subtle_from_grid", "vary_strong", "zoom_out_2x_from_grid",
    "zoom_out_1_5x_from_grid", "pan_left_from_grid", "custom_zoom_from_grid", "imagine_v7", "upscale_subtle_from_grid",
    "upscale_creative_from_grid", "describe", "blend", "recognise", "vary_region",
]


def _installed_version() -> str | None:
    if not PYTHON.exists():
        return None
    try:
        done = subprocess.run(
            [str(PYTHON), "-c", f"import importlib.metadata as m; print(m.version({PYPI_PACKAGE!r}))"],
            capture_output=True, text=True, timeout=60,
        )
    except (OSError, subprocess.TimeoutExpired):
        return None
    return done.stdout.strip() if done.returncode == 0 else None


def _base_python() -> str | None:
    """A python3 of 3.11+ to make the client's venv with (the client needs tomllib)."""
    for candidate in (sys.executable, shutil.which("python3")):
        if not candidate:
            continue
        try:
            done = subprocess.run([candidate, "-c", "import sys; print(sys.version_info >= (3, 11))"],
                                  capture_output=True, text=True, timeout=30)
        except (OSError, subprocess.TimeoutExpired):
            continue
        if done.stdout.strip() == "True":
            return candidate
    return None


@pytest.fixture(scope="module")
def pyclient() -> Path:
    """The pinned package in its own venv under tests/.cache/pyclient (installed on first use)."""
    if _installed_version() != PYPI_VERSION:
        base = _base_python()
        if base is None:
            _unavailable("python 3.11+ is needed to run the PyPI `mutiny-sdk` client")
        try:
            made = subprocess.run([base, "-m", "venv", "--clear", str(VENV)], capture_output=True, text=True, timeout=120)
            if made.returncode != 0:
                _unavailable(f"python -m venv failed: {made.stderr[-2000:]}")
            done = subprocess.run(
                [str(PYTHON), "-m", "pip", "install", "--disable-pip-version-check", "-q", f"{PYPI_PACKAGE}=={PYPI_VERSION}"],
                capture_output=True, text=True, timeout=INSTALL_TIMEOUT,
            )
        except subprocess.TimeoutExpired:
            _unavailable(f"installing {PYPI_PACKAGE}=={PYPI_VERSION} took too long")
        if done.returncode != 0 or _installed_version() != PYPI_VERSION:
            _unavailable(f"pip install {PYPI_PACKAGE}=={PYPI_VERSION} failed: {done.stderr[-2000:]}")
    return PYTHON


@pytest.fixture(scope="module")
def standalone(tmp_path_factory: pytest.TempPathFactory, pyclient: Path) -> Iterator[StandaloneSimulator]:
    sim = StandaloneSimulator(tmp_path_factory.mktemp("pypi-sim"))
    try:
        yield sim
    finally:
        sim.stop()


def run_steps(sim: StandaloneSimulator, python: Path, steps: list[str], tmp: Path, *, account: int = 0,
              step_timeout: float = 30) -> dict[str, dict[str, Any]]:
    config = {
        "base": sim.info["base_url"], "rest": sim.info["rest_base"], "gateway": sim.info["gateway_url"],
        "account": sim.accounts[account], "steps": steps, "stepTimeout": step_timeout, "prompt": PROMPT,
        "cacheDir": str(tmp / "mutiny-cache"),
    }
    return client_steps(
        [str(python), str(SCRIPT), json.dumps(config)], who="the PyPI client", cwd=tmp,
        timeout=step_timeout * (len(steps) + 2) + 30,
        env={k: v for k, v in os.environ.items() if not k.startswith(("MJ_", "MUTINY_"))},
    )


def _image_job(sim: StandaloneSimulator, job: dict[str, Any], kind: str, channel_id: str, *, progress: bool = True) -> str:
    """A finished image job as the client reports it: its kind, an image URL the simulator's CDN
    serves, and (for jobs that run) the progress it followed. Returns the job hash."""
    assert job["kind"] == kind and job["status"] == "SUCCEEDED" and job["fail_reason"] is None, job
    assert job["output"]["type"] == "ImageOutput", job["output"]
    url = job["output"]["image_url"]
    assert url.startswith(f"{sim.base}/attachments/{channel_id}/"), url
    r = sim.http.get(url)
    assert r.status_code == 200 and r.headers["content-type"].startswith("image/")
    if progress:  # the percentage the client last parsed, and ProgressUpdates streamed to events()
        assert re.fullmatch(r"\d{1,3}%", job["progress_text"] or ""), job["progress_text"]
        assert job["progress"], job
    found = re.search(UUID, url.rsplit("/", 1)[-1])
    assert found, url
    return found.group(0)


def test_pypi_client_every_operation(standalone: StandaloneSimulator, pyclient: Path, tmp_path: Path) -> None:
    sim = standalone
    user = sim.accounts[0]["user_id"]
    channel = sim.accounts[0]["channel_id"]
    # The client reads results whose content has no "Open on website" link (see the next test).
    assert sim.control("settings", {"user_id": user, "website_link": "never"}) == 1
    results = run_steps(sim, pyclient, STEPS, tmp_path)

    assert _ok(results, "connect") == {"ready": True}
    jobs = {j["hash"]: j for j in sim.http.get("/_simulator/jobs").json()}

    grid = _ok(results, "imagine")
    grid_hash = _image_job(sim, grid, "imagine", channel)
    assert grid["prompt_text"] == PROMPT and jobs[grid_hash]["action"] == "IMAGINE"

    expected = {  # step: (the client's kind, the simulator's action)
        "upscale_u1": ("upscale", "UPSCALE"),
        "variation_v2": ("variation", "VARIATION"),
        "vary_subtle_from_grid": ("vary_subtle", "VARY_SUBTLE"),
        "vary_strong": ("vary_strong", "VARY_STRONG"),
        "zoom_out_2x_from_grid": ("zoom_out_2x", "ZOOM"),
        "zoom_out_1_5x_from_grid": ("zoom_out_1_5x", "ZOOM"),
        "pan_left_from_grid": ("pan_left", "PAN"),
        "custom_zoom_from_grid": ("custom_zoom", "CUSTOM_ZOOM"),
        "imagine_v7": ("imagine", "IMAGINE"),
        "upscale_subtle_from_grid": ("upscale_v7_2x_subtle", "UPSCALE_SUBTLE"),
        "upscale_creative_from_grid": ("upscale_v7_2x_creative", "UPSCALE_CREATIVE"),
        "blend": ("blend", "BLEND"),
        "vary_region": ("inpaint", "VARY_REGION"),
    }
    hashes = {grid_hash}
    for step, (kind, action) in expected.items():
        job = _ok(results, step)
        h = _image_job(sim, job, kind, channel, progress=step != "upscale_u1")  # U1-U4 are instant
        assert jobs[h]["action"] == action, (step, jobs[h])
        assert h not in hashes, step
        hashes.add(h)
    assert jobs[re.search(UUID, _ok(results, "upscale_u1")["output"]["image_url"]).group(0)]["parent"] == grid_hash
    assert _ok(results, "variation_v2")["prompt_text"] == PROMPT
    assert "--zoom 1.8" in _ok(results, "custom_zoom_from_grid")["prompt_text"]
    assert "with a hat" in _ok(results, "vary_region")["prompt_text"]

    describe = _ok(results, "describe")
    assert describe["kind"] == "describe" and describe["status"] == "SUCCEEDED"
    # The four prompts arrive as the job's prompt text. (mutiny-sdk 1.1.0 never fills the
    # `description` its facade turns into a TextOutput, so `output` is the described image.)
    assert describe["output"]["type"] == "ImageOutput" and describe["output"]["image_url"].startswith(sim.base)
    prompts = [line for line in describe["prompt_text"].split("\n") if line.strip()]
    assert len(prompts) == 4 and all(re.match(r"^[1-4]\ufe0f\u20e3 ", p) for p in prompts), prompts

    recognised = _ok(results, "recognise")
    assert [(t["job_id"], t["index"]) for t in recognised["tiles"]] == [(grid["id"], i) for i in range(1, 5)]
    assert recognised["tile3"] == {"job_id": grid["id"], "index": 3}
    assert recognised["succeeded"] >= len(expected) + 1  # everything above but vary region (after it), + describe

    # what the client sent, as Discord saw it: every interaction taken, the tile promotions
    # (U<n> on the grid) it does itself before a solo-surface action, the modal submit of custom zoom
    mine = [i for i in sim.interactions() if i["user_id"] == user]
    assert {(i["outcome"], i["status"]) for i in mine} == {("accepted", 204)}
    names = [i["name"] for i in mine]
    assert names.count("imagine") == 2 and "describe" in names and "blend" in names
    assert f"MJ::JOB::upsample::3::{grid_hash}" in names  # vary subtle on tile 3
    assert any(n.startswith("MJ::OutpaintCustomZoomModal::") for n in names)
    assert any(n.startswith("MJ::Inpaint::1::") for n in names)
    assert any(re.fullmatch(rf"MJ::JOB::upsample_v7_2x_subtle::1::{UUID}::SOLO", n) for n in names)


def test_pypi_client_animate_and_extend(standalone: StandaloneSimulator, pyclient: Path, tmp_path: Path) -> None:
    sim = standalone
    assert sim.control("settings", {"user_id": sim.accounts[0]["user_id"], "website_link": "never"}) == 1
    results = run_steps(sim, pyclient, ["connect", "imagine_v7", "upscale_subtle_from_grid", "animate", "extend"], tmp_path,
                        step_timeout=15)
    _ok(results, "upscale_subtle_from_grid")
    animate = _ok(results, "animate")
    assert animate["status"] == "SUCCEEDED" and animate["output"]["type"] == "VideoOutput"
    assert re.search(rf"/({UUID})_1_720_N\.mp4\?", animate["output"]["video_url"])  # U1 of the prompt-video grid
    extend = _ok(results, "extend")
    assert extend["status"] == "SUCCEEDED" and extend["output"]["type"] == "VideoOutput"
    assert re.search(rf"/({UUID})_1_720_N\.mp4\?", extend["output"]["video_url"])
    assert extend["output"]["video_url"] != animate["output"]["video_url"]
    kinds = [j["action"] for j in sim.http.get("/_simulator/jobs").json() if j["user_id"] == sim.accounts[0]["user_id"]]
    assert kinds[-4:] == ["PROMPT_VIDEO", "VIDEO_UPSCALE", "ANIMATE_EXTEND", "VIDEO_UPSCALE"]


def test_pypi_client_misses_results_with_the_website_link(standalone: StandaloneSimulator, pyclient: Path, tmp_path: Path) -> None:
    """Midjourney writes `<@user> [(Open on website for full quality)](<…/jobs/<hash>>) (fast)`
    into some results (grids and variations included: public captures). The client's parser
    expects `<@user> (fast)` there and reads the link form only as an upscale's, so it never
    finishes an imagine whose grid carries it — the simulator's `website_link: always` account."""
    sim = standalone
    user = sim.accounts[1]["user_id"]
    assert sim.control("settings", {"user_id": user, "website_link": "always"}) == 1
    results = run_steps(sim, pyclient, ["connect", "imagine"], tmp_path, account=1, step_timeout=10)
    _ok(results, "connect")
    assert not results["imagine"]["ok"] and "timed out" in results["imagine"]["error"]
    done = [j for j in sim.http.get("/_simulator/jobs").json() if j["user_id"] == user]
    assert [(j["action"], j["state"]) for j in done] == [("IMAGINE", "done")]  # the bot did finish it
    result = sim.http.get(f"{sim.info['rest_base']}/channels/{sim.accounts[1]['channel_id']}/messages/{done[0]['result_message_id']}",
                          headers={"Authorization": sim.accounts[1]["token"]}).json()
    assert "(Open on website for full quality)" in result["content"]


def test_pypi_client_with_a_newer_describe_version(standalone: StandaloneSimulator, pyclient: Path, tmp_path: Path) -> None:
    """The client hard-codes Midjourney's command versions (May 2024). When Midjourney publishes a
    new version (a 2026 client configuration names a newer one for /describe), Discord refuses the
    old one with 50035 and the client reports the job failed; /imagine keeps working."""
    sim = standalone
    user = sim.accounts[2]["user_id"]
    assert sim.control("settings", {"user_id": user, "website_link": "never"}) == 1
    sim.control("faults/bump-command-versions", {"name": "describe"})
    results = run_steps(sim, pyclient, ["connect", "imagine", "describe"], tmp_path, account=2, step_timeout=20)
    _ok(results, "imagine")
    assert not results["describe"]["ok"] and "INTERACTION_APPLICATION_COMMAND_INVALID_VERSION" in results["describe"]["error"]
    outcomes = [(i["name"], i["outcome"]) for i in sim.interactions() if i["user_id"] == user]
    assert outcomes == [("imagine", "accepted"), ("describe", "invalid_version")]
