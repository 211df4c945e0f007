"""The scheduler with accounts other replicas drive: placement sees their reported load, a ticket
placed on one is handed over (not queued here), follow-ups pinned to one go to it, and an
account that changes hands gives back what was queued on it here."""

from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))
from fake_account import FakeAccount  # noqa: E402

from adapter.backends.base import AccountState  # noqa: E402
from adapter.domain.actions import Mode  # noqa: E402
from adapter.engine.scheduler import Scheduler, Ticket  # noqa: E402


async def _nothing(*_: object) -> None:
    return None


def ticket(job_id: str, pinned: str | None = None, mode: Mode = Mode.FAST) -> Ticket:
    return Ticket(job_id=job_id, mode=mode, pinned_account=pinned, run=_nothing, orphaned=_nothing)


def setup() -> tuple[Scheduler, FakeAccount, FakeAccount, list[tuple[str, str]]]:
    here, there = FakeAccount("here", concurrency=2, queue_size=2), FakeAccount("there", concurrency=2, queue_size=2)
    scheduler = Scheduler([here])
    handed: list[tuple[str, str]] = []
    scheduler.set_remote_dispatch(lambda account_id, t: handed.append((account_id, t.job_id)))
    assert scheduler.add_remote(there) == []
    return scheduler, here, there, handed


async def test_placement_spreads_over_local_and_remote_accounts() -> None:
    scheduler, here, there, handed = setup()
    # an even load: the account driven here wins (no hand-over)
    assert scheduler.place(ticket("j1")) == "here"
    assert scheduler.place(ticket("j2")) == "there"
    assert handed == [("there", "j2")]
    assert scheduler.is_queued("j1") and not scheduler.is_queued("j2")
    # a hand-over counts as load until the holder reports again
    assert scheduler.place(ticket("j3")) == "here"
    assert scheduler.place(ticket("j4")) == "there"
    scheduler.reported("there")  # its report now holds both (FakeAccount reports 0 running)
    assert scheduler.place(ticket("j5")) == "there"
    # who drives what
    assert scheduler.account("there") is None and scheduler.known("there") is there
    assert scheduler.is_remote("there") and not scheduler.is_remote("here")
    assert [a.id for a in scheduler.accounts()] == ["here"]
    assert {st.id for st in scheduler.statuses()} == {"here", "there"}


async def test_follow_ups_go_to_the_remote_account_of_their_parent() -> None:
    scheduler, _, _, handed = setup()
    assert scheduler.place(ticket("u1", pinned="there")) == "there"
    assert handed == [("there", "u1")]


async def test_an_account_that_changes_hands_gives_back_its_queue() -> None:
    scheduler, here, there, handed = setup()
    scheduler.place(ticket("j1"))
    scheduler.place(ticket("j2", pinned="here"))
    dropped = scheduler.add_remote(FakeAccount("here"))
    assert sorted(t.job_id for t in dropped) == ["j1", "j2"]
    assert not scheduler.is_queued("j1") and scheduler.accounts() == []
    # and back: driven here again, with an empty queue
    scheduler.add_account(here)
    assert scheduler.account("here") is here and scheduler.queue_depth() == 0
    # enqueue_on: queued on the account if driven here, else placed anew
    assert scheduler.enqueue_on("here", ticket("j3")) == "here"
    there.state = AccountState.READY
    assert scheduler.enqueue_on("there", ticket("j4")) == "there" and handed[-1] == ("there", "j4")
