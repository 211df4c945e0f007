"""A real third-party client against the standalone simulator: the npm `midjourney` package
(erictik/midjourney-api), pinned, installed on first use into tests/.cache/node.

`mj-adapter simulator` runs as its own process on loopback; `npm_client/steps.cjs` drives the
client through every operation it has (imagine with progress, U/V/reroll, vary subtle/strong,
zoom out, pan, upscale subtle/creative, custom zoom, remix, describe, shorten, info, settings,
fast/relax, /prefer remix, reset, Niji, and its REST-polling mode, which reads /api/v10) and
prints what each call returned; the tests assert on those answers.

Skips when node/npm are missing, fails instead when CI=true. Network: loopback, plus the npm
registry for the one-time install.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

NPM_PACKAGE = "midjourney"
NPM_VERSION = "4.3.18"
ROOT = Path(__file__).resolve().parents[2]
CACHE = ROOT / "tests" / ".cache" / "node"
MODULES = CACHE / "node_modules"
SCRIPT = Path(__file__).with_name("npm_client") / "steps.cjs"
INSTALL_TIMEOUT = 300
SPEED = 20  # a fast job takes 1.5-3 s; the client's own pacing (350 ms per interaction) is real time
MJ_APP = "936929561302675456"
NIJI_APP = "1022952195194359889"
PROMPT = "a red fox in the snow"
UUID = re.compile(r"^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$")

# The steps in the order the script runs them (it runs only those asked for).
WS_STEPS = [
    "connect", "imagine", "upscale_u1", "variation_v1", "reroll", "vary_subtle", "vary_strong", "zoom_out_2x",
    "zoom_out_1_5x", "pan_left", "upscale_subtle", "upscale_creative", "custom_zoom", "describe", "shorten", "info",
    "settings", "relax", "fast", "prefer_remix_on", "remix_variation", "prefer_remix_off", "reset",
]


def _unavailable(reason: str) -> None:
    if os.environ.get("CI", "").lower() == "true":
        pytest.fail(f"{reason} (CI=true: the third-party client test must not be skipped)")
    pytest.skip(reason)


def _installed_version() -> str | None:
    try:
        return json.loads((MODULES / NPM_PACKAGE / "package.json").read_text())["version"]
    except (OSError, ValueError, KeyError):
        return None


@pytest.fixture(scope="module")
def npm_client() -> Path:
    """The pinned package under tests/.cache/node (installed on first use)."""
    node, npm = shutil.which("node"), shutil.which("npm")
    if node is None or npm is None:
        _unavailable("node and npm are needed to run the npm `midjourney` client")
    if _installed_version() != NPM_VERSION:
        CACHE.mkdir(parents=True, exist_ok=True)
        try:
            done = subprocess.run(
                [npm, "install", "--prefix", str(CACHE), "--no-audit", "--no-fund", "--no-save", f"{NPM_PACKAGE}@{NPM_VERSION}"],
                capture_output=True, text=True, timeout=INSTALL_TIMEOUT,
            )
        except subprocess.TimeoutExpired:
            _unavailable(f"npm install {NPM_PACKAGE}@{NPM_VERSION} took over {INSTALL_TIMEOUT} s")
        if done.returncode != 0 or _installed_version() != NPM_VERSION:
            _unavailable(f"npm install {NPM_PACKAGE}@{NPM_VERSION} failed: {done.stderr[-2000:]}")
    return MODULES


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class StandaloneSimulator:
    """`mj-adapter simulator` in its own process."""

    def __init__(self, tmp: Path) -> None:
        self.port = _free_port()
        self.base = f"http://127.0.0.1:{self.port}"
        script = Path(sys.executable).with_name("mj-adapter")
        command = [str(script)] if script.exists() else [sys.executable, "-m", "adapter"]
        self.log_path = tmp / "simulator.log"
        self._log = open(self.log_path, "wb")  # noqa: SIM115 - closed in stop()
        self.proc = subprocess.Popen(
            [*command, "simulator", "--host", "127.0.0.1", "--port", str(self.port), "--speed", str(SPEED), "--accounts", "3"],
            stdout=self._log, stderr=subprocess.STDOUT, cwd=ROOT,
            # this file checks both behaviours itself: a suite-wide MJ_SIMULATOR_BEHAVIOUR stays out
            env={k: v for k, v in os.environ.items() if not k.startswith(("MJ_ADAPTER_", "MJ_SIMULATOR_"))},
        )
        self.http = httpx.Client(base_url=self.base, timeout=5)
        deadline = time.monotonic() + 30
        while True:
            if self.proc.poll() is not None:
                raise RuntimeError(f"the simulator exited ({self.proc.returncode}): {self.log_path.read_text()[-2000:]}")
            try:
                r = self.http.get("/_simulator/accounts", timeout=1)
                if r.status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            if time.monotonic() > deadline:
                raise RuntimeError("the simulator did not answer within 30 s")
            time.sleep(0.1)
        self.accounts: list[dict[str, Any]] = r.json()
        self.info: dict[str, Any] = self.http.get("/_simulator/info").json()

    def control(self, path: str, body: dict[str, Any]) -> Any:
        r = self.http.post(f"/_simulator/{path}", json=body)
        assert r.status_code == 200, r.text
        return r.json()["result"]

    def interactions(self) -> list[dict[str, Any]]:
        return self.http.get("/_simulator/interactions").json()

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(timeout=10)
        self.http.close()
        self._log.close()


@pytest.fixture(scope="module")
def standalone(tmp_path_factory: pytest.TempPathFactory, npm_client: Path) -> Iterator[StandaloneSimulator]:
    sim = StandaloneSimulator(tmp_path_factory.mktemp("npm-sim"))
    try:
        # The client caches commands by name from the guild's index, whichever bot they belong
        # to: each client gets a guild with its own bot only, as a private Midjourney server has.
        sim.control("guild-apps", {"user_id": sim.accounts[0]["user_id"], "apps": [MJ_APP]})
        sim.control("guild-apps", {"user_id": sim.accounts[1]["user_id"], "apps": [NIJI_APP]})
        sim.control("guild-apps", {"user_id": sim.accounts[2]["user_id"], "apps": [MJ_APP]})
        yield sim
    finally:
        sim.stop()


def run_steps(sim: StandaloneSimulator, modules: Path, steps: list[str], *, account: int = 0, step_timeout: float = 30,
              live_session: bool = True, **extra: Any) -> dict[str, dict[str, Any]]:
    config = {
        "base": sim.info["base_url"], "gateway": sim.info["gateway_url"], "account": sim.accounts[account],
        "nijiAccount": sim.accounts[1], "steps": steps, "stepTimeoutMs": int(step_timeout * 1000), "prompt": PROMPT,
        "liveSession": live_session, **extra,
    }
    return client_steps(
        ["node", str(SCRIPT), json.dumps(config)], who="the npm client", cwd=ROOT,
        timeout=step_timeout * (len(steps) + 2) + 30, env={**os.environ, "NODE_PATH": str(modules)},
    )


def client_steps(argv: list[str], *, who: str, cwd: Path, timeout: float, env: dict[str, str]) -> dict[str, dict[str, Any]]:
    """Run a third-party client's driver script; it prints one `@@step {json}` line per step."""
    try:
        done = subprocess.run(argv, capture_output=True, text=True, cwd=cwd, timeout=timeout, env=env)
    except subprocess.TimeoutExpired as exc:
        raise AssertionError(f"{who} did not finish: {exc.stdout!r} {exc.stderr!r}") from None
    results = {}
    for line in done.stdout.splitlines():
        if line.startswith("@@step "):
            entry = json.loads(line[len("@@step "):])
            results[entry["step"]] = entry
    assert "main" not in results, results["main"]
    return results


def _ok(results: dict[str, dict[str, Any]], step: str) -> Any:
    entry = results.get(step)
    assert entry is not None, f"{step} did not run"
    assert entry["ok"], f"{step}: {entry.get('error') or entry.get('skipped')}"
    return entry["result"]


def _grid_like(msg: dict[str, Any], sim: StandaloneSimulator, channel_id: str) -> None:
    """What the client made of a finished job: a hash from the file name, a CDN URL that serves."""
    assert msg["progress"] == "done"
    assert UUID.match(msg["hash"]), msg["hash"]
    assert msg["uri"].startswith(f"{sim.base}/attachments/{channel_id}/") and msg["hash"] in msg["uri"]
    assert msg["width"] and msg["height"]
    r = sim.http.get(msg["uri"])
    assert r.status_code == 200 and r.headers["content-type"].startswith("image/")


def _progress_seen(msg: dict[str, Any]) -> None:
    """The loading callback got previews with a percentage, as the job ran."""
    percents = [p for p in msg["loading"] if re.fullmatch(r"\d{1,3}%", p["progress"])]
    assert percents, msg["loading"]
    assert all(p["uri"].startswith("http") for p in percents)


def test_npm_client_over_the_gateway(standalone: StandaloneSimulator, npm_client: Path) -> None:
    sim = standalone
    channel = sim.accounts[0]["channel_id"]
    results = run_steps(sim, npm_client, WS_STEPS)

    connect = _ok(results, "connect")
    assert re.fullmatch(r"[0-9a-f]{32}", connect["sessionId"])  # the live one, read off READY

    imagine = _ok(results, "imagine")
    _grid_like(imagine, sim, channel)
    _progress_seen(imagine)
    assert imagine["content"].startswith(f"**{PROMPT}** - <@{sim.accounts[0]['user_id']}>") and imagine["content"].endswith("(fast)")
    assert {"U1", "U2", "U3", "U4", "V1", "V2", "V3", "V4", "🔄"} <= set(imagine["labels"])

    u1 = _ok(results, "upscale_u1")
    _grid_like(u1, sim, channel)
    assert f"**{PROMPT}** - Image #1 <@" in u1["content"] and u1["hash"] != imagine["hash"]
    assert {"Upscale (Subtle)", "Upscale (Creative)", "Vary (Subtle)", "Vary (Strong)", "Zoom Out 2x", "Custom Zoom"} <= set(u1["labels"])
    assert (u1["width"], u1["height"]) == (imagine["width"] // 2, imagine["height"] // 2)

    followups = {
        "variation_v1": "Variations (Strong) by",
        "reroll": f"**{PROMPT}** - <@",
        "vary_subtle": "Variations (Subtle) by",
        "vary_strong": "Variations (Strong) by",
        "zoom_out_2x": "Zoom Out by",
        "zoom_out_1_5x": "Zoom Out by",
        "pan_left": "Pan Left by",
        "upscale_subtle": "Upscaled (Subtle) by",
        "upscale_creative": "Upscaled (Creative) by",
    }
    hashes = {imagine["hash"], u1["hash"]}
    for step, text in followups.items():
        msg = _ok(results, step)
        _grid_like(msg, sim, channel)
        _progress_seen(msg)
        assert text in msg["content"] and f"**{PROMPT}**" in msg["content"], (step, msg["content"])
        assert msg["hash"] not in hashes, step
        hashes.add(msg["hash"])
    pan = _ok(results, "pan_left")
    assert pan["width"] > pan["height"]  # a square widened to the left
    assert _ok(results, "upscale_subtle")["width"] == 2 * u1["width"]

    # custom zoom: a modal the client submits on INTERACTION_SUCCESS of the button press
    zoom = _ok(results, "custom_zoom")
    _grid_like(zoom, sim, channel)
    assert f"**{PROMPT} --zoom 1.8** - Zoom Out by" in zoom["content"]

    describe = _ok(results, "describe")
    assert len(describe["descriptions"]) == 4
    assert all(re.match(r"^[1-4]\ufe0f\u20e3 ", d) for d in describe["descriptions"])
    assert describe["uri"].startswith(sim.base)
    assert {"1", "2", "3", "4"} <= set(describe["labels"])

    shorten = _ok(results, "shorten")
    assert len(shorten["prompts"]) == 5 and all(re.match(r"^[1-5]\ufe0f\u20e3 ", p) for p in shorten["prompts"])

    info = _ok(results, "info")
    assert info["jobMode"] == "Fast" and re.search(r"<t:\d+>", info["subscription"])
    assert re.match(r"^[\d.]+/15\.0 hours", info["fastTimeRemaining"]) and info["queuedJobsFast"] == "0"

    settings = _ok(results, "settings")
    labels = {o["label"] for o in settings["options"]}
    assert {"Remix mode", "Reset Settings"} <= labels and settings["flags"] & 64

    assert _ok(results, "relax")["info"]["jobMode"] == "Relaxed"
    assert _ok(results, "fast")["info"]["jobMode"] == "Fast"

    assert _ok(results, "prefer_remix_on")["content"].startswith("Remix mode turned on")
    remix = _ok(results, "remix_variation")
    _grid_like(remix, sim, channel)
    assert f"**{PROMPT} in watercolor** - Remix (Strong) by" in remix["content"]
    assert _ok(results, "prefer_remix_off")["content"].startswith("Remix mode turned off")
    assert _ok(results, "reset") == {"reset": True}

    # every interaction the client sent was taken (none refused, none retried)
    mine = [i for i in sim.interactions() if i["user_id"] == sim.accounts[0]["user_id"]]
    assert mine and {i["outcome"] for i in mine} == {"accepted"} and {i["status"] for i in mine} == {204}


def test_npm_client_niji_on_gateway_v10(standalone: StandaloneSimulator, npm_client: Path) -> None:
    results = run_steps(standalone, npm_client, ["niji_connect", "niji_imagine"])
    msg = _ok(results, "niji_imagine")
    _grid_like(msg, standalone, standalone.accounts[1]["channel_id"])
    _progress_seen(msg)
    assert msg["content"].startswith(f"**{PROMPT} --niji 6** - <@{standalone.accounts[1]['user_id']}>")
    niji = [i for i in standalone.interactions() if i["user_id"] == standalone.accounts[1]["user_id"]]
    assert [i["name"] for i in niji] == ["imagine"] and niji[0]["outcome"] == "accepted"


def test_npm_client_rest_polling_reads_v10(standalone: StandaloneSimulator, npm_client: Path) -> None:
    """Ws: false — no gateway at all: the client finds its job in GET /api/v10/channels/{id}/messages
    by the `[seed]` it put in front of the prompt."""
    results = run_steps(standalone, npm_client, ["rest_imagine", "rest_upscale_u2"], account=2, restAccount=standalone.accounts[2])
    channel = standalone.accounts[2]["channel_id"]
    grid = _ok(results, "rest_imagine")
    _grid_like(grid, standalone, channel)
    assert re.fullmatch(rf"\[\d{{10}}\] {PROMPT} polled", grid["content"])  # the client keeps the text between the **
    assert {"U1", "V1", "🔄"} <= set(grid["labels"])
    u2 = _ok(results, "rest_upscale_u2")
    _grid_like(u2, standalone, channel)
    assert u2["hash"] != grid["hash"] and u2["content"] == grid["content"]
    sent = [i for i in standalone.interactions() if i["user_id"] == standalone.accounts[2]["user_id"]]
    assert [(i["type"], i["outcome"]) for i in sent] == [(2, "accepted"), (3, "accepted")]
    assert sent[1]["name"] == f"MJ::JOB::upsample::2::{grid['hash']}"


def test_npm_client_with_its_constant_session_id(standalone: StandaloneSimulator, npm_client: Path) -> None:
    """The client's default SessionId is a constant. Discord takes the interactions, but sends
    their INTERACTION_* events only to the session named, so the client never hears the
    INTERACTION_SUCCESS it waits for before submitting the custom-zoom modal (it hangs). With the
    simulator's other behaviour (`interaction_events_fallback`) the events reach its socket."""
    sim = standalone
    user = sim.accounts[0]["user_id"]
    steps = ["connect", "imagine", "upscale_u1", "custom_zoom"]
    results = run_steps(sim, npm_client, steps, step_timeout=6, live_session=False)
    assert _ok(results, "connect")["sessionId"] == "8bb7f5b79c7a49f7d0824ab4b8773a81"
    _ok(results, "imagine")  # messages are the source of truth: plain jobs work
    _ok(results, "upscale_u1")
    assert not results["custom_zoom"]["ok"] and "timed out" in results["custom_zoom"]["error"]
    pressed = [i for i in sim.interactions() if i["user_id"] == user and i["name"].startswith("MJ::CustomZoom::")]
    assert pressed and pressed[-1]["outcome"] == "accepted"  # the button press went through; no modal submit followed

    assert sim.control("behaviour", {"user_id": user, "interaction_events_fallback": True}) == 1
    try:
        results = run_steps(sim, npm_client, steps, live_session=False)
        zoom = _ok(results, "custom_zoom")
        assert f"**{PROMPT} --zoom 1.8** - Zoom Out by" in zoom["content"]
    finally:
        sim.control("behaviour", {"user_id": user, "interaction_events_fallback": False})
