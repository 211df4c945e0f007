"""The job store contract: what the engine may ask of durable storage, whatever holds it.

Every implementation (SQLite embedded, Redis for replicas) is held to the same behavioural test
suite (tests/stores/test_store_contract.py), so the engine can treat them as interchangeable.

Semantics shared by all implementations:
- A job is stored whole (msgspec-encoded) next to a few indexed copies of its fields; `update`
  rewrites the whole record and moves every index with it.
- "Newest first" means `created_at` descending, ties broken by `id` descending (byte order).
- `since_ms` / `before_ms` cut-offs compare against `created_at`: `since` is inclusive,
  `before` is exclusive (so a page's last `created_at` can be passed as the next `before_ms`).
- An empty string in an optional indexed field (idempotency key, fingerprint, message id, job
  hash, parent id) is treated as absent: it is never indexed and never matches.
"""

from __future__ import annotations

from collections.abc import Collection, Sequence
from typing import Literal, Protocol, runtime_checkable

import msgspec

from adapter.domain.actions import Action
from adapter.domain.jobs import Job, JobStatus

# Where a request body's hash lives on a job (set by the engine; indexed by the store).
FINGERPRINT_KEY = "fingerprint"

UNFINISHED_STATUSES: tuple[JobStatus, ...] = tuple(s for s in JobStatus if not s.finished)
FINISHED_STATUSES: tuple[JobStatus, ...] = tuple(s for s in JobStatus if s.finished)



# what update(expect_status=...) takes: one status, several (any of them), or None (no check)
ExpectStatus = JobStatus | Collection[JobStatus] | None


def expected_values(expect: ExpectStatus) -> list[str]:
    """The stored status values an update may replace ([] = no check)."""
    if expect is None:
        return []
    if isinstance(expect, JobStatus):
        return [expect.value]
    return sorted({JobStatus(s).value for s in expect})

class StoreError(Exception):
    """Anything the store cannot do; the engine maps it to a 5xx."""


class StoreUnavailable(StoreError):
    """The backing database cannot be reached (or is not open): worth retrying later."""


class DuplicateJob(StoreError):
    """`insert` of a job whose id is already stored."""

    def __init__(self, job_id: str) -> None:
        super().__init__(f"job {job_id!r} already exists")
        self.job_id = job_id


class DuplicateRequest(StoreError):
    """`insert` refused because an earlier job of the same owner carries the same idempotency
    key or request fingerprint inside the window the caller gave. `existing` is that job, so the
    caller can attach to it instead of spending another Midjourney job."""

    def __init__(self, existing: Job, *, matched: Literal["idempotency_key", "fingerprint"]) -> None:
        super().__init__(f"request matches existing job {existing.id!r} by {matched}")
        self.existing = existing
        self.matched = matched


class DuplicateOutboxItem(StoreError):
    def __init__(self, item_id: str) -> None:
        super().__init__(f"outbox item {item_id!r} already exists")
        self.item_id = item_id


OutboxState = Literal["pending", "done", "dead"]


class OutboxItem(msgspec.Struct, kw_only=True):
    """One webhook delivery waiting to happen (or kept as a record after it did).

    `seq` orders the events of one job: for a given (job_id, url) the store hands out only the
    pending item with the lowest seq, so a receiver never sees "completed" before "progress"
    even when an earlier delivery is being retried with backoff. Items that are done or dead no
    longer hold the queue back.

    `claimed_by` / `claimed_until_ms`: the replica that holds the item for one delivery attempt
    and until when (see `JobStore.outbox_claim`); None / 0 when nobody does.
    """

    id: str
    job_id: str
    url: str
    seq: int
    body: bytes
    created_ms: int
    next_attempt_ms: int
    attempts: int = 0
    last_error: str | None = None
    state: OutboxState = "pending"
    claimed_by: str | None = None
    claimed_until_ms: int = 0


StatusFilter = JobStatus | Sequence[JobStatus] | None
ActionFilter = Action | Sequence[Action] | None


@runtime_checkable
class JobStore(Protocol):
    async def open(self) -> None:
        """Connect / create schema. Must be awaited before any other call."""

    async def close(self) -> None:
        """Release connections. Idempotent."""

    async def __aenter__(self) -> JobStore:
        """`async with open_store(url) as store:` opens, and closes on the way out."""

    async def __aexit__(self, *exc: object) -> None: ...

    async def insert(
        self,
        job: Job,
        *,
        idempotency_since_ms: int | None = None,
        fingerprint_since_ms: int | None = None,
    ) -> None:
        """Store a new job; durable when this returns. Raises DuplicateJob on an id clash.

        With `idempotency_since_ms` (and a job.idempotency_key) or `fingerprint_since_ms` (and a
        job.extra["fingerprint"]), the check for an earlier job of the same owner with that key /
        fingerprint created at or after the cut-off and the insert are one atomic step; a match
        raises DuplicateRequest(existing) and nothing is written. This is what keeps two racing
        retries from spending two Midjourney jobs.
        """

    async def update(self, job: Job, *, expect_status: ExpectStatus = None) -> bool:
        """Rewrite a stored job whole. With `expect_status` (one status or several), only if the
        stored status is that, or one of those (compare-and-set). False when the job does not
        exist or the status did not match."""

    async def get(self, job_id: str) -> Job | None: ...

    def cached_finished(self, job_id: str) -> bytes | None:
        """A finished job's stored form (`codec.encode_job`), when this process holds it and knows
        it to be current without asking the database; None otherwise (and always for a store
        that keeps no such copy). No I/O: for callers that must tell at once whether a finished
        job is still exactly what they saw."""

    def cached_finished_by_key(self, owner: str, key: str) -> bytes | None:
        """As `cached_finished`, for the job `find_by_idempotency(owner, key)` would answer."""

    async def get_many(self, ids: Sequence[str]) -> list[Job]:
        """The jobs that exist, in the order of `ids` (missing ids are skipped)."""

    async def find_by_idempotency(self, owner: str, key: str, *, since_ms: int | None = None) -> Job | None:
        """The newest job of `owner` with this idempotency key (created at or after since_ms)."""

    async def find_by_fingerprint(self, owner: str, fingerprint: str, *, since_ms: int) -> Job | None:
        """The newest job of `owner` whose extra["fingerprint"] is this, created >= since_ms."""

    async def find_by_message(self, message_id: str) -> Job | None:
        """The (newest) job whose result message is this Discord message id."""

    async def find_by_job_hash(self, job_hash: str) -> Job | None:
        """The (newest) job with this Midjourney job hash."""

    async def list_unfinished(self) -> list[Job]:
        """Jobs not in SUCCESS/FAILURE/CANCEL, oldest first (so recovery re-queues in order)."""

    async def list_jobs(
        self,
        *,
        owner: str | None = None,
        status: StatusFilter = None,
        action: ActionFilter = None,
        parent_id: str | None = None,
        limit: int = 100,
        before_ms: int | None = None,
    ) -> list[Job]:
        """Newest first; every filter given must hold; `before_ms` is exclusive."""

    async def count_by_status(self) -> dict[tuple[str, str], int]:
        """(status value, action value) -> number of jobs; pairs with no jobs are omitted."""

    async def list_expired(self, finished_before_ms: int, limit: int) -> list[str]:
        """Ids of finished jobs (SUCCESS/FAILURE/CANCEL) that finished before the cut-off
        (exclusive), oldest first: by finish time, ties by id. A finished job without
        `finished_at` counts as finished at its `created_at`. Unfinished jobs are never listed."""

    async def delete_jobs(self, ids: Sequence[str]) -> int:
        """Delete these jobs, every index entry they are in and every outbox item of theirs
        (whatever its state), atomically per job. Missing ids are skipped; returns how many
        jobs were deleted. An `update` of a deleted job then finds nothing (it is not revived)."""

    async def outbox_add(self, item: OutboxItem) -> None:
        """Store a new delivery (durable on return). Raises DuplicateOutboxItem on an id clash."""

    async def outbox_get(self, item_id: str) -> OutboxItem | None: ...

    async def outbox_due(self, now_ms: int, limit: int = 100) -> list[OutboxItem]:
        """Pending items with next_attempt_ms <= now_ms that head their (job_id, url) queue,
        ordered by (next_attempt_ms, id)."""

    async def outbox_claim(self, item_id: str, owner: str, until_ms: int, now_ms: int) -> OutboxItem | None:
        """Take an item for one delivery attempt, atomically: only if it is pending, due
        (next_attempt_ms <= now_ms), heads its (job_id, url) queue and is unclaimed or its claim
        has expired (claimed_until_ms <= now_ms). The claim sets claimed_by = owner,
        claimed_until_ms = until_ms and defers the item to the claim's end (next_attempt_ms =
        until_ms), so while it holds, the item is not returned by `outbox_due` to anybody and
        cannot be claimed again, and later items of its queue stay behind it (it is still the
        pending head). When the claim expires without an outcome (the owner died), the item is
        due again and any owner may claim it. Returns the item as now stored, or None when the
        item is missing or any condition does not hold. Of two owners racing for one item,
        exactly one gets it.

        The owner ends its claim with `outbox_update(..., expect_owner=owner)` (retry / dead) or
        `outbox_delete` (delivered)."""

    async def outbox_update(self, item: OutboxItem, *, expect_owner: str | None = None) -> bool:
        """Rewrite an item whole (attempts, next_attempt_ms, last_error, state, and the claim
        fields as the item carries them: None / 0 releases a claim). A missing item is left
        missing (it was deleted meanwhile): nothing is written. With `expect_owner`, only if the
        stored item is claimed by that owner (expired or not): a replica whose claim was taken
        over does not overwrite the outcome of the one that took it. True if written."""

    async def outbox_delete(self, item_id: str) -> None:
        """Remove an item, whoever holds a claim on it (a delivered event is delivered)."""

    async def outbox_purge(self, before_ms: int) -> int:
        """Delete the done and dead items created before the cut-off (exclusive); pending items
        are never touched, however old. Returns how many were deleted."""


# --- helpers shared by the implementations ----------------------------------------------------


def job_fingerprint(job: Job) -> str | None:
    return job.extra.get(FINGERPRINT_KEY) or None


def expiry_time(job: Job) -> int | None:
    """When a job finished, as retention sees it; None while it has not."""
    if not job.status.finished:
        return None
    # a finished job always has finished_at when the engine wrote it; a record from elsewhere
    # may not, and must still expire some day
    return job.finished_at if job.finished_at is not None else job.created_at


def normalize_statuses(status: StatusFilter) -> list[JobStatus] | None:
    # JobStatus is a str, and a str is a Sequence: test for the single value first.
    if status is None:
        return None
    if isinstance(status, str):
        return [JobStatus(status)]
    return [JobStatus(s) for s in status]


def normalize_actions(action: ActionFilter) -> list[Action] | None:
    if action is None:
        return None
    if isinstance(action, str):
        return [Action(action)]
    return [Action(a) for a in action]


def check_limit(limit: int) -> int:
    if limit < 0:
        raise ValueError("limit must be >= 0")
    return limit
