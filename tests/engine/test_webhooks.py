"""The webhook dispatcher: Standard Webhooks signing, backoff, address rules, and delivery
through a real SQLite outbox to a real loopback receiver (ordering, retries, dead letters,
restarts)."""

from __future__ import annotations

import asyncio
import gc
import json
import os
import random
import stat
import sys
from collections.abc import AsyncIterator
from pathlib import Path

import httpx
import pytest

from adapter.domain.actions import Action
from adapter.domain.jobs import Job, JobStatus, now_ms
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
        try:
            yield s
        finally:
            await s.close()
        return
    # a fresh prefix whose keys are deleted after the test, pass or fail (tests/conftest.py)
    redis_url = request.getfixturevalue("redis_url")
    prefix = request.getfixturevalue("redis_prefix")
    s = open_store(f"{redis_url}?prefix={prefix}")
    await s.open()
    try:
        yield s
    finally:
        await s.close()


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


# --- shutdown: close() always returns ---------------------------------------------------------


class SwallowingStore:
    """Wraps a store; one call blocks until the dispatcher is cancelled, then *swallows* the
    CancelledError and returns normally. That is what redis-py does on Python 3.11 when the
    cancel lands just as a command's send finishes (it sends through `asyncio.wait_for`, which
    then returns the result instead of raising, CPython gh-86296) - here made deterministic."""

    def __init__(self, inner: JobStore, method: str) -> None:
        self._inner = inner
        self._method = method
        self.blocked = asyncio.Event()
        self.swallowed = 0

    def __getattr__(self, name: str) -> object:
        return getattr(self._inner, name)

    async def _block_once(self) -> None:
        if self.swallowed:
            return
        self.blocked.set()
        try:
            await asyncio.sleep(30)  # far longer than the test allows: only a cancel ends it
        except asyncio.CancelledError:
            self.swallowed += 1

    async def outbox_due(self, now_ms: int, limit: int = 100) -> list:  # type: ignore[type-arg]
        if self._method == "outbox_due":
            await self._block_once()
        return await self._inner.outbox_due(now_ms, limit)

    async def outbox_add(self, item: object) -> None:
        if self._method == "outbox_add":
            await self._block_once()
        await self._inner.outbox_add(item)  # type: ignore[arg-type]


async def test_close_returns_when_the_outbox_read_swallows_the_cancellation(store: JobStore) -> None:
    wrapped = SwallowingStore(store, "outbox_due")
    d = WebhookDispatcher(wrapped, render, options(), SECRET)  # type: ignore[arg-type]
    await d.start()
    async with asyncio.timeout(5):
        await wrapped.blocked.wait()
    async with asyncio.timeout(5):  # before the fix: close() waited for the delivery loop forever
        await d.close()
    assert wrapped.swallowed == 1
    assert d._loop is not None and d._loop.done() and d._writer is not None and d._writer.done()


async def test_close_returns_when_the_outbox_write_swallows_the_cancellation(store: JobStore, receiver: Receiver) -> None:
    wrapped = SwallowingStore(store, "outbox_add")
    d = WebhookDispatcher(wrapped, render, options(), SECRET)  # type: ignore[arg-type]
    d._flush_seconds = 0.1  # close() stops waiting for the stuck write soon
    await d.start()
    d.observe(Job(id="j_a", owner="", action=Action.IMAGINE, webhook_url=receiver.base + "/a"))
    async with asyncio.timeout(5):
        await wrapped.blocked.wait()
    async with asyncio.timeout(5):
        await d.close()
    assert wrapped.swallowed == 1
    assert d._loop is not None and d._loop.done() and d._writer is not None and d._writer.done()


@pytest.mark.timeout(60)  # before the fix a lost cancel could not even be undone: only this ended it
async def test_close_while_redis_calls_are_in_flight_never_hangs(redis_url: str, redis_prefix: str) -> None:
    """The real thing: a dispatcher polling a Redis outbox without pause is closed at many
    different points of a command. Before the fix, one close in a few never returned."""
    loop = asyncio.get_running_loop()
    reported: list[dict] = []  # type: ignore[type-arg]
    previous_handler = loop.get_exception_handler()
    loop.set_exception_handler(lambda _loop, context: reported.append(context))
    s = open_store(f"{redis_url}?prefix={redis_prefix}")
    await s.open()
    client = httpx.AsyncClient()  # one client for all dispatchers (each would build its own)
    rng = random.Random(1)
    try:
        for attempt in range(300):
            d = WebhookDispatcher(s, render, options(idle_poll_seconds=0.0), SECRET, transport=HookTransport(client=client))
            await d.start()
            for _ in range(rng.randrange(1, 60)):
                await asyncio.sleep(0)
            try:
                async with asyncio.timeout(5):
                    await d.close()
            except TimeoutError:
                pytest.fail(f"close() hung on attempt {attempt}")
            assert d._loop is not None and d._loop.done()
    finally:
        await client.aclose()
        await s.close()
        gc.collect()
        await asyncio.sleep(0)
        loop.set_exception_handler(previous_handler)
    assert reported == []  # no "Task exception was never retrieved" or similar


# --- a read that predates a delivery's outcome -------------------------------------------------


class StaleReadStore:
    """Wraps a store so that one outbox read is answered *before* a delivery under way records
    its outcome, and arrives after it: the order a store with several connections (Redis) can
    produce on its own, now and then."""

    def __init__(self, inner: JobStore) -> None:
        self._inner = inner
        self._reads: dict[str, int] = {}
        self.snapshot_taken = asyncio.Event()
        self.deleted = asyncio.Event()

    def __getattr__(self, name: str) -> object:
        return getattr(self._inner, name)

    async def outbox_due(self, now_ms: int, limit: int = 100) -> list:  # type: ignore[type-arg]
        items = await self._inner.outbox_due(now_ms, limit)
        for item in items:
            self._reads[item.id] = self._reads.get(item.id, 0) + 1
        if not self.snapshot_taken.is_set() and any(self._reads[i.id] == 2 for i in items):
            # read while the item is being delivered: hold the answer until that is recorded
            self.snapshot_taken.set()
            async with asyncio.timeout(5):
                await self.deleted.wait()
            await asyncio.sleep(0.05)  # the answer comes in after the delivery has ended
        return items

    async def outbox_delete(self, item_id: str) -> None:
        async with asyncio.timeout(5):
            await self.snapshot_taken.wait()  # the stale read is taken first
        await self._inner.outbox_delete(item_id)
        self.deleted.set()


async def test_a_read_older_than_a_finished_delivery_does_not_send_it_again(store: JobStore, receiver: Receiver) -> None:
    wrapped = StaleReadStore(store)
    d = WebhookDispatcher(wrapped, render, options(), SECRET)  # type: ignore[arg-type]
    await d.start()
    try:
        d.observe(Job(id="j_a", owner="", action=Action.IMAGINE, webhook_url=receiver.base + "/a"))
        await eventually(lambda: wrapped.deleted.is_set() and d.delivered >= 1)
        # let the stale answer be acted upon, and any delivery it started finish
        delivered = d.delivered
        await asyncio.sleep(0.2)
        await eventually(lambda: not d._inflight)
    finally:
        await d.close()
    assert len(receiver.snapshot()) == 1 and d.delivered == delivered == 1  # before the fix: 2


# --- several replicas on one shared store: one delivery per attempt -----------------------------


@pytest.fixture
async def shared_redis(redis_url: str, redis_prefix: str) -> AsyncIterator[tuple[JobStore, JobStore]]:
    """Two replicas' stores: separate connections, one Redis prefix."""
    stores: list[JobStore] = [open_store(f"{redis_url}?prefix={redis_prefix}") for _ in range(2)]
    for s in stores:
        await s.open()
    try:
        yield stores[0], stores[1]
    finally:
        for s in stores:
            await s.close()


async def kill(d: WebhookDispatcher) -> None:
    """The replica dies: its tasks stop where they are, nothing is written, no claim released."""
    tasks = [t for t in (d._writer, d._loop, *d._inflight.values()) if t is not None]
    for t in tasks:
        t.cancel()
    await asyncio.wait(tasks, timeout=5)
    assert all(t.done() for t in tasks)
    await d._transport.aclose()


async def test_two_replicas_deliver_every_event_exactly_once(shared_redis: tuple[JobStore, JobStore], receiver: Receiver) -> None:
    receiver.delay = 0.05  # deliveries overlap the other replica's outbox reads
    a = WebhookDispatcher(shared_redis[0], render, options(), SECRET, replica_id="replica-a")
    b = WebhookDispatcher(shared_redis[1], render, options(), SECRET, replica_id="replica-b")
    await a.start()
    await b.start()
    jobs = [f"j_{n}" for n in range(8)]
    try:
        for n, job_id in enumerate(jobs):
            for snap in lifecycle(job_id, receiver.base + "/hook"):
                (a if n % 2 else b).observe(snap)
        await eventually(lambda: a.delivered + b.delivered >= 5 * len(jobs), timeout=30)
        await asyncio.sleep(0.5)  # room for a second delivery of anything, were one under way
    finally:
        await a.close()
        await b.close()
    accepted = receiver.accepted()
    ids = [x.id for x in accepted]
    assert len(ids) == 5 * len(jobs) and len(set(ids)) == len(ids), "an event was delivered twice"
    assert receiver.snapshot() == accepted and a.delivered + b.delivered == len(ids)
    for job_id in jobs:
        assert states(accepted, job_id) == [("NOT_START", 0), ("SUBMITTED", 0), ("IN_PROGRESS", 15), ("IN_PROGRESS", 62), ("SUCCESS", 100)]
    assert await shared_redis[0].outbox_due(10**15) == []


async def test_a_replica_killed_mid_delivery_leaves_the_event_to_another_after_its_claim(
    shared_redis: tuple[JobStore, JobStore], receiver: Receiver
) -> None:
    receiver.stalls = 1
    a = WebhookDispatcher(shared_redis[0], render, options(claim_seconds=1.5), SECRET, replica_id="replica-a")
    b = WebhookDispatcher(shared_redis[1], render, options(claim_seconds=1.5), SECRET, replica_id="replica-b")
    await a.start()
    try:
        a.observe(Job(id="j_k", owner="", action=Action.IMAGINE, webhook_url=receiver.base + "/k"))
        assert await asyncio.to_thread(receiver.stalled.wait, 10)  # a is sending; the receiver hangs
        await b.start()  # b runs alongside while a is mid-delivery
        held = (await shared_redis[1].outbox_due(10**15))[0]
        assert held.claimed_by == "replica-a"
        await asyncio.sleep(0.3)
        assert receiver.snapshot() == []  # b does not touch an item a holds
        await kill(a)
        killed_at = now_ms()
        await eventually(lambda: b.delivered == 1, timeout=10)
        delivered_at = now_ms()
    finally:
        receiver.released.set()
        await b.close()
    # taken over only once a's claim had ended, and delivered once by b
    assert delivered_at >= held.claimed_until_ms > killed_at
    [attempt] = receiver.accepted()
    assert attempt.id == receiver.stalled_attempts[0].id == held.id and attempt.signed_ok
    assert await shared_redis[0].outbox_get(held.id) is None


async def test_a_replica_shutting_down_releases_the_claims_it_cut_off(
    shared_redis: tuple[JobStore, JobStore], receiver: Receiver
) -> None:
    receiver.stalls = 1
    a = WebhookDispatcher(shared_redis[0], render, options(claim_seconds=60), SECRET, replica_id="replica-a")
    b = WebhookDispatcher(shared_redis[1], render, options(claim_seconds=60), SECRET, replica_id="replica-b")
    await a.start()
    await b.start()
    try:
        a.observe(Job(id="j_s", owner="", action=Action.IMAGINE, webhook_url=receiver.base + "/s"))
        assert await asyncio.to_thread(receiver.stalled.wait, 10)
        [held] = await shared_redis[1].outbox_due(10**15)
        assert held.claimed_by in ("replica-a", "replica-b")
        first, other = (a, b) if held.claimed_by == "replica-a" else (b, a)
        await first.close()  # cuts the hanging delivery off and gives its claim back
        stored = await shared_redis[0].outbox_get(held.id)
        assert stored is not None and stored.claimed_by is None and stored.attempts == 0
        # the other replica sends it at once, long before the 60 s claim would have ended
        await eventually(lambda: other.delivered == 1, timeout=10)
    finally:
        receiver.released.set()
        await a.close()
        await b.close()
    assert [x.id for x in receiver.accepted()] == [held.id]
