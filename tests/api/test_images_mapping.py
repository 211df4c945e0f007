"""The rest of the Images contract: quality/style/mode mapping, Midjourney failures, timeouts, a
full pool, and refusing to listen publicly without keys."""

from __future__ import annotations

import json
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import openai
import pytest

sys.path.insert(0, str(Path(__file__).parent))
from server_process import ADMIN, ADMIN_KEY, KEY_A, ServerProcess, SimulatorProcess  # noqa: E402

AUTH = {"Authorization": f"Bearer {KEY_A}"}


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerProcess]:
    s = ServerProcess(tmp_path_factory.mktemp("mapping"), env={"MJ_ADAPTER_STREAM_KEEPALIVE_SECONDS": "0.1"}).start()
    yield s
    s.stop()


@pytest.fixture
def client(server: ServerProcess) -> openai.OpenAI:
    return openai.OpenAI(base_url=server.v1, api_key=KEY_A, max_retries=0, timeout=60)


def job(server: ServerProcess, job_id: str) -> dict:
    r = httpx.get(f"{server.v1}/jobs/{job_id}", headers=AUTH)
    assert r.status_code == 200, r.text
    return r.json()


def test_quality_hd_returns_midjourney_upscales(server: ServerProcess, client: openai.OpenAI) -> None:
    result = client.images.generate(prompt="a detailed clock tower", n=2, quality="hd")
    assert len(result.data) == 2
    jobs = [job(server, d.model_extra["job_id"]) for d in result.data]  # type: ignore[index]
    assert [j["action"] for j in jobs] == ["UPSCALE_SUBTLE", "UPSCALE_SUBTLE"]
    parents = [job(server, j["parent_id"]) for j in jobs]
    assert [p["action"] for p in parents] == ["UPSCALE", "UPSCALE"] and sorted(p["index"] for p in parents) == [1, 2]
    grid = job(server, parents[0]["parent_id"])
    assert grid["action"] == "IMAGINE"
    with httpx.Client() as http:
        hd = http.get(result.data[0].url or "").content
        tile = http.get(grid["image_urls"][0]).content
    from io import BytesIO

    from PIL import Image

    assert Image.open(BytesIO(hd)).width > Image.open(BytesIO(tile)).width


def test_style_natural_and_prompt_flags(server: ServerProcess, client: openai.OpenAI) -> None:
    natural = client.images.generate(prompt="a quiet street", style="natural", size="1024x1024")
    assert "--style raw" in (natural.data[0].revised_prompt or "") and "--ar 1:1" in (natural.data[0].revised_prompt or "")
    own_ar = client.images.generate(prompt="a tall tower --ar 9:16 --relax", size="1792x1024")
    revised = own_ar.data[0].revised_prompt or ""
    assert "--ar 9:16" in revised and "7:4" not in revised
    assert job(server, (own_ar.model_extra or {})["job_ids"][0])["mode"] == "relax"
    niji = client.images.generate(model="niji-turbo", prompt="an anime fox")
    assert job(server, (niji.model_extra or {})["job_ids"][0])["mode"] == "turbo"


def test_metrics_expose_jobs_queue_accounts_and_durations(server: ServerProcess, client: openai.OpenAI) -> None:
    client.images.generate(prompt="count me")
    text = httpx.get(server.base + "/metrics", headers=ADMIN).text
    for needle in ("mj_jobs_finished_total{status=\"SUCCESS\"", "mj_queue_depth ", "mj_account_up{account=\"demo-1\"", "mj_job_duration_seconds_count{action=\"IMAGINE\"}"):
        assert needle in text, needle


def test_midjourney_failure_is_500_without_retry(server: ServerProcess) -> None:
    sim_url = httpx.get(server.base + "/readyz", headers=ADMIN).json()["simulator_url"]
    for _ in range(2):  # either demo account may take the job
        httpx.post(sim_url + "/_simulator/faults/fail-next-job", json={"title": "Sorry! Could not complete the job!"}).raise_for_status()
    retrying = openai.OpenAI(base_url=server.v1, api_key=KEY_A, max_retries=2)
    with pytest.raises(openai.InternalServerError) as err:
        retrying.images.generate(prompt="this one breaks")
    assert err.value.response.headers.get("x-should-retry") == "false"
    assert err.value.code == "midjourney_error" and "Could not complete" in err.value.message
    httpx.post(sim_url + "/_simulator/faults/reset")


@pytest.fixture
def tight(tmp_path: Path) -> Iterator[tuple[ServerProcess, SimulatorProcess]]:
    """One account that runs one job and queues none, with a short fast-mode timeout."""
    sim = SimulatorProcess(tmp_path, speed=200)
    env = {
        "MJ_ADAPTER_ACCOUNTS": json.dumps([sim.account_config(concurrency=1, queue_size=0)]),
        "MJ_ADAPTER_FETCH_ALLOW_HOSTS": "127.0.0.1",
        "MJ_ADAPTER_TIMEOUT_FAST": "1.5",
    }
    server = ServerProcess(tmp_path / "data", env=env).start()
    yield server, sim
    server.stop()
    sim.stop()


def test_full_pool_is_429_and_a_stuck_job_is_504(tight: tuple[ServerProcess, SimulatorProcess]) -> None:
    server, sim = tight
    client = openai.OpenAI(base_url=server.v1, api_key=KEY_A, max_retries=0, timeout=30)
    sim.fault("stall-next-job")
    outcome: dict[str, object] = {}

    def stuck() -> None:
        try:
            client.images.generate(prompt="never finishes")
        except openai.APIStatusError as exc:
            outcome["status"], outcome["code"] = exc.status_code, exc.code

    t = threading.Thread(target=stuck)
    t.start()
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        if any(a["running"] for a in httpx.get(server.v1 + "/accounts", headers=ADMIN).json()):
            break
        time.sleep(0.02)
    with pytest.raises(openai.RateLimitError) as err:
        client.images.generate(prompt="no room")
    assert err.value.code == "queue_full" and int(err.value.response.headers["retry-after"]) > 0
    t.join(timeout=20)
    assert outcome == {"status": 504, "code": "timeout"}


def test_public_bind_without_keys_is_refused(tmp_path: Path) -> None:
    env = {k: v for k, v in __import__("os").environ.items() if not k.startswith("MJ_ADAPTER_")}
    env["MJ_ADAPTER_DATA_DIR"] = str(tmp_path)
    proc = subprocess.run(
        [sys.executable, "-m", "adapter", "serve", "--host", "0.0.0.0", "--port", "0"], env=env, capture_output=True, text=True, timeout=30
    )
    assert proc.returncode == 2
    assert "without API keys" in proc.stderr and "MJ_ADAPTER_API_KEYS" in proc.stderr


def test_cli_imagine_and_accounts(server: ServerProcess, tmp_path: Path) -> None:
    env = {k: v for k, v in __import__("os").environ.items() if not k.startswith("MJ_ADAPTER_")}
    out_dir = tmp_path / "imgs"
    proc = subprocess.run(
        [sys.executable, "-m", "adapter", "imagine", "a red fox in snow", "--n", "2", "--size", "1536x1024", "--out", str(out_dir), "--base-url", server.v1, "--api-key", KEY_A],
        env=env, capture_output=True, text=True, timeout=60,
    )
    assert proc.returncode == 0, proc.stderr
    saved = sorted(out_dir.iterdir())
    assert len(saved) == 2 and [str(p) for p in saved] == sorted(proc.stdout.split())
    from PIL import Image

    assert all(abs(Image.open(p).width / Image.open(p).height - 1.5) < 0.05 for p in saved)
    assert "100%" in proc.stderr
    # the admin key wins over the client key: an operator's shell may hold both
    accts = subprocess.run([sys.executable, "-m", "adapter", "accounts", "--base-url", server.v1, "--api-key", KEY_A, "--admin-key", ADMIN_KEY], env=env, capture_output=True, text=True, timeout=30)
    assert accts.returncode == 0 and "demo-1" in accts.stdout and "ready" in accts.stdout
    from_env = subprocess.run([sys.executable, "-m", "adapter", "accounts", "--base-url", server.v1], env={**env, "MJ_ADAPTER_ADMIN_KEY": ADMIN_KEY}, capture_output=True, text=True, timeout=30)
    assert from_env.returncode == 0 and "demo-1" in from_env.stdout
    customer = subprocess.run([sys.executable, "-m", "adapter", "accounts", "--base-url", server.v1, "--api-key", KEY_A], env=env, capture_output=True, text=True, timeout=30)
    assert customer.returncode == 1 and "403" in customer.stderr and "admin_key_required" in customer.stderr
    denied = subprocess.run([sys.executable, "-m", "adapter", "accounts", "--base-url", server.v1, "--api-key", "sk-nope"], env=env, capture_output=True, text=True, timeout=30)
    assert denied.returncode == 1 and "401" in denied.stderr


def test_streams_carry_keepalive_comments(server: ServerProcess) -> None:
    with httpx.stream(
        "POST", server.v1 + "/images/generations", json={"model": "midjourney-relax", "prompt": "a slow one", "stream": True}, headers=AUTH, timeout=30
    ) as r:
        lines = list(r.iter_lines())
    assert any(line.startswith(":") for line in lines), lines[:5]
    assert lines[-1] == "data: [DONE]" or "data: [DONE]" in lines


def test_operators_pause_and_resume_accounts(tmp_path: Path) -> None:
    admin = "sk-admin-operator-000111"
    server = ServerProcess(tmp_path, env={"MJ_ADAPTER_ADMIN_KEYS": admin}).start()
    try:
        customer = {"Authorization": f"Bearer {KEY_A}"}
        operator = {"Authorization": f"Bearer {admin}"}
        assert httpx.get(server.v1 + "/accounts", headers=customer).status_code == 403
        r = httpx.post(server.v1 + "/accounts/demo-1/pause", json={"reason": "maintenance"}, headers=operator)
        assert r.status_code == 200
        states = {a["id"]: a for a in r.json()}
        assert states["demo-1"]["state"] == "paused" and states["demo-1"]["reason"] == "maintenance"
        # work still flows through the other account
        client = openai.OpenAI(base_url=server.v1, api_key=KEY_A, max_retries=0)
        assert client.images.generate(prompt="while one rests").data[0].url
        env = {k: v for k, v in __import__("os").environ.items() if not k.startswith("MJ_ADAPTER_")}
        cli = subprocess.run(
            [sys.executable, "-m", "adapter", "accounts", "resume", "demo-1", "--base-url", server.v1, "--api-key", admin],
            env=env, capture_output=True, text=True, timeout=30,
        )
        assert cli.returncode == 0, cli.stderr
        line = next(row for row in cli.stdout.splitlines() if row.startswith("demo-1"))
        assert "ready" in line
        assert httpx.post(server.v1 + "/accounts/nope/resume", headers=operator).status_code == 404
    finally:
        server.stop()


def test_server_on_the_redis_store(tmp_path: Path, redis_url: str, redis_prefix: str) -> None:
    env = {"MJ_ADAPTER_STORE_URL": f"{redis_url}?prefix={redis_prefix}"}
    server = ServerProcess(tmp_path, env=env).start()
    try:
        client = openai.OpenAI(base_url=server.v1, api_key=KEY_A, max_retries=0)
        result = client.images.generate(prompt="kept in redis", n=2, extra_headers={"Idempotency-Key": "redis-1"})
        job_id = (result.model_extra or {})["job_ids"][0]
    finally:
        server.stop()
    server = ServerProcess(tmp_path, env=env).start()
    try:
        assert job(server, job_id)["status"] == "SUCCESS"
        again = openai.OpenAI(base_url=server.v1, api_key=KEY_A, max_retries=0).images.generate(
            prompt="kept in redis", n=2, extra_headers={"Idempotency-Key": "redis-1"}
        )
        assert (again.model_extra or {})["job_ids"] == [job_id]
    finally:
        server.stop()
