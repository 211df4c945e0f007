"""A daily cap, seen as a user sees it: the real server, the OpenAI SDK and /mj, against a
standalone simulator. Past the cap the answer comes at once, says why, and says when."""

from __future__ import annotations

import datetime as dt
import json
import sys
from collections.abc import Iterator
from pathlib import Path

import httpx
import openai
import pytest

sys.path.insert(0, str(Path(__file__).parent))
from server_process import ADMIN, KEY_A, ServerProcess, SimulatorProcess  # noqa: E402

pytestmark = pytest.mark.slow
AUTH = {"Authorization": f"Bearer {KEY_A}"}


@pytest.fixture
def capped(tmp_path: Path) -> Iterator[tuple[ServerProcess, SimulatorProcess]]:
    sim = SimulatorProcess(tmp_path, speed=100, accounts=1)
    env = {
        "MJ_ADAPTER_ACCOUNTS": json.dumps([sim.account_config(0, id="capped", daily_cap=2)]),
        "MJ_ADAPTER_FETCH_ALLOW_HOSTS": "127.0.0.1",
    }
    server = ServerProcess(tmp_path / "adapter", env=env).start()
    try:
        yield server, sim
    finally:
        server.stop()
        sim.stop()


def test_past_the_daily_cap_every_door_says_why_and_when(capped: tuple[ServerProcess, SimulatorProcess]) -> None:
    server, sim = capped
    client = openai.OpenAI(base_url=server.v1, api_key=KEY_A, max_retries=0, timeout=60)
    for i in range(2):
        assert client.images.generate(model="midjourney", prompt=f"within the cap {i}", n=1).data[0].url

    now = dt.datetime.now(dt.timezone.utc)
    to_midnight = (dt.datetime.combine(now.date() + dt.timedelta(days=1), dt.time(), dt.timezone.utc) - now).total_seconds()
    with pytest.raises(openai.RateLimitError) as err:
        client.images.generate(model="midjourney", prompt="over the cap", n=1)
    body = err.value.response.json()["error"]
    assert body["code"] == "daily_cap_reached" and "00:00 UTC" in body["message"] and "capped" in body["message"]
    assert abs(int(err.value.response.headers["retry-after"]) - to_midnight) < 60

    r = httpx.post(server.base + "/mj/submit/imagine", json={"prompt": "over the cap via mj"}, headers=AUTH, timeout=30)
    answer = r.json()
    assert answer["code"] == 23 and answer["properties"]["limit"] == "daily_cap_reached"
    assert abs(answer["properties"]["retryAfter"] - to_midnight) < 60

    accounts = httpx.get(server.v1 + "/accounts", headers=ADMIN, timeout=10).json()
    assert accounts[0]["state"] == "cooling_down" and accounts[0]["available_at"].endswith("T00:00:00Z")
    # nothing past the cap reached Midjourney
    assert len([i for i in sim.interactions() if i["name"] == "imagine"]) == 2
