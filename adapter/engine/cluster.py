"""Several replicas, one pool of accounts: who drives which account, and how work crosses over.

Every replica is configured with the same accounts and the same Redis (the job store's). Each
account is driven by the one replica holding its lease (`engine.leases`); to the others it is a
*remote* account, a stand-in whose status is what its holder last reported. Keys, under the job
store's prefix:

    accounts          hash     account id -> msgpack AccountReport (its holder's view, ~1 s old)
    work:<account>    list     job ids handed to the account's holder (NOT_START in the store)
    ctl:<account>     list     msgpack Control: what only the holder can do (cancel at
                               Midjourney, ask a seed, pause, resume)
    pace:<account>    hash     day / count / at: the daily cap and the gap between interactions
                               carry over when the account changes hands
    paused:<account>  string   an operator's pause (reason), kept across hand-overs

A job placed on a remote account is written to the store first, then its id is pushed on the
holder's `work` list; the holder's inbox (BLPOP over its accounts' lists) queues it. Lists are
durable, and the store is the truth: a new holder adopts every unfinished job the store pins to
the account (queued ones are queued, running ones reconciled from the channel, the restart path),
and each replica's sweep takes up NOT_START jobs of its accounts that it never heard of. A job is
sent at most once because the NOT_START -> SUBMITTED write is a compare-and-set and the lease is
checked right before every interaction (fencing); it ends once because the final write is a
compare-and-set over the unfinished states.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

import msgspec
import redis.asyncio as aioredis
import redis.exceptions as redis_errors

from adapter.backends.base import Account, AccountState, AccountStatus
from adapter.domain.actions import Mode
from adapter.engine.leases import LeaseManager, LeaseView
from adapter.engine.peers import PeerOp
from adapter.engine.scheduler import Scheduler

if TYPE_CHECKING:
    from adapter.engine.service import JobService

log = logging.getLogger(__name__)

_REDIS_ERRORS = (redis_errors.RedisError, OSError)


def redis_client(url: str, *, socket_timeout: float = 10.0) -> aioredis.Redis:
    """A binary-safe client for cluster traffic (leases, reports, the inbox, the job bus); its
    socket timeout is longer than any blocking read it makes."""
    return aioredis.Redis.from_url(url, decode_responses=False, socket_connect_timeout=5, socket_timeout=socket_timeout)


class AccountPlan(msgspec.Struct, frozen=True, kw_only=True):
    """An account as configured (what a replica knows of it without driving it)."""

    id: str
    kind: str
    modes: tuple[Mode, ...]
    concurrency: int
    queue_size: int


class AccountReport(msgspec.Struct, frozen=True, kw_only=True):
    status: AccountStatus
    replica_id: str
    token: int
    updated_ms: int


class Control(msgspec.Struct, frozen=True, kw_only=True):
    op: str
    job_id: str = ""
    reason: str = ""


class RemoteAccount:
    """An account another replica drives, as the scheduler sees it: its status is its holder's
    last report; pause and resume are asked of the holder."""

    def __init__(self, plan: AccountPlan, cluster: Cluster) -> None:
        self.plan = plan
        self._cluster = cluster
        self.report: AccountReport | None = None

    @property
    def id(self) -> str:
        return self.plan.id

    def status(self) -> AccountStatus:
        report = self.report
        if report is not None and self._cluster.report_is_current(report):
            return report.status
        # nobody drives it right now: a replica takes its lease within a few seconds, so work
        # may be queued for it, as for an account that is reconnecting
        return AccountStatus(
            id=self.plan.id,
            kind=self.plan.kind,
            state=AccountState.CONNECTING,
            reason="waiting for a replica to take it over",
            modes=self.plan.modes,
            concurrency=self.plan.concurrency,
            queue_size=self.plan.queue_size,
        )

    def add_listener(self, listener: Callable[[AccountStatus], None]) -> None:
        return None  # its holder's changes arrive as reports

    def pause(self, reason: str) -> None:
        self._cluster.spawn(self._cluster.ask(self.id, "pause", reason=reason))

    def resume(self) -> None:
        self._cluster.spawn(self._cluster.ask(self.id, "resume"))


class Cluster:
    """This replica's part of the cluster: leases, reports, the inbox. Implements `Peers`."""

    def __init__(
        self,
        redis_url: str,
        *,
        prefix: str,
        replica_id: str,
        plans: list[AccountPlan],
        make_account: Callable[[str], Account],
        lease_ttl_seconds: float = 5.0,
        report_interval_seconds: float = 1.0,
    ) -> None:
        self.prefix = prefix
        self.replica_id = replica_id
        self.plans = {p.id: p for p in plans}
        self._make_account = make_account
        self._report_interval = report_interval_seconds
        # three connections' worth of pools: renewals never wait behind BLPOP or application
        # traffic, and BLPOP blocks a connection of its own
        self._redis = redis_client(redis_url)
        self._lease_redis = redis_client(redis_url, socket_timeout=max(1.0, lease_ttl_seconds / 2))
        self._inbox_redis = redis_client(redis_url)
        self.leases = LeaseManager(self._lease_redis, prefix=prefix, replica_id=replica_id, ttl_seconds=lease_ttl_seconds)
        self._ttl_ms = int(lease_ttl_seconds * 1000)
        self.remotes = {p.id: RemoteAccount(p, self) for p in plans}
        self.local: dict[str, Account] = {}
        self._tokens: dict[str, int] = {}
        self._starting: dict[str, asyncio.Task[None]] = {}
        self._pace: dict[str, tuple[str, int, float]] = {}
        self._wake_report = asyncio.Event()
        self._background: set[asyncio.Task[Any]] = set()
        self._loops: list[asyncio.Task[None]] = []
        self._service: JobService | None = None
        self._scheduler: Scheduler | None = None
        self._stopping = False
        self.handovers_sent = 0
        self.handovers_taken = 0

    def __repr__(self) -> str:
        return f"Cluster(replica_id={self.replica_id!r}, prefix={self.prefix!r}, local={sorted(self.local)})"

    def _k(self, *parts: str) -> str:
        return ":".join((self.prefix, *parts))

    # --- wiring -------------------------------------------------------------------------------

    def bind(self, service: JobService, scheduler: Scheduler) -> None:
        """The service adopts, releases, takes over, cancels and asks seeds for this replica."""
        self._service = service
        self._scheduler = scheduler
        for remote in self.remotes.values():
            scheduler.add_remote(remote)

    async def start(self, settle_seconds: float = 3.0) -> None:
        """Join: take a fair share of the leases, report, listen. Waits up to `settle_seconds`
        for the first lease round so a lone replica starts with its accounts connecting."""
        await self._read_reports()
        self.leases.start(list(self.plans), self._on_acquired, self._on_lost)
        self._loops = [
            asyncio.create_task(self._report_loop(), name=f"cluster-reports-{self.replica_id}"),
            asyncio.create_task(self._inbox_loop(), name=f"cluster-inbox-{self.replica_id}"),
        ]
        deadline = time.monotonic() + settle_seconds
        while time.monotonic() < deadline and not self.leases.live_replicas():
            await asyncio.sleep(0.05)
        if self._starting:
            await asyncio.wait(list(self._starting.values()), timeout=max(0.0, deadline - time.monotonic()))

    async def close(self) -> None:
        """Hand every lease back at once (after the service stopped following its jobs), so the
        other replicas take the accounts over without waiting for the TTL."""
        await self.leases.close(release=True, callback_timeout=15.0)
        # the loops end at their next turn (BLPOP waits at most a second): a cancel in the middle
        # of a blocking read was seen to leave redis-py waiting in a new one
        self._stopping = True
        self._wake_report.set()
        if self._loops:
            _, pending = await asyncio.wait(self._loops, timeout=3)
            while pending:
                for task in pending:
                    task.cancel()
                _, pending = await asyncio.wait(pending, timeout=0.5)
        with contextlib.suppress(*_REDIS_ERRORS):
            await self._write_reports()
        for task in list(self._background):
            task.cancel()
        await asyncio.gather(*self._background, return_exceptions=True)
        for client in (self._redis, self._lease_redis, self._inbox_redis):
            with contextlib.suppress(Exception):
                await client.aclose()

    def spawn(self, coro: Any) -> None:
        task = asyncio.create_task(coro)
        self._background.add(task)
        task.add_done_callback(self._background.discard)

    # --- Peers --------------------------------------------------------------------------------

    def may_send(self, account_id: str) -> bool:
        token = self._tokens.get(account_id)
        return token is not None and self.leases.lease_valid(account_id, token)

    async def hand_over(self, account_id: str, job_id: str) -> None:
        await self._redis.rpush(self._k("work", account_id), job_id)
        self.handovers_sent += 1

    async def ask(self, account_id: str, op: PeerOp, job_id: str = "", reason: str = "") -> None:
        try:
            if op == "pause":  # kept, so the pause outlives a hand-over of the account
                await self._redis.set(self._k("paused", account_id), reason or "paused by an operator")
            elif op == "resume":
                await self._redis.delete(self._k("paused", account_id))
            await self._redis.rpush(self._k("ctl", account_id), msgspec.msgpack.encode(Control(op=op, job_id=job_id, reason=reason)))
        except _REDIS_ERRORS as exc:
            log.warning("cluster: could not ask the holder of %s to %s: %s", account_id, op, exc)
            raise

    # --- what the admin API shows -------------------------------------------------------------

    def holders(self) -> dict[str, LeaseView]:
        return self.leases.holders()

    def report_is_current(self, report: AccountReport) -> bool:
        """A report counts while its replica holds the lease it was made under and is fresh."""
        holder = self.leases.holder(report.status.id)
        fresh = report.updated_ms > int(time.time() * 1000) - 3 * self._ttl_ms
        return fresh and holder is not None and holder.replica_id == report.replica_id and holder.token == report.token

    def counters(self) -> dict[str, int]:
        m = self.leases
        return {
            "acquired": m.acquired,
            "lost": m.lost,
            "released": m.released,
            "handed_over": m.handed_over,
            "redis_errors": m.redis_errors,
            "jobs_handed_over": self.handovers_sent,
            "jobs_taken_over": self.handovers_taken,
        }

    # --- leases -------------------------------------------------------------------------------

    async def _on_acquired(self, lease: LeaseView) -> None:
        account_id = lease.account_id
        log.info("cluster: %s now drives account %s (lease %d)", self.replica_id, account_id, lease.token)
        old = self._starting.pop(account_id, None)
        if old is not None:
            old.cancel()
        self._starting[account_id] = asyncio.create_task(self._take(lease), name=f"cluster-take-{account_id}")

    async def _take(self, lease: LeaseView) -> None:
        assert self._scheduler is not None and self._service is not None
        account_id, token = lease.account_id, lease.token
        account = self._make_account(account_id)
        self._tokens[account_id] = token
        if hasattr(account, "send_gate"):  # Discord accounts: the fence before every interaction
            account.send_gate = lambda: self.leases.lease_valid(account_id, token)  # type: ignore[attr-defined]
        try:
            pace = await self._redis.hgetall(self._k("pace", account_id))
            paused = await self._redis.get(self._k("paused", account_id))
        except _REDIS_ERRORS as exc:
            log.warning("cluster: pacing of %s not read (%s); starting afresh", account_id, exc)
            pace, paused = {}, None
        restore = getattr(account, "restore_pacing", None)
        if pace and restore is not None:
            with contextlib.suppress(KeyError, ValueError):
                restore(pace[b"day"].decode(), int(pace[b"count"]), float(pace[b"at"]))
        if hasattr(account, "on_paced"):
            account.on_paced = lambda day, count, at: self._paced(account_id, day, count, at)  # type: ignore[attr-defined]
        account.add_listener(lambda _st: self._wake_report.set())
        self.local[account_id] = account
        self._scheduler.add_account(account)
        try:
            await account.start()
            if paused is not None:
                account.pause(paused.decode(errors="replace"))
            await self._service.adopt(account_id)
        finally:
            self._wake_report.set()
            self._starting.pop(account_id, None)

    async def _on_lost(self, account_id: str, reason: str) -> None:
        log.info("cluster: %s no longer drives account %s (%s)", self.replica_id, account_id, reason)
        self._tokens.pop(account_id, None)
        starting = self._starting.pop(account_id, None)
        if starting is not None:
            starting.cancel()
            await asyncio.gather(starting, return_exceptions=True)
        account = self.local.pop(account_id, None)
        if self._scheduler is not None:
            self._scheduler.add_remote(self.remotes[account_id])
        if self._service is not None:
            await self._service.release_account(account_id)
        if account is not None:
            try:
                await asyncio.wait_for(account.close(), 10)
            except Exception as exc:
                log.warning("cluster: closing account %s: %s", account_id, exc)
        self._wake_report.set()

    def _paced(self, account_id: str, day: str, count: int, at: float) -> None:
        self._pace[account_id] = (day, count, at)
        self._wake_report.set()

    # --- reports ------------------------------------------------------------------------------

    async def _report_loop(self) -> None:
        while not self._stopping:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wake_report.wait(), self._report_interval)
            self._wake_report.clear()
            if self._stopping:
                return
            try:
                await self._write_reports()
                await self._read_reports()
            except _REDIS_ERRORS as exc:
                log.warning("cluster: account reports: %s", exc)
                await asyncio.sleep(self._report_interval)
            await asyncio.sleep(0.05)  # at most ~20 writes a second, however busy the accounts

    async def _write_reports(self) -> None:
        now = int(time.time() * 1000)
        pipe = self._redis.pipeline(transaction=False)
        n = 0
        # the scheduler's view: it counts what waits in its own queue for each account
        queued = {st.id: st for st in self._scheduler.statuses()} if self._scheduler is not None else {}
        for account_id, account in list(self.local.items()):
            token = self._tokens.get(account_id)
            if token is None:
                continue
            st = queued.get(account_id) or account.status()
            report = AccountReport(status=st, replica_id=self.replica_id, token=token, updated_ms=now)
            pipe.hset(self._k("accounts"), account_id, msgspec.msgpack.encode(report))
            n += 1
        pace, self._pace = self._pace, {}
        for account_id, (day, count, at) in pace.items():
            pipe.hset(self._k("pace", account_id), mapping={"day": day, "count": count, "at": repr(at)})
            n += 1
        if n:
            await pipe.execute()

    async def _read_reports(self) -> None:
        raw = await self._redis.hgetall(self._k("accounts"))
        for key, value in raw.items():
            account_id = key.decode(errors="replace")
            remote = self.remotes.get(account_id)
            if remote is None or account_id in self.local:
                continue
            try:
                report = msgspec.msgpack.decode(value, type=AccountReport)
            except msgspec.DecodeError:
                continue
            if remote.report is None or report.updated_ms != remote.report.updated_ms:
                remote.report = report
                if self._scheduler is not None:
                    self._scheduler.reported(account_id)

    # --- the inbox ----------------------------------------------------------------------------

    async def _inbox_loop(self) -> None:
        assert self._service is not None  # bound before start
        while not self._stopping:
            ids = [a for a in self.local if a in self._tokens]
            if not ids:
                await asyncio.sleep(0.2)
                continue
            keys = [self._k("ctl", a) for a in ids] + [self._k("work", a) for a in ids]
            try:
                got = await self._inbox_redis.blpop(keys, timeout=1)
            except _REDIS_ERRORS as exc:
                log.warning("cluster: inbox: %s", exc)
                await asyncio.sleep(0.5)
                continue
            if got is None:
                continue
            key, value = got[0].decode(errors="replace"), got[1]
            kind, _, account_id = key[len(self.prefix) + 1 :].partition(":")
            if kind == "work":
                self.handovers_taken += 1
                self.spawn(self._service.take_over(value.decode(errors="replace"), account_id))
            elif kind == "ctl":
                try:
                    ctl = msgspec.msgpack.decode(value, type=Control)
                except msgspec.DecodeError:
                    continue
                self.spawn(self._control(account_id, ctl))

    async def _control(self, account_id: str, ctl: Control) -> None:
        assert self._service is not None
        account = self.local.get(account_id)
        try:
            if ctl.op == "cancel" and ctl.job_id:
                await self._service.cancel(ctl.job_id)
            elif ctl.op == "seed" and ctl.job_id:
                await self._service.seed(ctl.job_id)  # it keeps the seed (or why not) on the job
            elif ctl.op == "pause" and account is not None:
                account.pause(ctl.reason or "paused by an operator")
            elif ctl.op == "resume" and account is not None:
                account.resume()
        except Exception as exc:
            log.info("cluster: %s on %s (job %s): %s", ctl.op, account_id, ctl.job_id or "-", exc)
