"""The account pool: which account runs a job, and when.

Each account has a queue of tickets and a number of running jobs. A ticket starts when its
account is ready and below its concurrency; an account's queue is bounded by its queue size so a
full pool is an immediate, explicit refusal instead of an unbounded wait. When an account stops
being usable, its queued tickets move to another account that serves the same mode (follow-ups
are pinned to the account that owns the parent message and cannot move); while one reconnects,
its queue moves to accounts that are ready. A refusal always says the true reason: no account
for the mode, every account paused (and why), or a limit that clears at a known time
(Retry-After).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import math
import time
from collections import deque
from collections.abc import Awaitable, Callable, Iterable

import msgspec

from adapter.backends.base import Account, AccountState, AccountStatus
from adapter.domain.actions import Mode
from adapter.engine.errors import EngineError, NoAccountAvailable, QueueFull

log = logging.getLogger(__name__)

# States in which an account may still be given new work to queue: it is expected back soon.
_TRANSIENT = {AccountState.CONNECTING, AccountState.RECONNECTING}
_GONE = {AccountState.PAUSED, AccountState.DISABLED, AccountState.STOPPED}
# Not usable until a known time (a daily cap, Midjourney's queue full): refuse with Retry-After.
_COOLING = {AccountState.COOLING_DOWN}


class Ticket(msgspec.Struct, kw_only=True):
    """A job waiting for (or holding) a slot on an account."""

    job_id: str
    mode: Mode
    pinned_account: str | None = None  # follow-ups run where their parent message lives
    # run(account) executes the job; the slot is held until it returns
    run: Callable[[Account], Awaitable[None]]
    # called when the ticket was queued on an account that went away and no other can take it
    orphaned: Callable[[EngineError], Awaitable[None]]
    # accounts to avoid (the job was just refused there); used anyway if nothing else can take it
    excluded: frozenset[str] = frozenset()


# A ticket placed on an account another replica drives: handed over through the cluster (the job
# is already in the store when the hand-over runs; see JobService._dispatch_remote).
RemoteDispatch = Callable[[str, Ticket], None]


class _Slot:
    def __init__(self, account: Account, *, remote: bool = False) -> None:
        self.account = account
        self.remote = remote  # driven by another replica: status from the cluster, no local queue
        self.queue: deque[Ticket] = deque()
        self.running: dict[str, asyncio.Task[None]] = {}
        self.wake = asyncio.Event()
        self.pump: asyncio.Task[None] | None = None
        self.dispatched = 0  # remote: tickets handed over since the holder last reported its load

    @property
    def status(self) -> AccountStatus:
        return self.account.status()

    @property
    def load(self) -> int:
        if self.remote:
            st = self.account.status()
            return st.running + st.waiting + self.dispatched
        return len(self.running) + len(self.queue)

    def has_room(self, st: AccountStatus) -> bool:
        return self.load < st.concurrency + st.queue_size


class Scheduler:
    def __init__(self, accounts: Iterable[Account] = (), *, retry_after_seconds: int = 30) -> None:
        self._slots: dict[str, _Slot] = {}
        self._retry_after = retry_after_seconds
        self._closed = False
        self._started = False
        self._frozen = False  # shutting down: nothing new starts
        self._remote_dispatch: RemoteDispatch | None = None
        for account in accounts:
            self.add_account(account)

    # --- accounts -----------------------------------------------------------------------------

    def add_account(self, account: Account) -> None:
        slot = _Slot(account)
        self._slots[account.id] = slot
        account.add_listener(lambda st, slot=slot: self._on_account_state(slot, st))
        if self._started:
            slot.pump = asyncio.create_task(self._pump(slot), name=f"pump-{account.id}")

    def set_remote_dispatch(self, dispatch: RemoteDispatch) -> None:
        self._remote_dispatch = dispatch

    def add_remote(self, account: Account) -> list[Ticket]:
        """`account` (a stand-in whose status() is what the cluster last heard of it) is driven by
        another replica from now on. Returns the tickets that were queued on it here: their jobs
        are NOT_START in the store, pinned to this account, and its new holder takes them up."""
        dropped: list[Ticket] = []
        old = self._slots.get(account.id)
        if old is not None and not old.remote:
            dropped = list(old.queue)
            old.queue.clear()
            if old.pump is not None:
                old.pump.cancel()
        self._slots[account.id] = _Slot(account, remote=True)
        return dropped

    def is_remote(self, account_id: str | None) -> bool:
        slot = self._slots.get(account_id or "")
        return slot is not None and slot.remote

    def reported(self, account_id: str) -> None:
        """The holder of a remote account reported its load: hand-overs since are counted in it."""
        slot = self._slots.get(account_id)
        if slot is not None and slot.remote:
            slot.dispatched = 0

    def accounts(self) -> list[Account]:
        """The accounts this process drives (not those other replicas hold)."""
        return [s.account for s in self._slots.values() if not s.remote]

    def account(self, account_id: str) -> Account | None:
        """The account if this process drives it."""
        slot = self._slots.get(account_id)
        return slot.account if slot and not slot.remote else None

    def known(self, account_id: str) -> Account | None:
        """The account, driven here or by another replica (a stand-in that forwards pause and
        resume to its holder)."""
        slot = self._slots.get(account_id)
        return slot.account if slot else None

    def statuses(self) -> list[AccountStatus]:
        out = []
        for slot in self._slots.values():
            st = slot.status
            if not slot.remote:
                st = msgspec.structs.replace(st, running=len(slot.running), waiting=len(slot.queue))
            out.append(st)
        return out

    def queue_depth(self) -> int:
        return sum(len(s.queue) for s in self._slots.values())

    def any_ready(self) -> bool:
        return any(s.status.state is AccountState.READY for s in self._slots.values())

    def start(self) -> None:
        self._started = True
        for slot in self._slots.values():
            if slot.pump is None and not slot.remote:
                slot.pump = asyncio.create_task(self._pump(slot), name=f"pump-{slot.account.id}")

    def freeze(self) -> None:
        """Start no more tickets and stop moving them: the service is shutting down, and what is
        queued stays queued in the store for the next start."""
        self._frozen = True

    async def close(self) -> None:
        self._frozen = True
        self._closed = True
        tasks: list[asyncio.Task[None]] = []
        for slot in self._slots.values():
            if slot.pump:
                slot.pump.cancel()
                tasks.append(slot.pump)
        await asyncio.gather(*tasks, return_exceptions=True)

    # --- placement ----------------------------------------------------------------------------

    def place(self, ticket: Ticket) -> str:
        """Queue a ticket on the best account; returns its id or raises QueueFull /
        NoAccountAvailable. Never waits."""
        return self._enqueue(self._choose(ticket), ticket)

    def _enqueue(self, slot: _Slot, ticket: Ticket) -> str:
        if slot.remote:
            if self._remote_dispatch is None:
                raise NoAccountAvailable(f"Account {slot.account.id} is driven by another replica, and this one cannot hand jobs over.")
            slot.dispatched += 1
            self._remote_dispatch(slot.account.id, ticket)
            return slot.account.id
        slot.queue.append(ticket)
        slot.wake.set()
        return slot.account.id

    def enqueue_on(self, account_id: str, ticket: Ticket) -> str:
        """Queue a ticket on this account if this process drives it, else place it anew (a job
        handed over by another replica, or taken up after a lease changed hands)."""
        slot = self._slots.get(account_id)
        if slot is not None and not slot.remote and slot.status.state not in _GONE:
            return self._enqueue(slot, ticket)
        return self.place(ticket)

    def _choose(self, ticket: Ticket) -> _Slot:
        if ticket.pinned_account is not None:
            slot = self._slots.get(ticket.pinned_account)
            if slot is None:
                raise NoAccountAvailable("The account that made the parent job is no longer configured.")
            st = slot.status
            if st.state in _GONE:
                reason = f": {st.reason}" if st.reason else ""
                raise NoAccountAvailable(f"The account that made the parent job is {st.state.value}{reason}.", self._retry_after)
            if st.state in _COOLING:
                raise self._cooling_refusal([st], "The account that made the parent job")
            if not slot.has_room(st):
                raise QueueFull("The account that made the parent job has a full queue; try again shortly.", self._retry_after)
            return slot
        if not ticket.excluded:
            return self._choose_among(ticket, frozenset())
        # Avoid the accounts it was just refused on, but a ready one of those beats waiting on
        # one that is still connecting, and beats a refusal.
        try:
            other = self._choose_among(ticket, ticket.excluded)
        except EngineError:
            return self._choose_among(ticket, frozenset())
        if other.status.state is not AccountState.READY:
            with contextlib.suppress(EngineError):
                anyone = self._choose_among(ticket, frozenset())
                if anyone.status.state is AccountState.READY:
                    return anyone
        return other

    def _choose_among(self, ticket: Ticket, excluded: frozenset[str]) -> _Slot:
        serving = [(slot, slot.status) for slot in self._slots.values() if slot.account.id not in excluded]
        serving = [(slot, st) for slot, st in serving if ticket.mode in st.modes]
        if not serving:
            raise NoAccountAvailable(f"No account is configured for {ticket.mode.value} mode.", self._retry_after)
        ready = [(s, st) for s, st in serving if st.state is AccountState.READY]
        usable = ready or [(s, st) for s, st in serving if st.state in _TRANSIENT]
        if not usable:
            cooling = [st for _, st in serving if st.state in _COOLING]
            if cooling:
                raise self._cooling_refusal(cooling, f"Every account for {ticket.mode.value} mode")
            reasons = "; ".join(f"{s.account.id}: {st.state.value}" + (f" ({st.reason})" if st.reason else "") for s, st in serving)
            raise NoAccountAvailable(f"No Midjourney account can take jobs right now ({reasons}).", self._retry_after)
        with_room = [(s, st) for s, st in usable if s.has_room(st)]
        if not with_room:
            raise QueueFull("Every Midjourney account is busy and its queue is full; try again shortly.", self._retry_after)
        # least loaded relative to what the account can run at once; on a tie, one this process
        # drives (no hand-over)
        slot, _ = min(with_room, key=lambda pair: (pair[0].load / max(pair[1].concurrency, 1), pair[0].load, pair[0].remote))
        return slot

    def _cooling_refusal(self, cooling: list[AccountStatus], who: str) -> QueueFull:
        now_ms = time.time() * 1000
        untils = [st.until_ms for st in cooling if st.until_ms is not None]
        wait = max(1, math.ceil((min(untils) - now_ms) / 1000)) if untils else self._retry_after
        reasons = "; ".join(f"{st.id}: {st.reason or 'cooling down'}" for st in cooling)
        when = time.strftime("%H:%M UTC", time.gmtime(min(untils) / 1000)) if untils else f"in about {wait} s"
        code = "daily_cap_reached" if all("daily" in (st.reason or "") for st in cooling) else "account_cooling_down"
        return QueueFull(f"{who} cannot take jobs until {when} ({reasons}).", wait, code=code)

    def remove(self, job_id: str) -> bool:
        """Drop a queued (not yet started) ticket; True if it was queued."""
        for slot in self._slots.values():
            for t in slot.queue:
                if t.job_id == job_id:
                    slot.queue.remove(t)
                    return True
        return False

    def is_queued(self, job_id: str) -> bool:
        return any(t.job_id == job_id for s in self._slots.values() for t in s.queue)

    # --- running ------------------------------------------------------------------------------

    async def _pump(self, slot: _Slot) -> None:
        while not self._closed:
            await slot.wake.wait()
            slot.wake.clear()
            if self._frozen:
                continue
            st = slot.status
            while slot.queue and st.state is AccountState.READY and len(slot.running) < st.concurrency:
                ticket = slot.queue.popleft()
                task = asyncio.create_task(self._run(slot, ticket), name=f"job-{ticket.job_id}")
                slot.running[ticket.job_id] = task
                st = slot.status

    async def _run(self, slot: _Slot, ticket: Ticket) -> None:
        try:
            await ticket.run(slot.account)
        except asyncio.CancelledError:
            raise
        except Exception:  # the runner handles its own failures; this is a last resort
            log.exception("job %s crashed in its runner", ticket.job_id)
        finally:
            slot.running.pop(ticket.job_id, None)
            slot.wake.set()

    def _on_account_state(self, slot: _Slot, st: AccountStatus) -> None:
        if self._frozen or self._slots.get(slot.account.id) is not slot:
            return  # shutting down (queued jobs stay queued in the store), or no longer ours
        if st.state is AccountState.READY:
            slot.wake.set()
            # a ready account takes over what waits on accounts that are reconnecting
            for other in self._slots.values():
                if other is not slot and not other.remote and other.queue and other.status.state in _TRANSIENT:
                    asyncio.get_running_loop().call_soon(self._evacuate, other)
        elif st.state in _GONE | _COOLING | _TRANSIENT and slot.queue:
            # move on the next loop turn: listeners are called from inside the account
            asyncio.get_running_loop().call_soon(self._evacuate, slot)

    def _evacuate(self, slot: _Slot) -> None:
        if self._frozen or self._slots.get(slot.account.id) is not slot:
            return
        st = slot.status
        if st.state in _TRANSIENT:
            self._rebalance(slot)
            return
        if st.state not in _GONE | _COOLING:
            return
        moving = list(slot.queue)
        slot.queue.clear()
        for ticket in moving:
            if ticket.pinned_account is not None:
                reason = f" ({st.reason})" if st.reason else ""
                err: EngineError = NoAccountAvailable(f"The account that owns the parent job is {st.state.value}{reason}.")
                asyncio.create_task(ticket.orphaned(err))
                continue
            moved = msgspec.structs.replace(ticket, excluded=ticket.excluded | {slot.account.id})
            try:
                # never back onto the account it is leaving
                new_id = self._place_strict(moved)
                log.info("job %s moved from %s to %s (%s)", ticket.job_id, slot.account.id, new_id, st.state.value)
            except EngineError as exc:
                reason = f" ({st.reason})" if st.reason else ""
                err = NoAccountAvailable(
                    f"Account {slot.account.id} is {st.state.value}{reason} and no other account could take the job: {exc.message}"
                )
                asyncio.create_task(ticket.orphaned(err))

    def _place_strict(self, ticket: Ticket) -> str:
        return self._enqueue(self._choose_among(ticket, ticket.excluded), ticket)

    def _rebalance(self, slot: _Slot) -> None:
        """A reconnecting account's queue moves to accounts that are ready now (where there
        are none, it waits where it is: the account is expected back)."""
        keep: deque[Ticket] = deque()
        while slot.queue:
            ticket = slot.queue.popleft()
            if ticket.pinned_account is not None:
                keep.append(ticket)
                continue
            moved = msgspec.structs.replace(ticket, excluded=ticket.excluded | {slot.account.id})
            try:
                target = self._choose_among(moved, moved.excluded)
            except EngineError:
                target = None
            if target is None or target.status.state is not AccountState.READY:
                keep.append(ticket)
                continue
            self._enqueue(target, ticket)
            log.info("job %s moved from %s (%s) to %s", ticket.job_id, slot.account.id, slot.status.state.value, target.account.id)
        slot.queue.extend(keep)
