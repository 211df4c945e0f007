"""The embedded job store: one SQLite file in WAL mode.

All work runs on one dedicated thread that owns the only connection, so the event loop never
blocks on disk and writes are serialized without locks of our own. Every write is its own
`BEGIN IMMEDIATE` transaction: a second process opening the same file waits (busy_timeout)
instead of interleaving, and with `synchronous=FULL` a commit is on disk before the call
returns - a job is durable before the caller acknowledges it.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import os
import sqlite3
import time
from collections import OrderedDict
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import Any, Literal, TypeVar

import msgspec

from adapter.domain.jobs import Job, JobStatus
from adapter.stores.base import (
    FINISHED_STATUSES,
    UNFINISHED_STATUSES,
    ActionFilter,
    DuplicateJob,
    DuplicateOutboxItem,
    DuplicateRequest,
    ExpectStatus,
    OutboxItem,
    StatusFilter,
    expected_values,
    StoreError,
    StoreUnavailable,
    check_limit,
    expiry_time,
    job_fingerprint,
    normalize_actions,
    normalize_statuses,
)
from adapter.stores.codec import decode_job, decode_outbox, encode_job, encode_outbox

T = TypeVar("T")

Synchronous = Literal["FULL", "NORMAL"]

# Schema history. Step N (1-based) takes the schema from version N-1 to N; a database records
# the version it is at in `meta`, and `open` applies the missing steps in one transaction. Never
# edit a released step: append a new one.
MIGRATIONS: list[tuple[str, ...]] = [
    (
        """CREATE TABLE jobs (
            id TEXT PRIMARY KEY,
            owner TEXT NOT NULL,
            status TEXT NOT NULL,
            action TEXT NOT NULL,
            created_at INTEGER NOT NULL,
            idempotency_key TEXT,
            fingerprint TEXT,
            message_id TEXT,
            job_hash TEXT,
            parent_id TEXT,
            data BLOB NOT NULL
        )""",
        "CREATE INDEX jobs_created ON jobs (created_at, id)",
        "CREATE INDEX jobs_owner ON jobs (owner, created_at, id)",
        "CREATE INDEX jobs_status ON jobs (status, created_at, id)",
        "CREATE INDEX jobs_action ON jobs (action, created_at, id)",
        # covers count_by_status without touching the rows (which carry the blobs)
        "CREATE INDEX jobs_status_action ON jobs (status, action)",
        "CREATE INDEX jobs_idem ON jobs (owner, idempotency_key, created_at) WHERE idempotency_key IS NOT NULL",
        "CREATE INDEX jobs_fingerprint ON jobs (owner, fingerprint, created_at) WHERE fingerprint IS NOT NULL",
        "CREATE INDEX jobs_message ON jobs (message_id, created_at) WHERE message_id IS NOT NULL",
        "CREATE INDEX jobs_hash ON jobs (job_hash, created_at) WHERE job_hash IS NOT NULL",
        "CREATE INDEX jobs_parent ON jobs (parent_id, created_at) WHERE parent_id IS NOT NULL",
        """CREATE TABLE outbox (
            id TEXT PRIMARY KEY,
            job_id TEXT NOT NULL,
            url TEXT NOT NULL,
            seq INTEGER NOT NULL,
            state TEXT NOT NULL,
            next_attempt_ms INTEGER NOT NULL,
            data BLOB NOT NULL
        )""",
        "CREATE INDEX outbox_due ON outbox (next_attempt_ms, id) WHERE state = 'pending'",
        "CREATE INDEX outbox_queue ON outbox (job_id, url, seq) WHERE state = 'pending'",
    ),
    # 2: retention. The columns are filled for existing rows by _BACKFILLS[2] (the values live
    # in the msgpack blobs, which SQL cannot read).
    (
        "ALTER TABLE jobs ADD COLUMN finished_at INTEGER",
        "CREATE INDEX jobs_finished ON jobs (finished_at, id) WHERE finished_at IS NOT NULL",
        "ALTER TABLE outbox ADD COLUMN created_ms INTEGER",
        "CREATE INDEX outbox_closed ON outbox (created_ms) WHERE state != 'pending'",
        "CREATE INDEX outbox_job ON outbox (job_id)",
    ),
    # 3: outbox claims (one replica per delivery attempt); NULL = unclaimed
    ("ALTER TABLE outbox ADD COLUMN claimed_by TEXT",),
]

SCHEMA_VERSION = len(MIGRATIONS)


def _backfill_retention(conn: sqlite3.Connection) -> None:
    # An unreadable record must not keep the store from opening: a job falls back to its
    # created_at column, an outbox item keeps no created_ms (and is never purged).
    def finished_at(data: bytes, created_at: int) -> int | None:
        try:
            return expiry_time(decode_job(data))
        except StoreError:
            return created_at

    def created_ms(data: bytes) -> int | None:
        try:
            return decode_outbox(data).created_ms
        except StoreError:
            return None

    statuses = [s.value for s in FINISHED_STATUSES]
    finished = conn.execute(
        f"SELECT id, created_at, data FROM jobs WHERE status IN ({_placeholders(len(statuses))})", statuses
    ).fetchall()
    conn.executemany(
        "UPDATE jobs SET finished_at = ? WHERE id = ?",
        [(finished_at(data, created_at), job_id) for job_id, created_at, data in finished],
    )
    items = conn.execute("SELECT id, data FROM outbox").fetchall()
    conn.executemany(
        "UPDATE outbox SET created_ms = ? WHERE id = ?", [(created_ms(data), item_id) for item_id, data in items]
    )


# Data steps run right after the schema step of the same number, in the same transaction.
_BACKFILLS: dict[int, Callable[[sqlite3.Connection], None]] = {2: _backfill_retention}

_JOB_COLUMNS = (
    "id, owner, status, action, created_at, idempotency_key, fingerprint, message_id, job_hash, parent_id, "
    "finished_at, data"
)
_JOB_COLUMN_COUNT = _JOB_COLUMNS.count(",") + 1
_NEWEST_FIRST = "ORDER BY created_at DESC, id DESC"
# the newest job of an owner with this idempotency key / request fingerprint since a cut-off
_BY_IDEMPOTENCY = f"SELECT data FROM jobs WHERE owner = ? AND idempotency_key = ? AND created_at >= ? {_NEWEST_FIRST} LIMIT 1"
_BY_IDEMPOTENCY_ROW = _BY_IDEMPOTENCY.replace("SELECT data", "SELECT id, status, data", 1)
_BY_FINGERPRINT = f"SELECT data FROM jobs WHERE owner = ? AND fingerprint = ? AND created_at >= ? {_NEWEST_FIRST} LIMIT 1"
_CHUNK = 500  # ids per IN (...) list, well under SQLite's variable limit
_FINISHED = frozenset(s.value for s in FINISHED_STATUSES)
_UNFINISHED = frozenset(s.value for s in UNFINISHED_STATUSES)


def _none_if_empty(value: str | None) -> str | None:
    return value or None


def _job_row(job: Job) -> tuple[Any, ...]:
    return (
        job.id,
        job.owner,
        job.status.value,
        job.action.value,
        job.created_at,
        _none_if_empty(job.idempotency_key),
        job_fingerprint(job),
        _none_if_empty(job.message_id),
        _none_if_empty(job.job_hash),
        _none_if_empty(job.parent_id),
        expiry_time(job),
        encode_job(job),
    )


@contextlib.contextmanager
def _write(conn: sqlite3.Connection) -> Iterator[None]:
    # IMMEDIATE takes the write lock up front, so a read-then-write (dedupe check, CAS) cannot
    # be overtaken by another connection between its read and its write.
    conn.execute("BEGIN IMMEDIATE")
    try:
        yield
    except BaseException:
        conn.execute("ROLLBACK")
        raise
    conn.execute("COMMIT")


def _placeholders(n: int) -> str:
    return ", ".join("?" * n)


class _FinishedCache:
    """Finished jobs as stored (their encoded rows), so that reading one again takes no trip to
    the database thread: the hot read paths (/mj fetch polling, GET /v1/jobs/{id}, an
    idempotent replay) mostly ask for jobs that have ended, and an ended job no longer changes
    but for its seed. Entries are the encoded bytes, decoded on every hit, so a caller that
    edits the Job it got cannot change what the next caller reads.

    Correctness rests on three rules. (1) Every write through this store that may touch a
    finished row (an update whose compare-and-set admits a finished status or has none, a
    delete) drops the job's entry and bumps `generation`. (2) A read fills the cache only if
    no such write was submitted between the moment it was submitted and the moment it
    returned: the store's one thread runs calls in the order they were submitted, so a read
    that saw the old row can only finish before a later write, and then the generation has
    moved. (3) An entry lives `ttl` seconds at most, which bounds what another process writing
    the same file could leave stale (the adapter is the only writer in practice: SQLite is the
    one-process store).

    `by_key` maps (owner, idempotency key) to the finished job the last look-up found; an insert
    that carries the key drops it (the newest job wins), and it is only used while the job's
    entry is present."""

    def __init__(self, size: int = 2048, ttl: float = 5.0, clock: Callable[[], float] = time.monotonic) -> None:
        self.size = size
        self.ttl = ttl
        self.clock = clock
        self.generation = 0
        self._rows: OrderedDict[str, tuple[bytes, float, tuple[str, str] | None]] = OrderedDict()
        self._by_key: dict[tuple[str, str], str] = {}

    def get(self, job_id: str) -> bytes | None:
        entry = self._rows.get(job_id)
        if entry is None:
            return None
        data, expires, _ = entry
        if self.clock() >= expires:
            self.drop(job_id)
            return None
        self._rows.move_to_end(job_id)
        return data

    def by_key(self, owner: str, key: str) -> bytes | None:
        job_id = self._by_key.get((owner, key))
        if job_id is None:
            return None
        data = self.get(job_id)
        if data is None:
            self._by_key.pop((owner, key), None)
        return data

    def put(self, job_id: str, data: bytes, generation: int, key: tuple[str, str] | None = None) -> None:
        if generation != self.generation:
            return  # a write may have overtaken this read: what it saw may be old
        old = self._rows.pop(job_id, None)
        if old is not None and old[2] is not None and old[2] != key:
            self._by_key.pop(old[2], None)
        self._rows[job_id] = (data, self.clock() + self.ttl, key)
        if key is not None:
            self._by_key[key] = job_id
        while len(self._rows) > self.size:
            oldest, (_, _, oldest_key) = self._rows.popitem(last=False)
            if oldest_key is not None and self._by_key.get(oldest_key) == oldest:
                del self._by_key[oldest_key]

    def drop(self, job_id: str) -> None:
        entry = self._rows.pop(job_id, None)
        if entry is not None and entry[2] is not None and self._by_key.get(entry[2]) == job_id:
            del self._by_key[entry[2]]

    def written(self, job_ids: Sequence[str]) -> None:
        self.generation += 1
        for job_id in job_ids:
            self.drop(job_id)

    def key_inserted(self, owner: str, key: str) -> None:
        # a newer job with this key may now be the one a look-up should find
        self.generation += 1
        self._by_key.pop((owner, key), None)

    def clear(self) -> None:
        self.generation += 1
        self._rows.clear()
        self._by_key.clear()


class SqliteJobStore:
    """JobStore on a SQLite file (or ":memory:", which lives as long as the store is open)."""

    def __init__(
        self,
        path: str | os.PathLike[str],
        *,
        synchronous: Synchronous = "FULL",
        busy_timeout_ms: int = 5000,
    ) -> None:
        if synchronous not in ("FULL", "NORMAL"):
            raise ValueError("synchronous must be FULL or NORMAL")
        self.path = os.fspath(path)
        self.synchronous: Synchronous = synchronous
        self.busy_timeout_ms = busy_timeout_ms
        self._executor: ThreadPoolExecutor | None = None
        self._conn: sqlite3.Connection | None = None
        self._closing = False
        self._finished = _FinishedCache()

    def __repr__(self) -> str:
        return f"SqliteJobStore(path={self.path!r})"

    async def __aenter__(self) -> SqliteJobStore:
        await self.open()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    # --- lifecycle ----------------------------------------------------------------------------

    async def open(self) -> None:
        if self._executor is not None:
            return
        self._closing = False
        self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="mj-sqlite")
        try:
            await self._submit(self._open_sync)
        except BaseException:
            await self._submit(self._close_sync)
            self._executor.shutdown(wait=False)
            self._executor = None
            raise

    async def close(self) -> None:
        executor = self._executor
        if executor is None or self._closing:
            return
        self._closing = True
        self._finished.clear()
        try:
            # Queued behind any call already submitted, so those finish first.
            await self._submit(self._close_sync)
        finally:
            executor.shutdown(wait=False)
            self._executor = None

    def _open_sync(self) -> None:
        if self.path != ":memory:":
            parent = os.path.dirname(os.path.abspath(self.path))
            os.makedirs(parent, exist_ok=True)
        conn = sqlite3.connect(self.path, isolation_level=None, timeout=self.busy_timeout_ms / 1000)
        self._conn = conn
        conn.execute(f"PRAGMA busy_timeout = {int(self.busy_timeout_ms)}")
        if self.path != ":memory:":
            mode = conn.execute("PRAGMA journal_mode = WAL").fetchone()[0]
            if str(mode).lower() != "wal":
                raise StoreError(f"could not switch {self.path!r} to WAL (journal_mode={mode})")
        conn.execute(f"PRAGMA synchronous = {self.synchronous}")
        self._migrate(conn)

    @staticmethod
    def _migrate(conn: sqlite3.Connection) -> None:
        with _write(conn):
            conn.execute("CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL)")
            row = conn.execute("SELECT value FROM meta WHERE key = 'schema_version'").fetchone()
            version = int(row[0]) if row else 0
            if version > SCHEMA_VERSION:
                raise StoreError(
                    f"database schema version {version} is newer than this adapter knows ({SCHEMA_VERSION}); "
                    "upgrade the adapter"
                )
            for number, step in enumerate(MIGRATIONS[version:], start=version + 1):
                for statement in step:
                    conn.execute(statement)
                if (backfill := _BACKFILLS.get(number)) is not None:
                    backfill(conn)
            conn.execute(
                "INSERT INTO meta (key, value) VALUES ('schema_version', ?) "
                "ON CONFLICT (key) DO UPDATE SET value = excluded.value",
                (str(SCHEMA_VERSION),),
            )

    def _close_sync(self) -> None:
        conn, self._conn = self._conn, None
        if conn is not None:
            with contextlib.suppress(sqlite3.Error):
                conn.execute("PRAGMA optimize")
            conn.close()

    # --- plumbing -----------------------------------------------------------------------------

    async def _submit(self, fn: Callable[[], T]) -> T:
        assert self._executor is not None
        return await asyncio.get_running_loop().run_in_executor(self._executor, fn)

    async def _call(self, fn: Callable[..., T], /, *args: Any) -> T:
        if self._executor is None or self._closing:
            raise StoreUnavailable("sqlite job store is not open")
        return await self._submit(functools.partial(self._guarded, fn, *args))

    def _guarded(self, fn: Callable[..., T], *args: Any) -> T:
        conn = self._conn
        if conn is None:
            raise StoreUnavailable("sqlite job store is not open")
        try:
            return fn(conn, *args)
        except sqlite3.OperationalError as exc:
            # locked past busy_timeout, disk full, I/O error: the caller may retry later
            raise StoreUnavailable(f"sqlite: {exc}") from exc
        except sqlite3.Error as exc:
            raise StoreError(f"sqlite: {exc}") from exc

    # --- jobs ---------------------------------------------------------------------------------

    async def insert(
        self,
        job: Job,
        *,
        idempotency_since_ms: int | None = None,
        fingerprint_since_ms: int | None = None,
    ) -> None:
        if job.idempotency_key:
            self._finished.key_inserted(job.owner, job.idempotency_key)
        await self._call(self._insert_sync, job, idempotency_since_ms, fingerprint_since_ms)

    @staticmethod
    def _insert_sync(
        conn: sqlite3.Connection, job: Job, idempotency_since_ms: int | None, fingerprint_since_ms: int | None
    ) -> None:
        row = _job_row(job)
        with _write(conn):
            key, fingerprint = row[5], row[6]
            if key is not None and idempotency_since_ms is not None:
                if found := SqliteJobStore._one(conn, _BY_IDEMPOTENCY, (job.owner, key, idempotency_since_ms)):
                    raise DuplicateRequest(found, matched="idempotency_key")
            if fingerprint is not None and fingerprint_since_ms is not None:
                if found := SqliteJobStore._one(conn, _BY_FINGERPRINT, (job.owner, fingerprint, fingerprint_since_ms)):
                    raise DuplicateRequest(found, matched="fingerprint")
            try:
                conn.execute(f"INSERT INTO jobs ({_JOB_COLUMNS}) VALUES ({_placeholders(_JOB_COLUMN_COUNT)})", row)
            except sqlite3.IntegrityError as exc:  # the only constraint is the primary key
                raise DuplicateJob(job.id) from exc

    async def update(self, job: Job, *, expect_status: ExpectStatus = None) -> bool:
        expected = expected_values(expect_status)
        if not expected or not _UNFINISHED.issuperset(expected):
            # may change a finished row (a seed, a retention edit): no cached copy survives it.
            # A compare-and-set that admits unfinished statuses only cannot touch a finished
            # row, and so cannot make a cached one stale (progress writes stay off this path).
            self._finished.written((job.id,))
        return await self._call(self._update_sync, job, expected)

    @staticmethod
    def _update_sync(conn: sqlite3.Connection, job: Job, expected: list[str]) -> bool:
        row = _job_row(job)
        sql = (
            "UPDATE jobs SET owner = ?, status = ?, action = ?, created_at = ?, idempotency_key = ?, "
            "fingerprint = ?, message_id = ?, job_hash = ?, parent_id = ?, finished_at = ?, data = ? WHERE id = ?"
        )
        params: tuple[Any, ...] = (*row[1:], job.id)
        if expected:
            sql += f" AND status IN ({_placeholders(len(expected))})"
            params += tuple(expected)
        with _write(conn):
            return conn.execute(sql, params).rowcount == 1

    def cached_finished(self, job_id: str) -> bytes | None:
        if self._executor is None or self._closing:
            return None
        return self._finished.get(job_id)

    def cached_finished_by_key(self, owner: str, key: str) -> bytes | None:
        if self._executor is None or self._closing or not key:
            return None
        return self._finished.by_key(owner, key)

    async def get(self, job_id: str) -> Job | None:
        if self._executor is not None and not self._closing and (data := self._finished.get(job_id)) is not None:
            return decode_job(data)
        generation = self._finished.generation
        row = await self._call(self._row_sync, "SELECT status, data FROM jobs WHERE id = ?", (job_id,))
        if row is None:
            return None
        status, data = row
        if status in _FINISHED:
            self._finished.put(job_id, data, generation)
        return decode_job(data)

    @staticmethod
    def _row_sync(conn: sqlite3.Connection, sql: str, params: Sequence[Any]) -> tuple[Any, ...] | None:
        row = conn.execute(sql, params).fetchone()
        return tuple(row) if row else None

    async def get_many(self, ids: Sequence[str]) -> list[Job]:
        return await self._call(self._get_many_sync, list(ids))

    @staticmethod
    def _get_many_sync(conn: sqlite3.Connection, ids: list[str]) -> list[Job]:
        found: dict[str, Job] = {}
        unique = list(dict.fromkeys(ids))
        for start in range(0, len(unique), _CHUNK):
            chunk = unique[start : start + _CHUNK]
            for job_id, data in conn.execute(
                f"SELECT id, data FROM jobs WHERE id IN ({_placeholders(len(chunk))})", chunk
            ):
                found[job_id] = decode_job(data)
        return [found[i] for i in ids if i in found]

    async def find_by_idempotency(self, owner: str, key: str, *, since_ms: int | None = None) -> Job | None:
        if not key:
            return None
        since = since_ms if since_ms is not None else -(2**63)
        if self._executor is not None and not self._closing and (data := self._finished.by_key(owner, key)) is not None:
            job = decode_job(data)
            if job.created_at >= since:
                return job
        generation = self._finished.generation
        row = await self._call(self._row_sync, _BY_IDEMPOTENCY_ROW, (owner, key, since))
        if row is None:
            return None
        job_id, status, data = row
        if status in _FINISHED:
            self._finished.put(job_id, data, generation, (owner, key))
        return decode_job(data)

    async def find_by_fingerprint(self, owner: str, fingerprint: str, *, since_ms: int) -> Job | None:
        if not fingerprint:
            return None
        return await self._call(self._one, _BY_FINGERPRINT, (owner, fingerprint, since_ms))

    async def find_by_message(self, message_id: str) -> Job | None:
        if not message_id:
            return None
        return await self._call(
            self._one, f"SELECT data FROM jobs WHERE message_id = ? {_NEWEST_FIRST} LIMIT 1", (message_id,)
        )

    async def find_by_job_hash(self, job_hash: str) -> Job | None:
        if not job_hash:
            return None
        return await self._call(
            self._one, f"SELECT data FROM jobs WHERE job_hash = ? {_NEWEST_FIRST} LIMIT 1", (job_hash,)
        )

    async def list_unfinished(self) -> list[Job]:
        statuses = [s.value for s in UNFINISHED_STATUSES]
        return await self._call(
            self._many,
            f"SELECT data FROM jobs WHERE status IN ({_placeholders(len(statuses))}) ORDER BY created_at, id",
            statuses,
        )

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
        if check_limit(limit) == 0:
            return []
        where: list[str] = []
        params: list[Any] = []
        if owner is not None:
            where.append("owner = ?")
            params.append(owner)
        if (statuses := normalize_statuses(status)) is not None:
            if not statuses:
                return []
            where.append(f"status IN ({_placeholders(len(statuses))})")
            params.extend(s.value for s in statuses)
        if (actions := normalize_actions(action)) is not None:
            if not actions:
                return []
            where.append(f"action IN ({_placeholders(len(actions))})")
            params.extend(a.value for a in actions)
        if parent_id is not None:
            where.append("parent_id = ?")
            params.append(parent_id)
        if before_ms is not None:
            where.append("created_at < ?")
            params.append(before_ms)
        sql = "SELECT data FROM jobs"
        if where:
            sql += " WHERE " + " AND ".join(where)
        sql += f" {_NEWEST_FIRST} LIMIT ?"
        params.append(limit)
        return await self._call(self._many, sql, params)

    async def count_by_status(self) -> dict[tuple[str, str], int]:
        return await self._call(self._count_sync)

    @staticmethod
    def _count_sync(conn: sqlite3.Connection) -> dict[tuple[str, str], int]:
        rows = conn.execute("SELECT status, action, COUNT(*) FROM jobs GROUP BY status, action")
        return {(status, action): n for status, action, n in rows}

    # --- retention ----------------------------------------------------------------------------

    async def list_expired(self, finished_before_ms: int, limit: int) -> list[str]:
        if check_limit(limit) == 0:
            return []
        return await self._call(self._list_expired_sync, finished_before_ms, limit)

    @staticmethod
    def _list_expired_sync(conn: sqlite3.Connection, finished_before_ms: int, limit: int) -> list[str]:
        rows = conn.execute(
            "SELECT id FROM jobs WHERE finished_at IS NOT NULL AND finished_at < ? ORDER BY finished_at, id LIMIT ?",
            (finished_before_ms, limit),
        )
        return [job_id for (job_id,) in rows]

    async def delete_jobs(self, ids: Sequence[str]) -> int:
        unique = list(dict.fromkeys(ids))
        if not unique:
            return 0
        self._finished.written(unique)
        return await self._call(self._delete_jobs_sync, unique)

    @staticmethod
    def _delete_jobs_sync(conn: sqlite3.Connection, ids: list[str]) -> int:
        deleted = 0
        with _write(conn):
            for start in range(0, len(ids), _CHUNK):
                chunk = ids[start : start + _CHUNK]
                marks = _placeholders(len(chunk))
                deleted += conn.execute(f"DELETE FROM jobs WHERE id IN ({marks})", chunk).rowcount
                conn.execute(f"DELETE FROM outbox WHERE job_id IN ({marks})", chunk)
        return deleted

    async def outbox_purge(self, before_ms: int) -> int:
        # One short transaction per chunk, each its own call: other store calls (queued on the
        # same thread) and other processes get the write lock in between.
        purged = 0
        while True:
            n = await self._call(self._outbox_purge_chunk_sync, before_ms, _CHUNK)
            purged += n
            if n < _CHUNK:
                return purged

    @staticmethod
    def _outbox_purge_chunk_sync(conn: sqlite3.Connection, before_ms: int, limit: int) -> int:
        with _write(conn):
            # `state != 'pending'` spelled exactly as in the partial index outbox_closed
            return conn.execute(
                "DELETE FROM outbox WHERE id IN (SELECT id FROM outbox "
                "WHERE state != 'pending' AND created_ms < ? LIMIT ?)",
                (before_ms, limit),
            ).rowcount

    @staticmethod
    def _one(conn: sqlite3.Connection, sql: str, params: Sequence[Any]) -> Job | None:
        row = conn.execute(sql, params).fetchone()
        return decode_job(row[0]) if row else None

    @staticmethod
    def _many(conn: sqlite3.Connection, sql: str, params: Sequence[Any]) -> list[Job]:
        return [decode_job(data) for (data,) in conn.execute(sql, params)]

    # --- webhook outbox -----------------------------------------------------------------------

    async def outbox_add(self, item: OutboxItem) -> None:
        await self._call(self._outbox_add_sync, item)

    @staticmethod
    def _outbox_add_sync(conn: sqlite3.Connection, item: OutboxItem) -> None:
        with _write(conn):
            try:
                conn.execute(
                    "INSERT INTO outbox (id, job_id, url, seq, state, next_attempt_ms, created_ms, claimed_by, data) "
                    "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
                    (
                        item.id,
                        item.job_id,
                        item.url,
                        item.seq,
                        item.state,
                        item.next_attempt_ms,
                        item.created_ms,
                        item.claimed_by,
                        encode_outbox(item),
                    ),
                )
            except sqlite3.IntegrityError as exc:
                raise DuplicateOutboxItem(item.id) from exc

    async def outbox_get(self, item_id: str) -> OutboxItem | None:
        return await self._call(self._outbox_get_sync, item_id)

    @staticmethod
    def _outbox_get_sync(conn: sqlite3.Connection, item_id: str) -> OutboxItem | None:
        row = conn.execute("SELECT data FROM outbox WHERE id = ?", (item_id,)).fetchone()
        return decode_outbox(row[0]) if row else None

    async def outbox_due(self, now_ms: int, limit: int = 100) -> list[OutboxItem]:
        if check_limit(limit) == 0:
            return []
        return await self._call(self._outbox_due_sync, now_ms, limit)

    @staticmethod
    def _outbox_due_sync(conn: sqlite3.Connection, now_ms: int, limit: int) -> list[OutboxItem]:
        rows = conn.execute(
            "SELECT o.data FROM outbox AS o "
            "WHERE o.state = 'pending' AND o.next_attempt_ms <= ? "
            "AND NOT EXISTS (SELECT 1 FROM outbox AS p WHERE p.state = 'pending' "
            "  AND p.job_id = o.job_id AND p.url = o.url AND p.seq < o.seq) "
            "ORDER BY o.next_attempt_ms, o.id LIMIT ?",
            (now_ms, limit),
        )
        return [decode_outbox(data) for (data,) in rows]

    async def outbox_claim(self, item_id: str, owner: str, until_ms: int, now_ms: int) -> OutboxItem | None:
        return await self._call(self._outbox_claim_sync, item_id, owner, until_ms, now_ms)

    @staticmethod
    def _outbox_claim_sync(
        conn: sqlite3.Connection, item_id: str, owner: str, until_ms: int, now_ms: int
    ) -> OutboxItem | None:
        with _write(conn):
            row = conn.execute("SELECT data FROM outbox WHERE id = ?", (item_id,)).fetchone()
            if row is None:
                return None
            current = decode_outbox(row[0])
            if current.claimed_until_ms > now_ms:
                return None  # a live claim (read under the write lock: nobody changes it now)
            claimed = msgspec.structs.replace(
                current, claimed_by=owner, claimed_until_ms=until_ms, next_attempt_ms=until_ms
            )
            # The conditions are checked on the row itself (not on what was just read), in the
            # same write transaction. A live claim has deferred next_attempt_ms to its end, so
            # `next_attempt_ms <= now` also means "unclaimed or claim expired".
            cursor = conn.execute(
                "UPDATE outbox SET claimed_by = ?, next_attempt_ms = ?, data = ? "
                "WHERE id = ? AND state = 'pending' AND next_attempt_ms <= ? "
                "AND NOT EXISTS (SELECT 1 FROM outbox AS p WHERE p.state = 'pending' "
                "  AND p.job_id = outbox.job_id AND p.url = outbox.url AND p.seq < outbox.seq)",
                (owner, until_ms, encode_outbox(claimed), item_id, now_ms),
            )
            return claimed if cursor.rowcount == 1 else None

    async def outbox_update(self, item: OutboxItem, *, expect_owner: str | None = None) -> bool:
        return await self._call(self._outbox_update_sync, item, expect_owner)

    @staticmethod
    def _outbox_update_sync(conn: sqlite3.Connection, item: OutboxItem, expect_owner: str | None) -> bool:
        with _write(conn):
            cursor = conn.execute(
                "UPDATE outbox SET job_id = ?, url = ?, seq = ?, state = ?, next_attempt_ms = ?, created_ms = ?, "
                "claimed_by = ?, data = ? WHERE id = ? AND (? IS NULL OR claimed_by = ?)",
                (
                    item.job_id,
                    item.url,
                    item.seq,
                    item.state,
                    item.next_attempt_ms,
                    item.created_ms,
                    item.claimed_by,
                    encode_outbox(item),
                    item.id,
                    expect_owner,
                    expect_owner,
                ),
            )
            return cursor.rowcount == 1

    async def outbox_delete(self, item_id: str) -> None:
        await self._call(self._outbox_delete_sync, item_id)

    @staticmethod
    def _outbox_delete_sync(conn: sqlite3.Connection, item_id: str) -> None:
        with _write(conn):
            conn.execute("DELETE FROM outbox WHERE id = ?", (item_id,))
