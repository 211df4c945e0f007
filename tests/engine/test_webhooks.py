"""The webhook dispatcher: Standard Webhooks signing, backoff, address rules, and delivery
through a real SQLite outbox to a real loopback receiver (ordering, retries, dead letters,
restarts)."""

from __future__ import annotations

import asyncio
import json
import os
import random
import stat
import sys
import uuid
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from adapter.domain.actions import Action
from adapter.domain.jobs import Job, JobStatus
from adapter.engine.webhooks import (
    HookTransport,
    WebhookDispatcher,
    WebhookOptions,
    backoff_delay,
    hook_url_problem,
    load_or_create_secret,
    new_secret,
    sign,
    signing_key,
    verify,
)
from adapter.stores.base import JobStore
from adapter.stores.factory import open_store
from adapter.stores.sqlite import SqliteJobStore

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "api"))
from webhook_receiver import Receiver  # noqa: E402

SECRET = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"


# --- signing ----------------------------------------------------------------------------------


def test_standard_webhooks_reference_vector() -> None:
    # the example from the Standard Webhooks specification's test suite
    key = signing_key(SECRET)
    body = b'{"test": 2432232314}'
    assert sign(key, "msg_p5jXN8AQM9LWM0D4loKWxJek", 1614265330, body) == "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE="
    assert verify(key, "msg_p5jXN8AQM9LWM0D4loKWxJek", 1614265330, body, "v1,bogus v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE=")
    assert not verify(key, "msg_p5jXN8AQM9LWM0D4loKWxJek", 1614265331, body, "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE=")
    assert not verify(key, "msg_p5jXN8AQM9LWM0D4loKWxJek", 1614265330, body + b" ", "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE=")


def test_secret_forms() -> None:
    assert signing_key("whsec_aGVsbG8=") == b"hello"
    assert signing_key("plain passphrase") == b"plain passphrase"
    # not valid base64 after the prefix: used as text rather than failing
    assert signing_key("whsec_not base64!") == b"whsec_not base64!"
    fresh = new_secret()
    assert fresh.startswith("whsec_") and len(signing_key(fresh)) == 24


def test_generated_secret_is_kept_private_and_reused(tmp_path: Path) -> None:
    assert load_or_create_secret("configured", tmp_path) == "configured"
    assert not (tmp_path / "webhook_secret").exists()
    first = load_or_create_secret("", tmp_path)
    assert first.startswith("whsec_")
    assert stat.S_IMODE(os.stat(tmp_path / "webhook_secret").st_mode) == 0o600
    assert load_or_create_secret("", tmp_path) == first


# --- backoff ----------------------------------------------------------------------------------


def test_backoff_grows_exponentially_with_jitter_and_a_cap() -> None:
    rng = random.Random(7)
    for attempts in range(1, 12):
        full = min(60.0, 1.0 * 2 ** (attempts - 1))
        samples = [backoff_delay(attempts, 1.0, 60.0, rng) for _ in range(50)]
        assert all(full / 2 <= s <= full for s in samples), attempts
        assert len(set(samples)) > 1  # jittered
    assert backoff_delay(40, 1.0, 60.0, rng) <= 60.0


# --- address rules ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("url", "allow", "ok"),
    [
        ("https://hooks.example.com/mj", (), True),
        ("http://93.184.215.14:8080/x", (), True),
        ("http://203.0.113.9:8080/x", (), False),  # documentation range: not public
        ("ftp://hooks.example.com/", (), False),
        ("http:///nohost", (), False),
        ("http://user:pw@hooks.example.com/", (), False),
        ("http://127.0.0.1:9000/hook", (), False),
        ("http://169.254.169.254/latest/meta-data", (), False),
        ("http://[::1]/hook", (), False),
        ("http://10.1.2.3/hook", (), False),
        ("http://127.0.0.1:9000/hook", ("127.0.0.1",), True),
        ("http://10.1.2.3/hook", ("10.0.0.0/8",), True),
        ("not a url at all", (), False),
    ],
)
def test_hook_url_problem(url: str, allow: tuple[str, ...], ok: bool) -> None:
    assert (hook_url_problem(url, allow) is None) is ok


async def test_transport_refuses_names_that_resolve_to_private_addresses() -> None:
    async def resolver(host: str, port: int) -> list[str]:
        return ["127.0.0.1"]

    transport = HookTransport(resolver=resolver)
    try:
        from adapter.engine.webhooks import HookError

        with pytest.raises(HookError) as err:
            await transport.post("http://hooks.internal.test:1/x", b"{}", {})
        assert err.value.permanent
    finally:
        await transport.aclose()


# --- dispatcher -------------------------------------------------------------------------------


@pytest.fixture(params=["sqlite", "redis"])
async def store(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[JobStore]:
    """The outbox of either store: ordering and retries must not depend on which one."""
    if request.param == "sqlite":
        s: JobStore = SqliteJobStore(tmp_path / "jobs.db")
        await s.open()
        yield s
        await s.close()
        return
    redis_url = request.getfixturevalue("redis_url")
    prefix = f"whtest-{uuid.uuid4().hex[:8]}"
    s = open_store(f"{redis_url}?prefix={prefix}")
    await s.open()
    yield s
    await s.close()
    import redis

    r = redis.Redis.from_url(redis_url)
    keys = list(r.scan_iter(f"{prefix}:*"))
    if keys:
        r.delete(*keys)
    r.close()


@pytest.fixture
def receiver() -> Receiver:
    r = Receiver(SECRET)
    yield r  # type: ignore[misc]
    r.stop()


def render(job: Job) -> bytes:
    return json.dumps({"id": job.id, "status": job.status.value, "progress": job.progress}).encode()


def options(**over: object) -> WebhookOptions:
    base: dict[str, object] = {
        "allow_hosts": ("127.0.0.1",),
        "backoff_seconds": 0.02,
        "backoff_max_seconds": 0.1,
        "idle_poll_seconds": 0.05,
        "retry_seconds": 60.0,
    }
    base.update(over)
    return WebhookOptions(**base)  # type: ignore[arg-type]


def lifecycle(job_id: str, url: str) -> list[Job]:
    """Snapshots of one job as the bus would publish them (with a repeat that is not an event)."""
    steps = [
        (JobStatus.NOT_START, 0),
        (JobStatus.SUBMITTED, 0),
        (JobStatus.IN_PROGRESS, 15),
        (JobStatus.IN_PROGRESS, 15),  # same state saved again
        (JobStatus.IN_PROGRESS, 62),
        (JobStatus.SUCCESS, 100),
    ]
    return [Job(id=job_id, owner="", action=Action.IMAGINE, status=s, progress=p, webhook_url=url) for s, p in steps]


async def eventually(check: object, timeout: float = 10.0) -> None:
    async with asyncio.timeout(timeout):
        while not check():  # type: ignore[operator]
            await asyncio.sleep(0.01)


def states(attempts: list, job_id: str) -> list[tuple[str, int]]:  # type: ignore[type-arg]
    out = []
    for a in attempts:
        task = a.task
        if task["id"] == job_id:
            out.append((task["status"], task["progress"]))
    return out


async def test_events_arrive_signed_in_order_without_repeats(store: JobStore, receiver: Receiver) -> None:
    d = WebhookDispatcher(store, render, options(global_url=receiver.base + "/global"), SECRET)
    await d.start()
    try:
        for snap in lifecycle("j_a", receiver.base + "/task"):
            d.observe(snap)
        await eventually(lambda: len(receiver.accepted()) == 10)
    finally:
        await d.close()
    expected = [("NOT_START", 0), ("SUBMITTED", 0), ("IN_PROGRESS", 15), ("IN_PROGRESS", 62), ("SUCCESS", 100)]
    assert states(receiver.accepted("/task"), "j_a") == expected
    assert states(receiver.accepted("/global"), "j_a") == expected
    assert all(a.signed_ok for a in receiver.snapshot())
    assert all(a.headers["content-type"] == "application/json" for a in receiver.snapshot())
    assert await store.outbox_due(10**15) == []  # delivered items leave the outbox


async def test_a_failing_receiver_gets_retries_and_never_a_newer_event_first(store: JobStore, receiver: Receiver) -> None:
    receiver.status = 503
    d = WebhookDispatcher(store, render, options(), SECRET)
    await d.start()
    try:
        a, b = lifecycle("j_a", receiver.base + "/a"), lifecycle("j_b", receiver.base + "/b")
        for x, y in zip(a, b):
            d.observe(x)
            d.observe(y)
        await eventually(lambda: len(receiver.snapshot()) >= 8)
        # while failing, only the oldest event of each task is ever tried
        tried = {(t.task["id"], t.task["status"]) for t in receiver.snapshot()}
        assert tried == {("j_a", "NOT_START"), ("j_b", "NOT_START")}
        receiver.status = 200
        await eventually(lambda: len(receiver.accepted()) == 10)
    finally:
        await d.close()
    for job_id in ("j_a", "j_b"):
        got = states(receiver.accepted(), job_id)
        assert got[0] == ("NOT_START", 0) and got[-1] == ("SUCCESS", 100) and len(got) == 5
    # a retry is the same message: same webhook-id, fresh signature
    first_ids = [t.id for t in receiver.snapshot() if t.task["id"] == "j_a" and t.task["status"] == "NOT_START"]
    assert len(set(first_ids)) == 1 and len(first_ids) >= 2
    assert all(t.signed_ok for t in receiver.snapshot())
    assert d.failed_attempts >= 8 and d.dead == 0


async def test_an_event_past_its_retry_window_is_dead_and_stops_blocking(store: JobStore, receiver: Receiver) -> None:
    receiver.status = 500
    d = WebhookDispatcher(store, render, options(retry_seconds=0.3), SECRET)
    await d.start()
    try:
        first, *_ = lifecycle("j_a", receiver.base + "/a")
        d.observe(first)
        await eventually(lambda: d.dead == 1)
        receiver.status = 200
        d.observe(lifecycle("j_a", receiver.base + "/a")[-1])
        await eventually(lambda: len(receiver.accepted()) == 1)
    finally:
        await d.close()
    assert states(receiver.accepted(), "j_a") == [("SUCCESS", 100)]


async def test_gone_and_forbidden_targets_are_not_retried(store: JobStore, receiver: Receiver) -> None:
    receiver.status = 410
    d = WebhookDispatcher(store, render, options(allow_hosts=()), SECRET)
    await d.start()
    try:
        # loopback without an allow-list entry: never contacted at all
        d.observe(Job(id="j_private", owner="", action=Action.IMAGINE, webhook_url=receiver.base + "/private"))
        await eventually(lambda: d.dead == 1)
        assert receiver.snapshot() == []
    finally:
        await d.close()
    d = WebhookDispatcher(store, render, options(), SECRET)
    await d.start()
    try:
        d.observe(Job(id="j_gone", owner="", action=Action.IMAGINE, webhook_url=receiver.base + "/gone"))
        await eventually(lambda: d.dead == 1)
        assert len(receiver.snapshot()) == 1
    finally:
        await d.close()


async def test_pending_events_survive_a_restart(store: JobStore, receiver: Receiver) -> None:
    receiver.stop()  # down: connections refused
    d = WebhookDispatcher(store, render, options(), SECRET)
    await d.start()
    for snap in lifecycle("j_a", receiver.base + "/a"):
        d.observe(snap)
    await asyncio.sleep(0.2)
    await d.close()
    assert d.delivered == 0
    # a new process: same store, receiver back on the same port
    receiver.start()
    d2 = WebhookDispatcher(store, render, options(), SECRET)
    await d2.start()
    try:
        await eventually(lambda: len(receiver.accepted()) == 5)
    finally:
        await d2.close()
    assert states(receiver.accepted(), "j_a") == [("NOT_START", 0), ("SUBMITTED", 0), ("IN_PROGRESS", 15), ("IN_PROGRESS", 62), ("SUCCESS", 100)]


async def test_jobs_without_hooks_cost_nothing(store: JobStore) -> None:
    rendered: list[str] = []

    def spy(job: Job) -> bytes:
        rendered.append(job.id)
        return b"{}"

    d = WebhookDispatcher(store, spy, options(), SECRET)
    await d.start()
    try:
        d.observe(Job(id="j_quiet", owner="", action=Action.IMAGINE))
        await asyncio.sleep(0.05)
    finally:
        await d.close()
    assert rendered == [] and await store.outbox_due(10**15) == []


async def test_the_secret_is_only_made_when_a_webhook_is_sent(store: JobStore, receiver: Receiver) -> None:
    calls: list[int] = []

    def lazy() -> str:
        calls.append(1)
        return SECRET

    d = WebhookDispatcher(store, render, options(), lazy)
    await d.start()
    try:
        await asyncio.sleep(0.05)
        assert calls == []
        d.observe(Job(id="j_a", owner="", action=Action.IMAGINE, webhook_url=receiver.base + "/a"))
        await eventually(lambda: len(receiver.accepted()) == 1)
    finally:
        await d.close()
    assert calls == [1] and receiver.accepted()[0].signed_ok
