"""Account leases on the real Redis: fair spread, exclusivity checked continuously, handover on
release and on TTL, fencing (tokens, local deadline while paused), a SIGKILLed process, and a
Redis that is not there."""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
import time
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import pytest
import redis.asyncio as aioredis

from adapter.engine import leases as leases_mod
from adapter.engine.leases import LeaseManager, LeaseView, default_replica_id, parse_lease

pytestmark = pytest.mark.timeout(30)

TTL = 0.6
REPO = Path(__file__).resolve().parents[2]


@pytest.fixture
async def client(redis_url: str) -> AsyncIterator[aioredis.Redis]:
    c = aioredis.Redis.from_url(redis_url, socket_connect_timeout=2, socket_timeout=2)
    try:
        yield c
    finally:
        await c.aclose()


class Recorder:
    """on_acquired / on_lost callbacks that remember what they were told."""

    def __init__(self) -> None:
        self.acquired: list[LeaseView] = []
        self.lost: list[tuple[str, str]] = []

    async def on_acquired(self, lease: LeaseView) -> None:
        self.acquired.append(lease)

    async def on_lost(self, account_id: str, reason: str) -> None:
        self.lost.append((account_id, reason))


@pytest.fixture
async def managers(redis_url: str) -> AsyncIterator[Callable[..., LeaseManager]]:
    """Makes managers, each with a Redis client of its own (as separate replicas have)."""
    made: list[LeaseManager] = []
    clients: list[aioredis.Redis] = []

    def make(prefix: str, replica_id: str, **kw: Any) -> LeaseManager:
        kw.setdefault("ttl_seconds", TTL)
        if "client" not in kw:
            kw["client"] = aioredis.Redis.from_url(redis_url, socket_connect_timeout=2, socket_timeout=2)
            clients.append(kw["client"])
        m = LeaseManager(prefix=prefix, replica_id=replica_id, **kw)
        made.append(m)
        return m

    try:
        yield make
    finally:
        for m in made:
            await m.close(release=True, callback_timeout=1)
        for c in clients:
            await c.aclose()


async def wait_until(cond: Callable[[], bool], timeout: float, step: float = 0.01) -> float:
    """Seconds it took; fails after `timeout`."""
    start = time.monotonic()
    while not cond():
        if time.monotonic() - start > timeout:
            pytest.fail(f"condition not met within {timeout}s")
        await asyncio.sleep(step)
    return time.monotonic() - start


class Monitor:
    """Checks continuously (every few ms) that no account is usable by two managers at once, and
    that the token stored in Redis for an account never goes down."""

    def __init__(self, client: aioredis.Redis, prefix: str, accounts: list[str], managers: list[LeaseManager]) -> None:
        self.client, self.prefix, self.accounts, self.managers = client, prefix, accounts, managers
        self.violations: list[str] = []
        self.tokens: dict[str, list[int]] = {a: [] for a in accounts}
        self.samples = 0
        self._stop = False
        self._task: asyncio.Task[None] | None = None

    def _local_check(self) -> None:
        for account in self.accounts:
            users = [
                m.replica_id
                for m in self.managers
                if (h := m._held.get(account)) is not None and m.lease_valid(account, h.lease.token)
            ]
            if len(users) > 1:
                self.violations.append(f"{account} valid at {users}")

    async def _run(self) -> None:
        keys = [f"{self.prefix}:lease:{a}" for a in self.accounts]
        while not self._stop:
            self._local_check()
            values = await self.client.mget(keys)
            self._local_check()
            for account, value in zip(self.accounts, values, strict=True):
                if value is None:
                    continue
                lease = parse_lease(account, value)
                assert lease is not None
                seen = self.tokens[account]
                if seen and lease.token < seen[-1]:
                    self.violations.append(f"{account} token went down {seen[-1]} -> {lease.token}")
                if not seen or seen[-1] != lease.token:
                    seen.append(lease.token)
            self.samples += 1
            await asyncio.sleep(0.005)

    def start(self) -> None:
        self._task = asyncio.create_task(self._run())

    async def stop(self) -> None:
        assert self._task is not None
        self._stop = True  # not cancel(): see LeaseManager._stop_loop
        await asyncio.wait_for(self._task, 5)
        assert self.samples > 10
        assert not self.violations, self.violations[:5]


def counts(ms: list[LeaseManager]) -> list[int]:
    return sorted(len(m.held()) for m in ms)


async def lease_values(client: aioredis.Redis, prefix: str, accounts: list[str]) -> dict[str, LeaseView | None]:
    values = await client.mget([f"{prefix}:lease:{a}" for a in accounts])
    return {a: (parse_lease(a, v) if v is not None else None) for a, v in zip(accounts, values, strict=True)}


# --- tests ---------------------------------------------------------------------------------------


def test_default_replica_id_and_validation() -> None:
    rid = default_replica_id()
    assert str(os.getpid()) in rid and "|" not in rid
    fake: Any = aioredis.Redis()  # never connects: constructors only
    with pytest.raises(ValueError):
        LeaseManager(fake, prefix="p", replica_id="a|b")
    with pytest.raises(ValueError):
        LeaseManager(fake, prefix="", replica_id="a")
    with pytest.raises(ValueError):
        LeaseManager(fake, prefix="p", replica_id="a", ttl_seconds=1, period_seconds=0.9)


async def test_one_manager_takes_all_and_releases(client: aioredis.Redis, redis_prefix: str, managers: Any) -> None:
    accounts = ["a1", "a2", "a3"]
    rec = Recorder()
    m = managers(redis_prefix, "r1")
    m.start(accounts, rec.on_acquired, rec.on_lost)
    await wait_until(lambda: len(m.held()) == 3 and len(rec.acquired) == 3, 3)
    stored = await lease_values(client, redis_prefix, accounts)
    for a in accounts:
        lease = stored[a]
        assert lease is not None and lease.replica_id == "r1" and lease.token == 1
        assert m.lease_valid(a, 1) and not m.lease_valid(a, 2)
        assert abs(lease.since_ms - time.time() * 1000) < 5000
        pttl = await client.pttl(f"{redis_prefix}:lease:{a}")
        assert 0 < pttl <= TTL * 1000
    assert await client.exists(f"{redis_prefix}:replica:r1") == 1
    assert set(m.holders()) == set(accounts) and m.holders()["a1"].replica_id == "r1"
    assert set(await m.fetch_holders()) == set(accounts)
    assert m.acquired == 3
    await asyncio.sleep(TTL * 1.5)  # renewals keep them past the TTL
    assert len(m.held()) == 3 and m.renewed >= 3 and m.acquired == 3
    assert m.live_replicas() == {"r1"}
    await m.release_all()
    assert m.held() == {} and not m.lease_valid("a1", 1) and m.released == 3
    assert all(v is None for v in (await lease_values(client, redis_prefix, accounts)).values())
    assert await client.exists(f"{redis_prefix}:replica:r1") == 0
    await m.close()
    assert sorted(rec.lost) == [(a, "released") for a in accounts]


async def test_three_managers_converge_to_fair_spread_without_overlap(
    client: aioredis.Redis, redis_prefix: str, managers: Any
) -> None:
    accounts = ["a1", "a2", "a3", "a4"]
    ms = [managers(redis_prefix, f"r{i}") for i in range(3)]
    mon = Monitor(client, redis_prefix, accounts, ms)
    mon.start()
    ms[0].start(accounts)
    await wait_until(lambda: len(ms[0].held()) == 4, 3)
    ms[1].start(accounts)
    ms[2].start(accounts)
    took = await wait_until(lambda: counts(ms) == [1, 1, 2], 6)
    # and it stays there: no flapping once balanced
    handed = sum(m.handed_over for m in ms)
    acquired = sum(m.acquired for m in ms)
    for _ in range(int(3 * TTL / 0.02)):
        assert counts(ms) == [1, 1, 2]
        await asyncio.sleep(0.02)
    assert sum(m.handed_over for m in ms) == handed and sum(m.acquired for m in ms) == acquired
    assert handed >= 2  # the first one gave two away
    # one account's holder, as each replica sees it, is the entry of the whole map
    for m in ms:
        assert {a: m.holder(a) for a in accounts} == {a: m.holders().get(a) for a in accounts}
        assert m.holder("not-an-account") is None
    await mon.stop()
    assert took < 6


async def test_three_managers_started_together(client: aioredis.Redis, redis_prefix: str, managers: Any) -> None:
    accounts = [f"a{i}" for i in range(7)]
    ms = [managers(redis_prefix, f"r{i}") for i in range(3)]
    mon = Monitor(client, redis_prefix, accounts, ms)
    mon.start()
    for m in ms:
        m.start(accounts)
    await wait_until(lambda: counts(ms) == [2, 2, 3], 6)
    await asyncio.sleep(TTL)
    assert counts(ms) == [2, 2, 3]
    await mon.stop()


async def test_release_all_hands_over_within_one_period(
    client: aioredis.Redis, redis_prefix: str, managers: Any
) -> None:
    accounts = ["a1", "a2"]
    a, b = managers(redis_prefix, "ra"), managers(redis_prefix, "rb")
    mon = Monitor(client, redis_prefix, accounts, [a, b])
    mon.start()
    a.start(accounts)
    await wait_until(lambda: len(a.held()) == 2, 3)
    b.start(accounts)
    await wait_until(lambda: counts([a, b]) == [1, 1], 5)
    await asyncio.sleep(b.period)  # let b settle into its rhythm
    await a.release_all()
    took = await wait_until(lambda: len(b.held()) == 2, 3, step=0.005)
    assert took <= b.period + 0.15, took
    await mon.stop()


async def test_stopped_manager_leases_taken_only_after_ttl(
    client: aioredis.Redis, redis_prefix: str, managers: Any
) -> None:
    accounts = ["a1", "a2"]
    a, b = managers(redis_prefix, "ra"), managers(redis_prefix, "rb")
    mon = Monitor(client, redis_prefix, accounts, [a, b])
    mon.start()
    a.start(accounts)
    await wait_until(lambda: len(a.held()) == 2, 3)
    b.start(accounts)
    await wait_until(lambda: counts([a, b]) == [1, 1], 5)
    await asyncio.sleep(b.period)
    (theirs,) = a.held()
    before = (await lease_values(client, redis_prefix, [theirs]))[theirs]
    await a.close(release=False)  # a crash, as far as Redis can tell
    t0 = time.monotonic()
    took = await wait_until(lambda: theirs in b.held(), 3, step=0.005)
    # a renewed at most one period (plus jitter) before it stopped; the key lives ttl after that
    assert took >= TTL - a.period - 0.05, took
    assert took <= TTL + b.period + 0.2, took
    after = (await lease_values(client, redis_prefix, [theirs]))[theirs]
    assert before is not None and after is not None and after.token > before.token
    assert time.monotonic() - t0 >= took
    await mon.stop()


async def test_paused_manager_stops_being_valid_before_anyone_takes_over(
    client: aioredis.Redis, redis_prefix: str, managers: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    accounts = ["a1"]
    rec_a = Recorder()
    a, b = managers(redis_prefix, "ra"), managers(redis_prefix, "rb")
    mon = Monitor(client, redis_prefix, accounts, [a, b])
    mon.start()
    a.start(accounts, rec_a.on_acquired, rec_a.on_lost)
    await wait_until(lambda: len(a.held()) == 1, 3)
    b.start(accounts)
    await asyncio.sleep(TTL)
    assert counts([a, b]) == [0, 1] and "a1" in a.held()
    token = a.held()["a1"].token

    # freeze a's loop (a GC pause / SIGSTOP: nothing of a runs, not even its renewals)
    resume = asyncio.Event()

    async def frozen() -> bool:
        await resume.wait()
        return True

    monkeypatch.setattr(a, "_step", frozen)
    await asyncio.sleep(a.period * 1.2)  # the loop is now inside the frozen step
    t_invalid = t_taken = None
    start = time.monotonic()
    while time.monotonic() - start < 3 and t_taken is None:
        now = time.monotonic()
        if t_invalid is None and not a.lease_valid("a1", token):
            t_invalid = now
        stored = (await lease_values(client, redis_prefix, accounts))["a1"]
        if stored is None or stored.replica_id != "ra":
            assert t_invalid is not None, "another replica took the lease while the paused one still saw it valid"
            t_taken = now
        await asyncio.sleep(0.003)
    assert t_invalid is not None and t_taken is not None
    assert t_taken > t_invalid
    await wait_until(lambda: "a1" in b.held(), 2)
    assert b.held()["a1"].token > token
    # on waking, a's first renewal finds b's value: lost at once, and still not valid
    monkeypatch.undo()
    resume.set()
    await wait_until(lambda: ("a1", "taken") in rec_a.lost or ("a1", "expired") in rec_a.lost, 3)
    assert not a.lease_valid("a1", token)
    await asyncio.sleep(TTL)
    assert counts([a, b]) == [0, 1]
    await mon.stop()


async def test_paused_manager_with_a_fake_clock(client: aioredis.Redis, redis_prefix: str, managers: Any) -> None:
    """The deadline is local and monotonic: advancing the manager's clock past it ends validity
    at once, with the key still alive in Redis (nobody else could have taken it yet)."""
    now = [1000.0]
    m = managers(redis_prefix, "r1", clock=lambda: now[0], period_seconds=5, ttl_seconds=30)
    m.start(["a1"])
    await wait_until(lambda: "a1" in m.held(), 3)
    token = m.held()["a1"].token
    assert m.lease_valid("a1", token)
    now[0] += 30 - m.safety_margin - 0.001
    assert m.lease_valid("a1", token)
    now[0] += 0.002
    assert not m.lease_valid("a1", token)
    assert await client.pttl(f"{redis_prefix}:lease:a1") > 20_000


async def test_fencing_tokens_strictly_increase_across_handovers(
    client: aioredis.Redis, redis_prefix: str, managers: Any
) -> None:
    tokens: list[int] = []
    for i in range(4):
        rec = Recorder()
        m = managers(redis_prefix, f"r{i}")
        m.start(["a1"], rec.on_acquired)
        await wait_until(lambda rec=rec: len(rec.acquired) == 1, 3)
        tokens.append(rec.acquired[0].token)
        if i % 2:
            await m.release_all()
        else:
            await m.close(release=False)
            await client.delete(f"{redis_prefix}:lease:a1")  # its TTL, without the wait
    assert tokens == sorted(set(tokens)) and len(tokens) == 4
    assert int(await client.get(f"{redis_prefix}:lease-epoch:a1")) == tokens[-1]


async def test_sigkilled_process_leases_taken_within_ttl_and_a_period(
    client: aioredis.Redis, redis_url: str, redis_prefix: str, managers: Any
) -> None:
    accounts = ["a1", "a2", "a3"]
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    proc = subprocess.Popen(
        [sys.executable, str(Path(__file__).with_name("lease_holder.py")), redis_url, redis_prefix, "child", str(TTL), *accounts],
        stdout=subprocess.PIPE,
        env=env,
        cwd=REPO,
    )
    try:
        assert proc.stdout is not None
        loop = asyncio.get_running_loop()
        deadline = time.monotonic() + 15
        while True:
            line = await asyncio.wait_for(loop.run_in_executor(None, proc.stdout.readline), 15)
            assert line, "the child exited"
            if line.strip() == b"HOLDING 3":
                break
            assert time.monotonic() < deadline
        stored = await lease_values(client, redis_prefix, accounts)
        assert all(v is not None and v.replica_id == "child" for v in stored.values())
        proc.send_signal(signal.SIGKILL)
        proc.wait(5)
        t0 = time.monotonic()
        m = managers(redis_prefix, "survivor")
        m.start(accounts)
        took = await wait_until(lambda: len(m.held()) == 3, 5)
        assert took <= TTL + m.period + 0.25, took
        after = await lease_values(client, redis_prefix, accounts)
        for a in accounts:
            assert after[a] is not None and after[a].replica_id == "survivor"
            assert after[a].token > stored[a].token  # type: ignore[union-attr]
        assert time.monotonic() - t0 >= took
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait(5)
        if proc.stdout is not None:
            proc.stdout.close()


async def test_redis_unavailable_no_exception_and_not_valid(redis_prefix: str, managers: Any) -> None:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]  # closed once the block ends: connections are refused
    bad = aioredis.Redis(host="127.0.0.1", port=port, socket_connect_timeout=0.2, socket_timeout=0.2)
    try:
        rec = Recorder()
        m = managers(redis_prefix, "r1", client=bad)
        m.start(["a1"], rec.on_acquired, rec.on_lost)
        await asyncio.sleep(TTL * 2)
        assert m._task is not None and not m._task.done()
        assert m.redis_errors >= 2 and m.held() == {} and not m.lease_valid("a1", 1)
        assert m.holders() == {} and rec.acquired == []
        await m.close()  # the release fails quietly too
    finally:
        await bad.aclose()


async def test_redis_lost_while_holding_ends_validity_at_the_local_deadline(
    client: aioredis.Redis, redis_prefix: str, managers: Any
) -> None:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    bad = aioredis.Redis(host="127.0.0.1", port=port, socket_connect_timeout=0.2, socket_timeout=0.2)
    try:
        rec = Recorder()
        m = managers(redis_prefix, "r1")
        good = m._client
        m.start(["a1"], rec.on_acquired, rec.on_lost)
        await wait_until(lambda: "a1" in m.held(), 3)
        token = m.held()["a1"].token
        m._client = bad  # Redis goes away
        t0 = time.monotonic()
        took = await wait_until(lambda: not m.lease_valid("a1", token), 3, step=0.005)
        assert took <= TTL - m.safety_margin + 0.02
        await wait_until(lambda: ("a1", "expired") in rec.lost, 2)
        assert m._task is not None and not m._task.done()
        # Redis comes back: the lease is taken again (a new token; the old one stays invalid)
        m._client = good
        await wait_until(lambda: "a1" in m.held(), 3 + m.max_backoff)
        assert m.held()["a1"].token > token and not m.lease_valid("a1", token)
        assert time.monotonic() - t0 > 0
    finally:
        await bad.aclose()


async def test_callback_errors_are_logged_and_the_loop_goes_on(
    client: aioredis.Redis, redis_prefix: str, managers: Any, caplog: pytest.LogCaptureFixture
) -> None:
    async def boom(*args: Any) -> None:
        raise RuntimeError("callback failed")

    m = managers(redis_prefix, "r1")
    m.start(["a1", "a2"], boom, boom)
    await wait_until(lambda: len(m.held()) == 2, 3)
    await asyncio.sleep(TTL)
    assert len(m.held()) == 2 and m.renewed >= 2
    assert any("callback failed" in (r.exc_text or "") or r.exc_info for r in caplog.records if r.name == leases_mod.__name__)
