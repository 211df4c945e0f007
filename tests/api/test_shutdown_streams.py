"""SIGTERM while clients stream: every open stream ends with a last event that says what
happened (the job goes on), the process exits promptly and cleanly, and after a restart the
jobs finish without being sent twice. Real processes on loopback: a standalone simulator that
outlives the adapter, and `mj-adapter serve`."""

from __future__ import annotations

import json
import re
import signal
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

sys.path.insert(0, str(Path(__file__).parent))
from server_process import KEY_A, ServerProcess, SimulatorProcess  # noqa: E402

pytestmark = pytest.mark.slow

AUTH = {"Authorization": f"Bearer {KEY_A}"}


@pytest.fixture
def sim(tmp_path: Path) -> Iterator[SimulatorProcess]:
    s = SimulatorProcess(tmp_path, speed=6, accounts=1)  # a fast job takes ~5-10 s
    yield s
    s.stop()


def adapter(tmp_path: Path, sim: SimulatorProcess) -> ServerProcess:
    # the standalone simulator's CDN is on loopback: allow it as an account source
    env = {"MJ_ADAPTER_ACCOUNTS": json.dumps([sim.account_config(0, id="acct-1")]), "MJ_ADAPTER_FETCH_ALLOW_HOSTS": "127.0.0.1"}
    return ServerProcess(tmp_path / "adapter", env=env)


class Stream(threading.Thread):
    """Reads one SSE response to its end in the background."""

    def __init__(self, url: str, body: dict[str, Any]) -> None:
        super().__init__(daemon=True)
        self.url, self.body = url, body
        self.lines: list[str] = []
        self.error: BaseException | None = None

    def run(self) -> None:
        try:
            with httpx.stream("POST", self.url, json=self.body, headers=AUTH, timeout=30) as r:
                for line in r.iter_lines():
                    self.lines.append(line)
        except BaseException as exc:  # noqa: BLE001 - reported by the test
            self.error = exc

    def data(self) -> list[str]:
        return [line[6:] for line in self.lines if line.startswith("data: ")]


def wait_for(cond: Any, timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while not cond():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.05)


def test_sigterm_ends_streams_with_a_last_event_and_the_restart_finishes_the_jobs(tmp_path: Path, sim: SimulatorProcess) -> None:
    server = adapter(tmp_path, sim).start()
    try:
        chat = Stream(server.v1 + "/chat/completions", {"model": "midjourney", "stream": True, "messages": [{"role": "user", "content": "a chat lighthouse"}]})
        images = Stream(server.v1 + "/images/generations", {"model": "midjourney", "prompt": "an image lighthouse", "n": 1, "stream": True})
        chat.start()
        images.start()
        wait_for(lambda: "".join(chat.data()).count("j_") >= 1, 20, "the chat stream to name its job")
        wait_for(lambda: len([i for i in sim.interactions() if i["name"] == "imagine"]) == 2, 20, "both jobs at the simulator")

        assert server.proc is not None
        server.proc.send_signal(signal.SIGTERM)
        started = time.monotonic()
        server.proc.wait(timeout=20)
        took = time.monotonic() - started
        chat.join(10)
        images.join(10)
        assert not chat.is_alive() and not images.is_alive()
        assert took < 10, f"shutdown took {took:.1f}s"
        log = server.log()
        assert "never retrieved" not in log and "Traceback" not in log, log

        # the image stream's last events: an error saying the job goes on, then [DONE]
        img = images.data()
        assert img[-1] == "[DONE]", images.lines[-5:]
        last = json.loads(img[-2])
        assert last["error"]["code"] == "service_shutting_down", last
        job_ids = re.findall(r"j_[a-z0-9]+", last["error"]["message"])
        assert job_ids

        # the chat stream's last content says the same, and it ends properly
        chunks = [json.loads(d) for d in chat.data() if d != "[DONE]"]
        text = "".join((c["choices"][0]["delta"].get("content") or "") for c in chunks if c["choices"])
        assert chat.data()[-1] == "[DONE]"
        assert "shutting down" in text, text
        chat_job = re.findall(r"j_[a-z0-9]+", text)[0]
        assert chunks[-1]["choices"][0]["finish_reason"] == "stop"

        # after a restart both jobs finish, each sent exactly once
        restarted = adapter(tmp_path, sim).start()
        try:
            for job_id in (chat_job, job_ids[0]):
                wait_for(
                    lambda: httpx.get(f"{restarted.v1}/jobs/{job_id}", headers=AUTH).json().get("status") in ("SUCCESS", "FAILURE", "CANCEL"),
                    40,
                    f"job {job_id} to finish after the restart",
                )
                view = httpx.get(f"{restarted.v1}/jobs/{job_id}", headers=AUTH).json()
                assert view["status"] == "SUCCESS", (view, restarted.log())
            imagines = [i for i in sim.interactions() if i["name"] == "imagine"]
            assert len(imagines) == 2, imagines
        finally:
            restarted.stop()
    finally:
        server.stop()
