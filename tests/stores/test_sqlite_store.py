"""What only the SQLite store has: a file, a schema version, pragmas, and a process that can die."""

from __future__ import annotations

import asyncio
import os
import signal
import sqlite3
import sys
import textwrap
import threading
from pathlib import Path

import pytest

import adapter.stores.sqlite as sqlite_module
from adapter.domain.actions import Action
from adapter.domain.jobs import Job, JobStatus
from adapter.stores.base import StoreError, StoreUnavailable
from adapter.stores.sqlite import SCHEMA_VERSION, SqliteJobStore

REPO = Path(__file__).resolve().parents[2]


def _job(job_id: str = "j1") -> Job:
    return Job(id=job_id, owner="o", action=Action.IMAGINE, prompt="p", created_at=1_700_000_000_000)


async def test_fresh_file_is_wal_with_schema_version(tmp_path: Path) -> None:
    path = tmp_path / "sub" / "dir" / "jobs.db"  # parent folders are created
    async with SqliteJobStore(path) as store:
        await store.insert(_job())
        sync = await store._call(lambda conn: conn.execute("PRAGMA synchronous").fetchone()[0])
        assert sync == 2  # FULL
    with sqlite3.connect(path) as raw:
        assert raw.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
        assert raw.execute("SELECT value FROM meta WHERE key = 'schema_version'").fetchone()[0] == str(SCHEMA_VERSION)
        names = {r[0] for r in raw.execute("SELECT name FROM sqlite_master WHERE type = 'index'")}
    assert {"jobs_owner", "jobs_status", "jobs_idem", "jobs_fingerprint", "jobs_message", "jobs_hash"} <= names


async def test_synchronous_normal_is_selectable(tmp_path: Path) -> None:
    async with SqliteJobStore(tmp_path / "j.db", synchronous="NORMAL") as store:
        assert await store._call(lambda conn: conn.execute("PRAGMA synchronous").fetchone()[0]) == 1
    with pytest.raises(ValueError):
        SqliteJobStore(tmp_path / "j.db", synchronous="OFF")  # type: ignore[arg-type]


async def test_a_new_migration_step_is_applied_once(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    path = tmp_path / "jobs.db"
    async with SqliteJobStore(path) as store:
        await store.insert(_job())
    step = ("ALTER TABLE jobs ADD COLUMN note TEXT", "CREATE INDEX jobs_note ON jobs (note)")
    monkeypatch.setattr(sqlite_module, "MIGRATIONS", [*sqlite_module.MIGRATIONS, step])
    monkeypatch.setattr(sqlite_module, "SCHEMA_VERSION", SCHEMA_VERSION + 1)
    for _ in range(2):  # the second open must not re-run the step (ALTER would fail)
        async with SqliteJobStore(path) as store:
            assert await store.get("j1") == _job()
    with sqlite3.connect(path) as raw:
        assert raw.execute("SELECT value FROM meta WHERE key = 'schema_version'").fetchone()[0] == str(
            SCHEMA_VERSION + 1
        )
        assert "note" in {r[1] for r in raw.execute("PRAGMA table_info(jobs)")}


async def test_a_newer_schema_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "jobs.db"
    async with SqliteJobStore(path):
        pass
    with sqlite3.connect(path) as raw:
        raw.execute("UPDATE meta SET value = ? WHERE key = 'schema_version'", (str(SCHEMA_VERSION + 5),))
    store = SqliteJobStore(path)
    with pytest.raises(StoreError, match="newer"):
        await store.open()
    with pytest.raises(StoreUnavailable):
        await store.get("j1")


async def test_in_memory_database(tmp_path: Path) -> None:
    async with SqliteJobStore(":memory:") as store:
        await store.insert(_job())
        assert (await store.get("j1")) == _job()


async def test_not_open_is_unavailable(tmp_path: Path) -> None:
    with pytest.raises(StoreUnavailable):
        await SqliteJobStore(tmp_path / "j.db").insert(_job())


async def test_work_runs_on_the_store_thread_not_the_loop(tmp_path: Path) -> None:
    async with SqliteJobStore(tmp_path / "j.db") as store:
        names = await asyncio.gather(*(store._call(lambda conn: threading.current_thread().name) for _ in range(5)))
    assert len(set(names)) == 1 and names[0].startswith("mj-sqlite")
    assert names[0] != threading.current_thread().name


async def test_locked_database_reports_unavailable(tmp_path: Path) -> None:
    path = tmp_path / "j.db"
    async with SqliteJobStore(path, busy_timeout_ms=50) as store:
        blocker = sqlite3.connect(path, isolation_level=None)
        blocker.execute("BEGIN IMMEDIATE")  # another process holding the write lock
        try:
            with pytest.raises(StoreUnavailable, match="locked"):
                await store.insert(_job())
        finally:
            blocker.execute("ROLLBACK")
            blocker.close()
        await store.insert(_job())  # and works again once the lock is gone
        assert await store.get("j1") is not None


async def test_update_keeps_unfinished_index_right_under_cas(tmp_path: Path) -> None:
    async with SqliteJobStore(tmp_path / "j.db") as store:
        await store.insert(_job())
        done = Job(id="j1", owner="o", action=Action.IMAGINE, status=JobStatus.SUCCESS)
        assert await store.update(done, expect_status=JobStatus.NOT_START)
        assert await store.list_unfinished() == []


_WRITER = textwrap.dedent(
    """
    import asyncio, sys
    from adapter.domain.actions import Action
    from adapter.domain.jobs import Job
    from adapter.stores.sqlite import SqliteJobStore

    async def main(path):
        store = SqliteJobStore(path)
        await store.open()
        n = 0
        while True:  # until killed: report each job only once insert has returned
            n += 1
            await store.insert(Job(id=f"crash-{n}", owner="o", action=Action.IMAGINE, prompt=f"p{n}"))
            sys.stdout.write(f"crash-{n}\\n")
            sys.stdout.flush()

    asyncio.run(main(sys.argv[1]))
    """
)


async def test_acknowledged_inserts_survive_sigkill(tmp_path: Path) -> None:
    path = tmp_path / "crash.db"
    proc = await asyncio.create_subprocess_exec(
        sys.executable,
        "-c",
        _WRITER,
        str(path),
        cwd=REPO,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
        env={**os.environ, "PYTHONPATH": str(REPO)},
    )
    acknowledged: list[str] = []
    try:
        assert proc.stdout is not None
        async with asyncio.timeout(30):
            while len(acknowledged) < 25:
                line = await proc.stdout.readline()
                if not line:
                    err = await proc.stderr.read() if proc.stderr else b""
                    pytest.fail(f"writer exited early: {err.decode(errors='replace')[-2000:]}")
                acknowledged.append(line.decode().strip())
        proc.send_signal(signal.SIGKILL)  # no close(), no checkpoint, no atexit
    finally:
        if proc.returncode is None:
            proc.kill()
        async with asyncio.timeout(10):
            await proc.wait()
    assert proc.returncode == -signal.SIGKILL

    async with SqliteJobStore(path) as store:
        found = await store.get_many(acknowledged)
        assert [j.id for j in found] == acknowledged
        assert found[-1].prompt == f"p{len(acknowledged)}"


async def test_a_version_1_database_is_indexed_for_retention_on_open(tmp_path: Path) -> None:
    """A file written before retention existed: its finished jobs must expire and its closed
    outbox items must be purgeable after the upgrade, from the values inside the blobs."""
    from adapter.stores.base import OutboxItem
    from adapter.stores.codec import encode_job, encode_outbox

    path = tmp_path / "old.db"
    t0 = 1_700_000_000_000
    finished = Job(id="old-done", owner="o", action=Action.IMAGINE, status=JobStatus.SUCCESS, created_at=t0, finished_at=t0 + 50)
    undated = Job(id="old-undated", owner="o", action=Action.IMAGINE, status=JobStatus.CANCEL, created_at=t0 + 10)
    running = Job(id="old-running", owner="o", action=Action.IMAGINE, status=JobStatus.IN_PROGRESS, created_at=t0)
    dead = OutboxItem(id="ob-dead", job_id="old-done", url="u", seq=1, body=b"", created_ms=t0, next_attempt_ms=t0, state="dead")
    pending = OutboxItem(id="ob-pending", job_id="old-done", url="u", seq=2, body=b"", created_ms=t0, next_attempt_ms=t0)
    raw = sqlite3.connect(path, isolation_level=None)
    try:
        raw.execute("CREATE TABLE meta (key TEXT PRIMARY KEY, value TEXT NOT NULL)")
        for statement in sqlite_module.MIGRATIONS[0]:
            raw.execute(statement)
        raw.execute("INSERT INTO meta VALUES ('schema_version', '1')")
        for j in (finished, undated, running):
            raw.execute(
                "INSERT INTO jobs (id, owner, status, action, created_at, data) VALUES (?, ?, ?, ?, ?, ?)",
                (j.id, j.owner, j.status.value, j.action.value, j.created_at, encode_job(j)),
            )
        # an unreadable record must not keep the store from opening
        raw.execute(
            "INSERT INTO jobs (id, owner, status, action, created_at, data) VALUES "
            "('old-garbled', 'o', 'FAILURE', 'IMAGINE', ?, x'c1c1')",
            (t0 + 20,),
        )
        for it in (dead, pending):
            raw.execute(
                "INSERT INTO outbox (id, job_id, url, seq, state, next_attempt_ms, data) VALUES (?, ?, ?, ?, ?, ?, ?)",
                (it.id, it.job_id, it.url, it.seq, it.state, it.next_attempt_ms, encode_outbox(it)),
            )
    finally:
        raw.close()

    async with SqliteJobStore(path) as store:
        assert await store.list_expired(t0 + 1000, 10) == ["old-undated", "old-garbled", "old-done"]
        assert await store.list_expired(t0 + 11, 10) == ["old-undated"]
        assert await store.outbox_purge(t0 + 1) == 1
        assert await store.outbox_get("ob-pending") == pending
        assert await store.delete_jobs(["old-done"]) == 1
        assert await store.outbox_get("ob-pending") is None
    with sqlite3.connect(path) as check:
        assert check.execute("SELECT value FROM meta WHERE key = 'schema_version'").fetchone()[0] == str(SCHEMA_VERSION)


# --- finished jobs served without a trip to the database thread (issue 13) -------------------


def _count_calls(store: SqliteJobStore) -> list[str]:
    """Names of the functions the store runs on its thread from now on."""
    calls: list[str] = []
    real = store._call

    async def counting(fn, /, *args):  # type: ignore[no-untyped-def]
        calls.append(getattr(fn, "__name__", "?"))
        return await real(fn, *args)

    store._call = counting  # type: ignore[method-assign]
    return calls


def _finished(job_id: str = "j1", **kw: object) -> Job:
    job = _job(job_id)
    job.status = JobStatus.SUCCESS
    job.finished_at = job.created_at + 1000
    for name, value in kw.items():
        setattr(job, name, value)
    return job


async def test_a_finished_job_is_read_again_without_the_database_thread(tmp_path: Path) -> None:
    async with SqliteJobStore(tmp_path / "j.db") as store:
        await store.insert(_job("running"))
        await store.insert(_finished("done", idempotency_key="k1"))
        calls = _count_calls(store)
        for _ in range(3):
            assert (await store.get("running")) == _job("running")
            assert (await store.get("done")) == _finished("done", idempotency_key="k1")
            assert (await store.find_by_idempotency("o", "k1")) == _finished("done", idempotency_key="k1")
        # an unfinished job is read every time; the finished one once per kind of look-up
        assert len(calls) == 3 + 1 + 1
        # every answer is a job of its own: editing it changes nothing the next caller reads
        got = await store.get("done")
        assert got is not None
        got.extra["x"] = "y"
        got.buttons.clear()
        assert (await store.get("done")) == _finished("done", idempotency_key="k1")


async def test_writes_through_the_store_are_seen_at_once(tmp_path: Path) -> None:
    async with SqliteJobStore(tmp_path / "j.db") as store:
        job = _finished("done", idempotency_key="k1")
        await store.insert(job)
        assert (await store.get("done")) == job
        assert (await store.find_by_idempotency("o", "k1")) == job
        job.seed = "1234"  # the one change a finished job gets
        assert await store.update(job)
        assert (await store.get("done")) == job
        assert (await store.find_by_idempotency("o", "k1")) == job
        # a newer job with the same key is the one found
        newer = _finished("newer", idempotency_key="k1")
        newer.created_at += 5
        await store.insert(newer)
        assert (await store.find_by_idempotency("o", "k1")) == newer
        assert (await store.find_by_idempotency("o", "k1", since_ms=newer.created_at + 1)) is None
        assert await store.delete_jobs(["done", "newer"]) == 2
        assert (await store.get("done")) is None
        assert (await store.find_by_idempotency("o", "k1")) is None


async def test_a_read_overtaken_by_a_write_is_not_kept(tmp_path: Path) -> None:
    async with SqliteJobStore(tmp_path / "j.db") as store:
        job = _finished("done")
        await store.insert(job)
        gate = threading.Event()
        blocker = asyncio.ensure_future(store._call(lambda conn: gate.wait(5)))
        stale = asyncio.ensure_future(store.get("done"))  # queued: reads the row before the update
        await asyncio.sleep(0)
        job.seed = "42"
        update = asyncio.ensure_future(store.update(job))
        gate.set()
        await blocker
        assert (await stale) is not None and (await stale).seed is None
        assert await update
        assert (await store.get("done")).seed == "42"  # type: ignore[union-attr]


async def test_cached_jobs_expire_so_another_writer_is_seen(tmp_path: Path) -> None:
    path = tmp_path / "j.db"
    async with SqliteJobStore(path) as store, SqliteJobStore(path) as other:
        now = [0.0]
        store._finished.clock = lambda: now[0]
        job = _finished("done")
        await store.insert(job)
        assert (await store.get("done")) == job
        job.seed = "7"
        await other.update(job)
        assert (await store.get("done")).seed is None  # type: ignore[union-attr]
        now[0] += store._finished.ttl
        assert (await store.get("done")).seed == "7"  # type: ignore[union-attr]


async def test_the_cache_is_bounded(tmp_path: Path) -> None:
    async with SqliteJobStore(tmp_path / "j.db") as store:
        store._finished.size = 3
        for i in range(5):
            await store.insert(_finished(f"d{i}", idempotency_key=f"k{i}"))
            assert await store.find_by_idempotency("o", f"k{i}") is not None
        assert list(store._finished._rows) == ["d2", "d3", "d4"]
        assert sorted(store._finished._by_key) == [("o", "k2"), ("o", "k3"), ("o", "k4")]
