"""The behaviour every JobStore must have, run against SQLite and Redis alike."""

from __future__ import annotations

import asyncio
import itertools

import msgspec
import pytest

from adapter.domain.actions import Action
from adapter.domain.jobs import Job, JobStatus
from adapter.stores.base import (
    UNFINISHED_STATUSES,
    DuplicateJob,
    DuplicateOutboxItem,
    DuplicateRequest,
    JobStore,
    OutboxItem,
)

T0 = 1_700_000_000_000
_ids = itertools.count(1)


def job(**kw: object) -> Job:
    fields: dict[str, object] = {"id": f"j{next(_ids):05d}", "owner": "alice", "action": Action.IMAGINE}
    fields.update(kw)
    return Job(**fields)  # type: ignore[arg-type]


def evolve(j: Job, **kw: object) -> Job:
    return msgspec.structs.replace(j, **kw)


def ids(jobs: list[Job]) -> list[str]:
    return [j.id for j in jobs]


# --- records ----------------------------------------------------------------------------------


async def test_full_job_round_trips(store: JobStore, full_job: Job) -> None:
    await store.insert(full_job)
    got = await store.get(full_job.id)
    assert got == full_job
    assert got is not None and got.buttons[1].emoji == "🔄" and got.images[1].content_type == "image/webp"
    assert isinstance(got.status, JobStatus) and isinstance(got.error_category, type(full_job.error_category))


async def test_minimal_job_keeps_defaults(store: JobStore) -> None:
    j = job(created_at=T0)
    await store.insert(j)
    assert await store.get(j.id) == j


async def test_get_missing_is_none(store: JobStore) -> None:
    assert await store.get("nope") is None


async def test_duplicate_id_is_refused_and_keeps_the_first(store: JobStore) -> None:
    first = job(id="same", prompt="first")
    await store.insert(first)
    with pytest.raises(DuplicateJob) as err:
        await store.insert(job(id="same", prompt="second"))
    assert err.value.job_id == "same"
    assert (await store.get("same")) == first
    assert await store.count_by_status() == {("NOT_START", "IMAGINE"): 1}


async def test_get_many_keeps_request_order_and_skips_missing(store: JobStore) -> None:
    a, b, c = job(), job(), job()
    for j in (a, b, c):
        await store.insert(j)
    assert ids(await store.get_many([c.id, "missing", a.id, b.id])) == [c.id, a.id, b.id]
    assert await store.get_many([]) == []


# --- update / compare-and-set -----------------------------------------------------------------


async def test_update_rewrites_whole_record(store: JobStore, full_job: Job) -> None:
    j = job(created_at=T0)
    await store.insert(j)
    changed = evolve(full_job, id=j.id)
    assert await store.update(changed) is True
    assert await store.get(j.id) == changed


async def test_update_of_missing_job_is_false_and_creates_nothing(store: JobStore) -> None:
    ghost = job(status=JobStatus.SUBMITTED)
    assert await store.update(ghost) is False
    assert await store.update(ghost, expect_status=JobStatus.NOT_START) is False
    assert await store.get(ghost.id) is None
    assert await store.count_by_status() == {}


async def test_cas_applies_only_on_matching_status(store: JobStore) -> None:
    j = job()
    await store.insert(j)
    submitted = evolve(j, status=JobStatus.SUBMITTED, attempts=1)
    assert await store.update(submitted, expect_status=JobStatus.NOT_START) is True
    # a second "submit" sees SUBMITTED, not NOT_START: refused, record untouched
    again = evolve(j, status=JobStatus.SUBMITTED, attempts=2)
    assert await store.update(again, expect_status=JobStatus.NOT_START) is False
    assert await store.get(j.id) == submitted


async def test_cas_on_any_of_several_statuses(store: JobStore) -> None:
    """The ending of a job is one CAS over every unfinished status: of two replicas ending the
    same job, only the first write lands."""
    j = evolve(job(), status=JobStatus.IN_PROGRESS)
    await store.insert(j)
    done = evolve(j, status=JobStatus.SUCCESS, progress=100)
    assert await store.update(done, expect_status=UNFINISHED_STATUSES) is True
    late = evolve(j, status=JobStatus.FAILURE, fail_reason="late")
    assert await store.update(late, expect_status=UNFINISHED_STATUSES) is False
    assert await store.update(late, expect_status=(JobStatus.NOT_START, JobStatus.MODAL)) is False
    assert await store.get(j.id) == done
    assert await store.update(late, expect_status={JobStatus.SUCCESS, JobStatus.CANCEL}) is True


async def test_cas_race_has_exactly_one_winner(store: JobStore, backend) -> None:
    j = job()
    await store.insert(j)
    other = backend.make()  # a second connection / replica on the same data
    await other.open()
    try:
        attempts = [
            (store if n % 2 else other).update(
                evolve(j, status=JobStatus.SUBMITTED, account_id=f"acct-{n}"), expect_status=JobStatus.NOT_START
            )
            for n in range(20)
        ]
        results = await asyncio.wait_for(asyncio.gather(*attempts), 30)
    finally:
        await other.close()
    assert results.count(True) == 1
    winner = results.index(True)
    stored = await store.get(j.id)
    assert stored is not None and stored.account_id == f"acct-{winner}"


async def test_update_moves_every_index(store: JobStore) -> None:
    j = job(message_id="m1", job_hash="h1", idempotency_key="k1", parent_id="p1", created_at=T0)
    await store.insert(j)
    moved = evolve(
        j,
        owner="bob",
        status=JobStatus.SUCCESS,
        action=Action.VARIATION,
        message_id="m2",
        job_hash="h2",
        idempotency_key="k2",
        parent_id="p2",
        extra={"fingerprint": "f2"},
    )
    assert await store.update(moved)
    assert await store.find_by_message("m1") is None
    assert await store.find_by_job_hash("h1") is None
    assert await store.find_by_idempotency("alice", "k1") is None
    assert await store.list_jobs(owner="alice") == []
    assert await store.list_jobs(parent_id="p1") == []
    assert await store.list_jobs(status=[JobStatus.NOT_START]) == []
    assert await store.list_jobs(action=Action.IMAGINE) == []
    assert await store.list_unfinished() == []
    assert await store.find_by_message("m2") == moved
    assert await store.find_by_job_hash("h2") == moved
    assert await store.find_by_idempotency("bob", "k2") == moved
    assert await store.find_by_fingerprint("bob", "f2", since_ms=0) == moved
    assert await store.list_jobs(owner="bob", status=JobStatus.SUCCESS, action=Action.VARIATION, parent_id="p2") == [
        moved
    ]
    assert await store.count_by_status() == {("SUCCESS", "VARIATION"): 1}


# --- lookups ----------------------------------------------------------------------------------


async def test_idempotency_is_per_owner_newest_first_with_cutoff(store: JobStore) -> None:
    old = job(owner="alice", idempotency_key="k", created_at=T0)
    new = job(owner="alice", idempotency_key="k", created_at=T0 + 1000)
    bobs = job(owner="bob", idempotency_key="k", created_at=T0 + 2000)
    for j in (old, new, bobs):
        await store.insert(j)
    assert await store.find_by_idempotency("alice", "k") == new
    assert await store.find_by_idempotency("bob", "k") == bobs
    assert await store.find_by_idempotency("carol", "k") is None
    assert await store.find_by_idempotency("alice", "other") is None
    assert await store.find_by_idempotency("alice", "k", since_ms=T0 + 1000) == new  # inclusive
    assert await store.find_by_idempotency("alice", "k", since_ms=T0 + 1001) is None
    assert await store.find_by_idempotency("alice", "") is None


async def test_owner_and_key_with_separators_do_not_collide(store: JobStore) -> None:
    a = job(owner="a:b", idempotency_key="c", extra={"fingerprint": "c"})
    await store.insert(a)
    assert await store.find_by_idempotency("a", "b:c") is None
    assert await store.find_by_fingerprint("a", "b:c", since_ms=0) is None
    assert await store.find_by_idempotency("a:b", "c") == a


async def test_fingerprint_lookup(store: JobStore) -> None:
    a = job(owner="alice", extra={"fingerprint": "fp"}, created_at=T0)
    b = job(owner="alice", extra={"fingerprint": "fp"}, created_at=T0 + 10)
    plain = job(owner="alice", created_at=T0 + 20)
    for j in (a, b, plain):
        await store.insert(j)
    assert await store.find_by_fingerprint("alice", "fp", since_ms=0) == b
    assert await store.find_by_fingerprint("alice", "fp", since_ms=T0 + 11) is None
    assert await store.find_by_fingerprint("bob", "fp", since_ms=0) is None
    assert await store.find_by_fingerprint("alice", "", since_ms=0) is None


async def test_message_and_job_hash_lookups(store: JobStore) -> None:
    grid = job(message_id="111", job_hash="hash-a", created_at=T0)
    other = job(message_id="222", job_hash="hash-b", created_at=T0 + 1)
    bare = job(message_id="", job_hash="", created_at=T0 + 2)
    for j in (grid, other, bare):
        await store.insert(j)
    assert await store.find_by_message("111") == grid
    assert await store.find_by_message("222") == other
    assert await store.find_by_message("333") is None
    assert await store.find_by_message("") is None
    assert await store.find_by_job_hash("hash-a") == grid
    assert await store.find_by_job_hash("hash-c") is None
    assert await store.find_by_job_hash("") is None


async def test_insert_with_idempotency_window_refuses_a_repeat(store: JobStore) -> None:
    first = job(idempotency_key="k", created_at=T0)
    await store.insert(first, idempotency_since_ms=T0 - 1000)
    repeat = job(idempotency_key="k", created_at=T0 + 5)
    with pytest.raises(DuplicateRequest) as err:
        await store.insert(repeat, idempotency_since_ms=T0 - 1000)
    assert err.value.existing == first and err.value.matched == "idempotency_key"
    assert await store.get(repeat.id) is None
    # outside the window (or without one) the key may be reused
    await store.insert(repeat, idempotency_since_ms=T0 + 1)
    assert await store.find_by_idempotency("alice", "k") == repeat
    # another owner's key is not a duplicate
    await store.insert(job(owner="bob", idempotency_key="k", created_at=T0 + 6), idempotency_since_ms=0)


async def test_insert_with_fingerprint_window_refuses_a_repeat(store: JobStore) -> None:
    first = job(extra={"fingerprint": "body-hash"}, created_at=T0)
    await store.insert(first, fingerprint_since_ms=0)
    with pytest.raises(DuplicateRequest) as err:
        await store.insert(job(extra={"fingerprint": "body-hash"}, created_at=T0 + 1), fingerprint_since_ms=T0)
    assert err.value.existing == first and err.value.matched == "fingerprint"
    # without a window the fingerprint is just recorded
    await store.insert(job(extra={"fingerprint": "body-hash"}, created_at=T0 + 2))


async def test_racing_retries_spend_one_job(store: JobStore, backend) -> None:
    other = backend.make()
    await other.open()
    try:

        async def attempt(n: int) -> str:
            candidate = job(idempotency_key="retry-me", created_at=T0 + n)
            try:
                await (store if n % 2 else other).insert(candidate, idempotency_since_ms=0)
                return candidate.id
            except DuplicateRequest as dup:
                return "dup:" + dup.existing.id

        outcomes = await asyncio.wait_for(asyncio.gather(*(attempt(n) for n in range(20))), 30)
    finally:
        await other.close()
    winners = [o for o in outcomes if not o.startswith("dup:")]
    assert len(winners) == 1
    assert all(o == winners[0] or o == "dup:" + winners[0] for o in outcomes)
    assert len(await store.list_jobs(owner="alice")) == 1


# --- listing ----------------------------------------------------------------------------------


async def test_list_unfinished_is_oldest_first_and_excludes_finished(store: JobStore) -> None:
    made = {}
    for n, status in enumerate(JobStatus):
        made[status] = job(status=status, created_at=T0 + 100 - n)  # later enum -> older
        await store.insert(made[status])
    got = await store.list_unfinished()
    expected = sorted((made[s] for s in JobStatus if not s.finished), key=lambda j: j.created_at)
    assert got == expected
    assert {j.status for j in got} == {
        JobStatus.NOT_START,
        JobStatus.SUBMITTED,
        JobStatus.IN_PROGRESS,
        JobStatus.MODAL,
    }


async def test_list_jobs_newest_first_with_filters(store: JobStore) -> None:
    a1 = job(id="a1", owner="alice", created_at=T0 + 1, status=JobStatus.SUCCESS)
    a2 = job(id="a2", owner="alice", created_at=T0 + 2, action=Action.UPSCALE, parent_id="a1")
    a3 = job(id="a3", owner="alice", created_at=T0 + 3, status=JobStatus.FAILURE, action=Action.UPSCALE)
    b1 = job(id="b1", owner="bob", created_at=T0 + 4, status=JobStatus.SUCCESS, parent_id="a1")
    for j in (a2, b1, a1, a3):
        await store.insert(j)
    assert ids(await store.list_jobs()) == ["b1", "a3", "a2", "a1"]
    assert ids(await store.list_jobs(owner="alice")) == ["a3", "a2", "a1"]
    assert ids(await store.list_jobs(owner="nobody")) == []
    assert ids(await store.list_jobs(status=[JobStatus.SUCCESS])) == ["b1", "a1"]
    assert ids(await store.list_jobs(status=JobStatus.SUCCESS)) == ["b1", "a1"]
    assert ids(await store.list_jobs(status=[JobStatus.SUCCESS, JobStatus.FAILURE])) == ["b1", "a3", "a1"]
    assert ids(await store.list_jobs(status=[])) == []
    assert ids(await store.list_jobs(action=Action.UPSCALE)) == ["a3", "a2"]
    assert ids(await store.list_jobs(action=[Action.UPSCALE, Action.IMAGINE], limit=3)) == ["b1", "a3", "a2"]
    assert ids(await store.list_jobs(owner="alice", status=[JobStatus.SUCCESS])) == ["a1"]
    assert ids(await store.list_jobs(owner="alice", action=Action.UPSCALE, status=[JobStatus.NOT_START])) == ["a2"]
    assert ids(await store.list_jobs(parent_id="a1")) == ["b1", "a2"]
    assert ids(await store.list_jobs(parent_id="a1", owner="bob")) == ["b1"]
    assert ids(await store.list_jobs(limit=2)) == ["b1", "a3"]
    assert ids(await store.list_jobs(limit=0)) == []
    # before_ms is exclusive: the created_at of a page's last job fetches the next page
    assert ids(await store.list_jobs(before_ms=T0 + 3)) == ["a2", "a1"]
    assert ids(await store.list_jobs(owner="alice", before_ms=T0 + 2, status=[JobStatus.SUCCESS])) == ["a1"]


async def test_list_jobs_breaks_created_at_ties_by_id(store: JobStore) -> None:
    for jid in ("t-b", "t-c", "t-a"):
        await store.insert(job(id=jid, created_at=T0))
    await store.insert(job(id="t-0", created_at=T0 + 1))
    assert ids(await store.list_jobs()) == ["t-0", "t-c", "t-b", "t-a"]
    assert ids(await store.list_jobs(status=[JobStatus.NOT_START], limit=3)) == ["t-0", "t-c", "t-b"]


async def test_list_jobs_finds_sparse_matches_deep_in_an_index(store: JobStore) -> None:
    # 300 of alice's jobs, only the three oldest failed: the filter must look past the first pages
    jobs = [
        job(id=f"deep{n:03d}", created_at=T0 + n, status=JobStatus.FAILURE if n < 3 else JobStatus.SUCCESS)
        for n in range(300)
    ]
    await asyncio.gather(*(store.insert(j) for j in jobs))
    got = await store.list_jobs(owner="alice", status=[JobStatus.FAILURE], limit=10)
    assert ids(got) == ["deep002", "deep001", "deep000"]
    page = await store.list_jobs(owner="alice", limit=120)
    assert ids(page) == [f"deep{n:03d}" for n in range(299, 179, -1)]


async def test_count_by_status(store: JobStore) -> None:
    a = job(status=JobStatus.SUCCESS)
    await store.insert(a)
    await store.insert(job(status=JobStatus.SUCCESS))
    await store.insert(job(status=JobStatus.SUCCESS, action=Action.UPSCALE))
    await store.insert(job())
    assert await store.count_by_status() == {
        ("SUCCESS", "IMAGINE"): 2,
        ("SUCCESS", "UPSCALE"): 1,
        ("NOT_START", "IMAGINE"): 1,
    }
    await store.update(evolve(a, status=JobStatus.CANCEL))
    assert await store.count_by_status() == {
        ("SUCCESS", "IMAGINE"): 1,
        ("CANCEL", "IMAGINE"): 1,
        ("SUCCESS", "UPSCALE"): 1,
        ("NOT_START", "IMAGINE"): 1,
    }


async def test_concurrent_inserts_from_many_tasks(store: JobStore) -> None:
    jobs = [job(owner=f"o{n % 5}", created_at=T0 + n, idempotency_key=f"k{n}") for n in range(200)]
    await asyncio.wait_for(asyncio.gather(*(store.insert(j) for j in jobs)), 60)
    stored = await store.get_many([j.id for j in jobs])
    assert stored == jobs
    assert await store.count_by_status() == {("NOT_START", "IMAGINE"): 200}
    assert len(await store.list_jobs(owner="o3", limit=1000)) == 40
    assert await store.find_by_idempotency("o4", "k199") == jobs[199]


# --- durability across re-open ----------------------------------------------------------------


async def test_data_survives_close_and_reopen(backend, full_job: Job) -> None:
    first = backend.make()
    await first.open()
    await first.insert(full_job)
    j = job(created_at=T0)
    await first.insert(j)
    await first.update(evolve(j, status=JobStatus.IN_PROGRESS, progress=40))
    item = OutboxItem(id="o1", job_id=j.id, url="https://h.invalid", seq=1, body=b"{}", created_ms=T0, next_attempt_ms=T0)
    await first.outbox_add(item)
    await first.close()

    second = backend.make()
    await second.open()
    try:
        assert await second.get(full_job.id) == full_job
        assert (await second.get(j.id)) == evolve(j, status=JobStatus.IN_PROGRESS, progress=40)
        assert ids(await second.list_unfinished()) == [j.id]
        assert await second.find_by_message(full_job.message_id or "") == full_job
        assert await second.outbox_due(T0) == [item]
    finally:
        await second.close()


async def test_close_is_idempotent_and_calls_after_close_fail(backend) -> None:
    from adapter.stores.base import StoreUnavailable

    s = backend.make()
    await s.open()
    await s.close()
    await s.close()
    with pytest.raises(StoreUnavailable):
        await s.get("x")


# --- webhook outbox ---------------------------------------------------------------------------


def item(job_id: str = "j", seq: int = 1, *, url: str = "https://hook.invalid/a", due: int = T0, **kw: object) -> OutboxItem:
    fields: dict[str, object] = {
        "id": f"{job_id}-{url[-1]}-{seq}",
        "job_id": job_id,
        "url": url,
        "seq": seq,
        "body": b'{"seq": %d}' % seq,
        "created_ms": T0,
        "next_attempt_ms": due,
    }
    fields.update(kw)
    return OutboxItem(**fields)  # type: ignore[arg-type]


async def test_outbox_add_get_and_duplicate(store: JobStore) -> None:
    it = item(body=b"\x00\xffbinary", last_error=None)
    await store.outbox_add(it)
    assert await store.outbox_get(it.id) == it
    assert await store.outbox_get("missing") is None
    with pytest.raises(DuplicateOutboxItem):
        await store.outbox_add(msgspec.structs.replace(it, seq=9))
    assert await store.outbox_get(it.id) == it


async def test_outbox_due_selects_by_time_in_order(store: JobStore) -> None:
    later = item("j1", due=T0 + 50)
    soon = item("j2", due=T0 + 10)
    now_ = item("j3", due=T0)
    future = item("j4", due=T0 + 1000)
    for it in (later, future, soon, now_):
        await store.outbox_add(it)
    assert await store.outbox_due(T0 - 1) == []
    assert await store.outbox_due(T0 + 50) == [now_, soon, later]
    assert await store.outbox_due(T0 + 50, limit=2) == [now_, soon]
    assert await store.outbox_due(T0 + 50, limit=0) == []


async def test_outbox_keeps_each_jobs_events_in_order(store: JobStore) -> None:
    first = item("j", 1, due=T0 + 100)  # being retried with backoff
    second = item("j", 2, due=T0)
    third = item("j", 3, due=T0)
    elsewhere = item("j", 2, url="https://hook.invalid/b", due=T0)  # another receiver: independent
    for it in (third, second, first, elsewhere):
        await store.outbox_add(it)
    assert await store.outbox_due(T0) == [elsewhere]
    assert await store.outbox_due(T0 + 100) == [elsewhere, first]  # by next_attempt_ms

    delivered = msgspec.structs.replace(first, state="done", attempts=2)
    await store.outbox_update(delivered)
    assert await store.outbox_get(first.id) == delivered
    assert await store.outbox_due(T0) == [second, elsewhere]

    dead = msgspec.structs.replace(second, state="dead", attempts=8, last_error="HTTP 500")
    await store.outbox_update(dead)
    assert await store.outbox_due(T0) == [third, elsewhere]

    await store.outbox_delete(third.id)
    await store.outbox_delete(elsewhere.id)
    assert await store.outbox_due(T0 + 10_000) == []
    assert await store.outbox_get(third.id) is None


async def test_outbox_retry_reschedules(store: JobStore) -> None:
    it = item("j", 1, due=T0)
    await store.outbox_add(it)
    retry = msgspec.structs.replace(it, attempts=1, next_attempt_ms=T0 + 500, last_error="timeout")
    await store.outbox_update(retry)
    assert await store.outbox_due(T0 + 499) == []
    assert await store.outbox_due(T0 + 500) == [retry]
    # a finished item can be put back to pending (manual redelivery)
    done = msgspec.structs.replace(retry, state="done")
    await store.outbox_update(done)
    assert await store.outbox_due(T0 + 10_000) == []
    await store.outbox_update(msgspec.structs.replace(done, state="pending"))
    assert await store.outbox_due(T0 + 10_000) == [msgspec.structs.replace(done, state="pending")]


async def test_outbox_update_of_deleted_item_writes_nothing(store: JobStore) -> None:
    it = item()
    await store.outbox_add(it)
    await store.outbox_delete(it.id)
    await store.outbox_update(msgspec.structs.replace(it, attempts=3))
    assert await store.outbox_get(it.id) is None
    assert await store.outbox_due(T0 + 10_000) == []
    await store.outbox_delete("never-existed")


async def test_outbox_blocked_items_do_not_hide_later_heads(store: JobStore) -> None:
    # 250 queued events of one job behind a head that is not due yet, then a due head elsewhere
    await store.outbox_add(item("busy", 0, due=T0 + 10_000))
    await asyncio.gather(*(store.outbox_add(item("busy", n, due=T0)) for n in range(1, 251)))
    ready = item("calm", 1, due=T0 + 1)
    await store.outbox_add(ready)
    assert await store.outbox_due(T0 + 1, limit=5) == [ready]



# --- outbox claims (one replica per delivery attempt) -----------------------------------------


async def test_outbox_claim_takes_a_due_head_and_hides_it_until_the_claim_ends(store: JobStore) -> None:
    it = item("c", 1, due=T0)
    await store.outbox_add(it)
    claimed = await store.outbox_claim(it.id, "replica-a", T0 + 5_000, T0)
    expected = msgspec.structs.replace(it, claimed_by="replica-a", claimed_until_ms=T0 + 5_000, next_attempt_ms=T0 + 5_000)
    assert claimed == expected
    assert await store.outbox_get(it.id) == expected
    # a claimed item is not due to anybody (its owner included) while the claim holds...
    assert await store.outbox_due(T0 + 4_999) == []
    # ...and cannot be claimed again, by another owner or the same one
    assert await store.outbox_claim(it.id, "replica-b", T0 + 9_000, T0 + 4_999) is None
    assert await store.outbox_claim(it.id, "replica-a", T0 + 9_000, T0 + 4_999) is None
    assert await store.outbox_get(it.id) == expected
    # at its end (the owner died without an outcome) the item is due again, and can be taken over
    assert await store.outbox_due(T0 + 5_000) == [expected]
    taken = await store.outbox_claim(it.id, "replica-b", T0 + 10_000, T0 + 5_000)
    assert taken is not None and taken.claimed_by == "replica-b" and taken.claimed_until_ms == T0 + 10_000
    assert await store.outbox_due(T0 + 9_999) == []


async def test_outbox_claim_refuses_what_is_not_due_pending_or_a_head(store: JobStore) -> None:
    first, second = item("q", 1, due=T0), item("q", 2, due=T0)
    later = item("l", 1, due=T0 + 1_000)
    await store.outbox_add(first)
    await store.outbox_add(second)
    await store.outbox_add(later)
    assert await store.outbox_claim("missing", "a", T0 + 5_000, T0) is None
    assert await store.outbox_claim(later.id, "a", T0 + 5_000, T0) is None  # not due yet
    assert await store.outbox_claim(second.id, "a", T0 + 5_000, T0) is None  # behind first
    # the head, claimed, still blocks its queue: neither due nor claimable behind it
    assert await store.outbox_claim(first.id, "a", T0 + 5_000, T0) is not None
    assert await store.outbox_due(T0 + 1_000) == [later]
    assert await store.outbox_claim(second.id, "b", T0 + 5_000, T0 + 1_000) is None
    # once the head is delivered, the next one is the head
    await store.outbox_delete(first.id)
    assert await store.outbox_claim(second.id, "b", T0 + 5_000, T0 + 1_000) is not None
    dead = msgspec.structs.replace(later, state="dead")
    await store.outbox_update(dead)
    assert await store.outbox_claim(later.id, "a", T0 + 9_000, T0 + 2_000) is None  # not pending
    assert await store.outbox_get(later.id) == dead


async def test_outbox_claim_race_has_exactly_one_winner(store: JobStore, backend) -> None:
    it = item("race", 1, due=T0)
    await store.outbox_add(it)
    other = backend.make()  # a second connection / replica on the same data
    await other.open()
    try:
        claims = [
            (store if n % 2 else other).outbox_claim(it.id, f"replica-{n}", T0 + 60_000, T0) for n in range(20)
        ]
        results = await asyncio.wait_for(asyncio.gather(*claims), 30)
    finally:
        await other.close()
    winners = [r for r in results if r is not None]
    assert len(winners) == 1
    stored = await store.outbox_get(it.id)
    assert stored == winners[0] and stored.claimed_by == f"replica-{results.index(winners[0])}"


async def test_outbox_update_with_expect_owner_respects_the_claim(store: JobStore) -> None:
    it = item("u", 1, due=T0)
    await store.outbox_add(it)
    a = await store.outbox_claim(it.id, "replica-a", T0 + 1_000, T0)
    assert a is not None
    # a's claim expires, b takes the item over; a's late outcome must not overwrite b's claim
    b = await store.outbox_claim(it.id, "replica-b", T0 + 3_000, T0 + 1_000)
    assert b is not None
    late = msgspec.structs.replace(a, attempts=1, next_attempt_ms=T0 + 1_500, claimed_by=None, claimed_until_ms=0)
    assert await store.outbox_update(late, expect_owner="replica-a") is False
    assert await store.outbox_get(it.id) == b
    assert await store.outbox_due(T0 + 2_999) == []
    # b records its failure and releases the claim: due again at its retry time
    retry = msgspec.structs.replace(b, attempts=1, last_error="HTTP 500", next_attempt_ms=T0 + 4_000, claimed_by=None, claimed_until_ms=0)
    assert await store.outbox_update(retry, expect_owner="replica-b") is True
    assert await store.outbox_get(it.id) == retry
    assert await store.outbox_due(T0 + 4_000) == [retry]
    # released: nobody holds it, so an update expecting an owner is refused; a plain one is not
    assert await store.outbox_update(retry, expect_owner="replica-b") is False
    assert await store.outbox_update(msgspec.structs.replace(retry, attempts=2)) is True
    # a missing item stays missing either way
    await store.outbox_delete(it.id)
    assert await store.outbox_update(retry) is False
    assert await store.outbox_update(retry, expect_owner="replica-b") is False
    assert await store.outbox_get(it.id) is None


async def test_outbox_delete_ends_a_claim(store: JobStore) -> None:
    first, second = item("d", 1, due=T0), item("d", 2, due=T0)
    await store.outbox_add(first)
    await store.outbox_add(second)
    assert await store.outbox_claim(first.id, "replica-a", T0 + 60_000, T0) is not None
    await store.outbox_delete(first.id)
    assert await store.outbox_get(first.id) is None
    assert await store.outbox_due(T0) == [second]


# --- retention --------------------------------------------------------------------------------


async def test_list_expired_is_finished_jobs_oldest_first_before_the_cutoff(store: JobStore) -> None:
    done = job(id="x-done", status=JobStatus.SUCCESS, created_at=T0, finished_at=T0 + 300)
    failed = job(id="x-failed", status=JobStatus.FAILURE, created_at=T0 + 50, finished_at=T0 + 100)
    cancelled = job(id="x-cancel", status=JobStatus.CANCEL, created_at=T0 + 60, finished_at=T0 + 200)
    tie = job(id="x-0tie", status=JobStatus.SUCCESS, created_at=T0 + 70, finished_at=T0 + 200)
    # a finished record without finished_at counts as finished when it was created
    undated = job(id="x-undated", status=JobStatus.SUCCESS, created_at=T0 + 150)
    recent = job(id="x-recent", status=JobStatus.SUCCESS, created_at=T0, finished_at=T0 + 5000)
    unfinished = [
        job(id=f"x-open-{s.value}", status=s, created_at=T0 - 1000, finished_at=T0)  # finished_at lies
        for s in JobStatus
        if not s.finished
    ]
    for j in (done, failed, cancelled, tie, undated, recent, *unfinished):
        await store.insert(j)

    assert await store.list_expired(T0 + 1000, 100) == ["x-failed", "x-undated", "x-0tie", "x-cancel", "x-done"]
    assert await store.list_expired(T0 + 1000, 2) == ["x-failed", "x-undated"]
    assert await store.list_expired(T0 + 300, 100) == ["x-failed", "x-undated", "x-0tie", "x-cancel"]  # exclusive
    assert await store.list_expired(T0 + 100, 100) == []
    assert await store.list_expired(T0 + 10_000, 0) == []
    listed = await store.list_expired(2**62, 100)
    assert listed[-1] == "x-recent" and not any(i.startswith("x-open-") for i in listed)


async def test_list_expired_follows_updates(store: JobStore) -> None:
    j = job(status=JobStatus.IN_PROGRESS, created_at=T0)
    await store.insert(j)
    assert await store.list_expired(2**62, 10) == []
    finished = evolve(j, status=JobStatus.SUCCESS, finished_at=T0 + 100)
    await store.update(finished)
    assert await store.list_expired(T0 + 101, 10) == [j.id]
    await store.update(evolve(finished, finished_at=T0 + 500))  # finish time moved: so does expiry
    assert await store.list_expired(T0 + 101, 10) == []
    assert await store.list_expired(T0 + 501, 10) == [j.id]
    await store.update(evolve(finished, status=JobStatus.IN_PROGRESS))  # not finished any more
    assert await store.list_expired(2**62, 10) == []


async def test_delete_jobs_removes_every_trace(store: JobStore) -> None:
    gone = job(
        id="gone-1",
        owner="alice",
        status=JobStatus.SUCCESS,
        action=Action.UPSCALE,
        created_at=T0,
        finished_at=T0 + 10,
        message_id="msg-1",
        job_hash="hash-1",
        idempotency_key="idem-1",
        parent_id="parent-1",
        extra={"fingerprint": "fp-1"},
    )
    gone2 = job(id="gone-2", owner="alice", status=JobStatus.FAILURE, created_at=T0 + 1, finished_at=T0 + 11)
    kept = job(id="kept-1", owner="alice", status=JobStatus.SUCCESS, created_at=T0 + 2, finished_at=T0 + 12, parent_id="parent-1")
    for j in (gone, gone2, kept):
        await store.insert(j)
    items = [
        item("gone-1", 1),
        item("gone-1", 2, state="done"),
        item("gone-1", 3, state="dead"),
        item("gone-2", 1, url="https://hook.invalid/b"),
        item("kept-1", 1),
    ]
    for it in items:
        await store.outbox_add(it)

    assert await store.delete_jobs(["gone-1", "missing", "gone-2", "gone-1"]) == 2

    assert await store.get("gone-1") is None and await store.get("gone-2") is None
    assert await store.get_many(["gone-1", "kept-1", "gone-2"]) == [kept]
    assert ids(await store.list_jobs()) == ["kept-1"]
    assert ids(await store.list_jobs(owner="alice")) == ["kept-1"]
    assert ids(await store.list_jobs(status=[JobStatus.SUCCESS, JobStatus.FAILURE])) == ["kept-1"]
    assert await store.list_jobs(action=Action.UPSCALE) == []
    assert ids(await store.list_jobs(parent_id="parent-1")) == ["kept-1"]
    assert await store.find_by_message("msg-1") is None
    assert await store.find_by_job_hash("hash-1") is None
    assert await store.find_by_idempotency("alice", "idem-1") is None
    assert await store.find_by_fingerprint("alice", "fp-1", since_ms=0) is None
    assert await store.count_by_status() == {("SUCCESS", "IMAGINE"): 1}
    assert await store.list_expired(2**62, 10) == ["kept-1"]
    for it in items[:4]:
        assert await store.outbox_get(it.id) is None
    assert await store.outbox_get(items[4].id) == items[4]
    assert await store.outbox_due(T0 + 10_000) == [items[4]]

    # nothing is left behind: an update does not revive the job, the id and keys are free again
    assert await store.update(evolve(gone, progress=7)) is False
    assert await store.get("gone-1") is None
    await store.insert(gone, idempotency_since_ms=0, fingerprint_since_ms=0)
    assert await store.find_by_message("msg-1") == gone
    assert await store.count_by_status() == {("SUCCESS", "IMAGINE"): 1, ("SUCCESS", "UPSCALE"): 1}


async def test_delete_jobs_of_nothing(store: JobStore) -> None:
    await store.insert(job())
    assert await store.delete_jobs([]) == 0
    assert await store.delete_jobs(["missing"]) == 0
    assert len(await store.list_jobs()) == 1


async def test_delete_jobs_in_bulk_and_from_two_replicas_at_once(store: JobStore, backend) -> None:
    jobs = [job(id=f"bulk{n:04d}", status=JobStatus.SUCCESS, created_at=T0 + n, finished_at=T0 + n) for n in range(700)]
    await asyncio.gather(*(store.insert(j) for j in jobs))
    await asyncio.gather(*(store.outbox_add(item(j.id, 1, state="dead")) for j in jobs[:50]))
    expired = await store.list_expired(T0 + 700, 1000)
    assert expired == [j.id for j in jobs]
    other = backend.make()
    await other.open()
    try:
        # both replicas sweep the same ids: each job is deleted (and counted) exactly once
        counts = await asyncio.wait_for(asyncio.gather(store.delete_jobs(expired), other.delete_jobs(expired[::-1])), 30)
    finally:
        await other.close()
    assert sum(counts) == 700
    assert await store.list_jobs(limit=1000) == []
    assert await store.count_by_status() == {}
    assert await store.list_expired(2**62, 10) == []
    assert await store.outbox_purge(2**62) == 0


async def test_outbox_purge_drops_only_old_done_and_dead_items(store: JobStore) -> None:
    old_done = item("a", 1, state="done", created_ms=T0)
    old_dead = item("b", 1, state="dead", created_ms=T0 + 10)
    old_pending = item("c", 1, created_ms=T0 - 10_000_000)  # however old: still to be delivered
    at_cutoff = item("d", 1, state="dead", created_ms=T0 + 100)
    new_done = item("e", 1, state="done", created_ms=T0 + 500)
    revived = item("f", 1, state="dead", created_ms=T0)
    for it in (old_done, old_dead, old_pending, at_cutoff, new_done, revived):
        await store.outbox_add(it)
    await store.outbox_update(msgspec.structs.replace(revived, state="pending"))  # manual redelivery

    assert await store.outbox_purge(T0 + 100) == 2
    assert await store.outbox_get(old_done.id) is None and await store.outbox_get(old_dead.id) is None
    for kept in (old_pending, at_cutoff, new_done):
        assert await store.outbox_get(kept.id) == kept
    assert await store.outbox_due(T0 + 10_000) == [old_pending, msgspec.structs.replace(revived, state="pending")]
    assert await store.outbox_purge(T0 + 100) == 0

    # an item that ends after it was created is purged by when it was created
    await store.outbox_update(msgspec.structs.replace(old_pending, state="dead", attempts=9))
    assert await store.outbox_purge(T0) == 1
    assert await store.outbox_purge(2**62) == 2  # at_cutoff and new_done; revived is pending
    assert await store.outbox_get(revived.id) is not None


async def test_outbox_purge_in_bulk(store: JobStore) -> None:
    await asyncio.gather(*(store.outbox_add(item(f"p{n}", 1, state="dead")) for n in range(1100)))
    await store.outbox_add(item("live", 1))
    assert await store.outbox_purge(T0 + 1) == 1100
    assert await store.outbox_due(T0 + 10_000) == [item("live", 1)]
