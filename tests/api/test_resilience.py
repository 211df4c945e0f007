"""Crash recovery and account failover, end to end with real processes."""

from __future__ import annotations

import json
import sys
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import httpx
import openai
import pytest

sys.path.insert(0, str(Path(__file__).parent))
from server_process import ADMIN, KEY_A, KEY_B, ServerProcess, SimulatorProcess  # noqa: E402

AUTH = {"Authorization": f"Bearer {KEY_A}"}


@pytest.fixture
def simulator(tmp_path: Path) -> Iterator[SimulatorProcess]:
    sim = SimulatorProcess(tmp_path, speed=25)
    yield sim
    sim.stop()


def wait_job(server: ServerProcess, job_id: str, timeout: float = 30) -> dict[str, Any]:
    deadline = time.monotonic() + timeout
    last: dict[str, Any] = {}
    while time.monotonic() < deadline:
        r = httpx.get(f"{server.v1}/jobs/{job_id}", headers=AUTH, timeout=5)
        if r.status_code == 200:
            last = r.json()
            if last["status"] in ("SUCCESS", "FAILURE", "CANCEL"):
                return last
        time.sleep(0.05)
    raise TimeoutError(f"job {job_id} still {last.get('status')}")


def test_sigkill_mid_job_then_restart_completes_without_a_second_submit(tmp_path: Path, simulator: SimulatorProcess) -> None:
    accounts = [simulator.account_config()]
    env = {"MJ_ADAPTER_ACCOUNTS": json.dumps(accounts), "MJ_ADAPTER_FETCH_ALLOW_HOSTS": "127.0.0.1"}
    data = tmp_path / "data"
    server = ServerProcess(data, env=env).start()
    job_id = None
    try:
        with httpx.stream(
            "POST", server.v1 + "/images/generations", json={"prompt": "survive a crash", "stream": True, "model": "midjourney-relax"}, headers=AUTH, timeout=30
        ) as r:
            assert r.status_code == 200
            for line in r.iter_lines():
                if line.startswith("data:") and "partial_image" in line:
                    job_id = json.loads(line[5:])["job_id"]
                    break
        assert job_id, "the job should be running (a preview arrived) before the crash"
        server.kill()
        assert wait_job_status_offline(data, job_id) in ("SUBMITTED", "IN_PROGRESS")
        server = ServerProcess(data, env=env).start()
        final = wait_job(server, job_id)
        assert final["status"] == "SUCCESS", final
        assert len(final["image_urls"]) == 4
        # the only job of this test: exactly one /imagine ever reached Midjourney
        imagines = [i for i in simulator.interactions() if i["type"] == 2 and i["name"] == "imagine"]
        assert len(imagines) == 1, imagines
    finally:
        server.stop()
    # neither the Discord token nor an API key may ever reach the logs
    log = server.log_path.read_text(errors="replace")
    assert "account" in log and simulator.accounts[0]["token"] not in log
    assert KEY_A not in log and KEY_B not in log


def wait_job_status_offline(data: Path, job_id: str) -> str:
    """Read the job's status straight from the SQLite file, as the crashed process left it."""
    import asyncio

    from adapter.stores.sqlite import SqliteJobStore

    async def read() -> str:
        store = SqliteJobStore(data / "jobs.db")
        await store.open()
        try:
            job = await store.get(job_id)
            assert job is not None
            return job.status.value
        finally:
            await store.close()

    return asyncio.run(read())


def test_paused_account_moves_its_queued_jobs(tmp_path: Path) -> None:
    server = ServerProcess(tmp_path, env={"MJ_ADAPTER_SIMULATOR_SPEED": "20", "MJ_ADAPTER_SIMULATOR_ACCOUNTS": "2"}).start()
    try:
        sim_url = httpx.get(server.base + "/readyz", headers=ADMIN).json()["simulator_url"]
        client = openai.OpenAI(base_url=server.v1, api_key=KEY_A, max_retries=0, timeout=60)

        def generate(i: int) -> str:
            try:
                client.images.generate(prompt=f"queued job {i}", n=1)
                return "ok"
            except openai.APIStatusError as exc:
                return f"{exc.status_code}:{(exc.body or {}).get('code') if isinstance(exc.body, dict) else ''}"

        with ThreadPoolExecutor(max_workers=12) as pool:
            futures = [pool.submit(generate, i) for i in range(12)]
            # wait until the first account has work queued behind its running jobs
            victim = None
            deadline = time.monotonic() + 20
            while time.monotonic() < deadline and victim is None:
                for acct in httpx.get(server.v1 + "/accounts", headers=ADMIN).json():
                    if acct["queued"] >= 2 and acct["running"] >= 1:
                        victim = acct
                        break
                time.sleep(0.01)
            assert victim is not None, "jobs never queued behind running ones"
            index = int(victim["id"].split("-")[-1]) - 1
            user_id = httpx.get(sim_url + "/_simulator/accounts").json()[index]["user_id"]
            httpx.post(sim_url + "/_simulator/faults/captcha-next-interaction", json={"user_id": user_id}).raise_for_status()
            outcomes = [f.result(timeout=60) for f in futures]

        states = {a["id"]: a for a in httpx.get(server.v1 + "/accounts", headers=ADMIN).json()}
        assert states[victim["id"]]["state"] == "paused" and "captcha" in (states[victim["id"]]["reason"] or "").lower()
        # only the job that met the captcha failed; the ones queued behind it moved and finished
        assert outcomes.count("ok") == 11, outcomes
    finally:
        server.stop()
