"""Webhooks end to end: a real server in demo mode, a loopback receiver that checks every
signature, goes down (errors, then refused connections) and comes back, and a SIGKILL + restart
of the adapter in between. Every event arrives, in order per task, signed."""

from __future__ import annotations

import json
import sqlite3
import sys
import time
from pathlib import Path
from typing import Any

import httpx

sys.path.insert(0, str(Path(__file__).parent))
from server_process import KEY_A, ServerProcess  # noqa: E402
from webhook_receiver import Attempt, Receiver  # noqa: E402

from adapter.stores.codec import decode_outbox  # noqa: E402

SECRET = "whsec_" + "c2VjcmV0LWZvci10aGUtd2ViaG9vay10ZXN0cw=="
H = {"mj-api-secret": KEY_A}
RANK = {"NOT_START": 0, "SUBMITTED": 1, "MODAL": 1, "IN_PROGRESS": 2, "SUCCESS": 3, "FAILURE": 3, "CANCEL": 3}


def pending_outbox(data_dir: Path) -> list[Any]:
    """The pending deliveries as the adapter left them in its SQLite file (read-only)."""
    conn = sqlite3.connect(f"file:{data_dir / 'jobs.db'}?mode=ro", uri=True)
    try:
        rows = conn.execute("SELECT data FROM outbox WHERE state = 'pending'").fetchall()
    finally:
        conn.close()
    return [decode_outbox(r[0]) for r in rows]


def imagine(server: ServerProcess, prompt: str, hook: str) -> str:
    r = httpx.post(f"{server.base}/mj/submit/imagine", json={"prompt": prompt, "notifyHook": hook, "state": prompt}, headers=H, timeout=30)
    assert r.status_code == 200 and r.json()["code"] == 1, r.text
    return str(r.json()["result"])


def wait_success(server: ServerProcess, task_id: str, timeout: float = 30) -> dict[str, Any]:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        task = httpx.get(f"{server.base}/mj/task/{task_id}/fetch", headers=H, timeout=10).json()
        if task["status"] == "SUCCESS":
            return task  # type: ignore[no-any-return]
        assert task["status"] not in ("FAILURE", "CANCEL"), task
        time.sleep(0.05)
    raise TimeoutError(task_id)


def accepted_states(receiver: Receiver, task_id: str, path: str) -> list[tuple[str, int]]:
    out = []
    for a in receiver.accepted(path):
        task = a.task
        if task["id"] == task_id:
            out.append((task["status"], int(task["progress"].rstrip("%"))))
    return out


def in_order(states: list[tuple[str, int]]) -> bool:
    return all((RANK[a[0]], a[1]) <= (RANK[b[0]], b[1]) for a, b in zip(states, states[1:]))


def test_every_event_arrives_signed_in_order_across_outages_and_a_restart(tmp_path: Path) -> None:
    receiver = Receiver(SECRET)
    data = tmp_path / "data"
    env = {
        "MJ_ADAPTER_WEBHOOK_SECRET": SECRET,
        "MJ_ADAPTER_WEBHOOK_URL": receiver.base + "/global",
        "MJ_ADAPTER_WEBHOOK_ALLOW_HOSTS": "127.0.0.1",
        "MJ_ADAPTER_WEBHOOK_BACKOFF_SECONDS": "0.05",
        "MJ_ADAPTER_WEBHOOK_BACKOFF_MAX_SECONDS": "0.3",
    }
    server = ServerProcess(data, env=env).start()
    hook = receiver.base + "/task"
    try:
        # 1. the receiver is up: the whole life of a task arrives on both URLs
        t1 = imagine(server, "first", hook)
        done1 = wait_success(server, t1)
        receiver.wait_for(lambda: ("SUCCESS", 100) in accepted_states(receiver, t1, "/task") and ("SUCCESS", 100) in accepted_states(receiver, t1, "/global"))
        seen1 = accepted_states(receiver, t1, "/task")
        assert {"NOT_START", "SUBMITTED", "IN_PROGRESS", "SUCCESS"} <= {s for s, _ in seen1}, seen1
        # the payload is the task exactly as fetch returns it
        last = [a for a in receiver.accepted("/task") if a.task["id"] == t1][-1]
        assert last.task == done1

        # 2. the receiver fails (503): a second task runs to its end, its events wait in the outbox
        receiver.status = 503
        t2 = imagine(server, "second", hook)
        wait_success(server, t2)
        deadline = time.monotonic() + 10
        while not any(i.job_id == t2 and json.loads(i.body)["status"] == "SUCCESS" for i in pending_outbox(data)):
            assert time.monotonic() < deadline, "the final event never reached the outbox"
            time.sleep(0.02)
        receiver.wait_for(lambda: any(a.answered == 503 and a.task["id"] == t2 for a in receiver.snapshot()))
        assert accepted_states(receiver, t2, "/task") == []

        # 3. the adapter dies hard; the receiver stops listening altogether
        server.kill()
        left = [i for i in pending_outbox(data) if i.job_id == t2]
        assert {i.url for i in left} == {hook, receiver.base + "/global"} and len(left) >= 6
        receiver.stop()

        # 4. the adapter comes back (and makes a third task) while the receiver is still away
        server = ServerProcess(data, env=env).start()
        t3 = imagine(server, "third", hook)
        wait_success(server, t3)
        time.sleep(0.3)  # a few refused attempts

        # 5. the receiver comes back on the same port: everything arrives
        receiver.status = 200
        receiver.start()
        for task_id in (t2, t3):
            for path in ("/task", "/global"):
                receiver.wait_for(lambda task_id=task_id, path=path: ("SUCCESS", 100) in accepted_states(receiver, task_id, path))
        # every message left in the outbox by the killed process was delivered
        delivered_ids = {a.id for a in receiver.accepted()}
        assert {i.id for i in left} <= delivered_ids
    finally:
        server.stop()
        receiver.stop()

    attempts: list[Attempt] = receiver.snapshot()
    # none unsigned, none with a bad signature, on any attempt
    assert attempts and all(a.signed_ok for a in attempts)
    # at least once: every message ever tried was eventually accepted
    assert {a.id for a in attempts} == {a.id for a in receiver.accepted()}
    # in order per task and URL, from the first state to the last
    for task_id in (t1, t2, t3):
        for path in ("/task", "/global"):
            states = accepted_states(receiver, task_id, path)
            assert states[0][0] == "NOT_START" and states[-1] == ("SUCCESS", 100), (task_id, path, states)
            assert in_order(states), (task_id, path, states)
    # nothing is left behind
    assert pending_outbox(data) == []
