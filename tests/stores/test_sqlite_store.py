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
