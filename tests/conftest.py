"""Fixtures every test folder may use.

Redis: the server at 127.0.0.1:6379 is used when it answers; otherwise a private
`redis-server` (if installed) is started on a free port; otherwise tests that need Redis skip -
or fail when CI=true, where a missing Redis must not pass silently.

The Redis at 127.0.0.1:6379 may be shared (other runs, other projects), so a test never writes
outside a key prefix of its own: take one from `redis_prefix` (or several from
`redis_prefix_factory`). Every such prefix starts with `TEST_KEY_PREFIX` plus an id of this
session, and all its keys are deleted when the test ends, whether it passed or not. At the end
of the session `_no_redis_keys_left_behind` checks the shared server: a key left under this
session's prefix fails the run; any other new `TEST_KEY_PREFIX` key is reported as a warning
(it may belong to a concurrent run, or to a test that made its own prefix).
"""

from __future__ import annotations

import asyncio
import gc
import os
import shutil
import socket
import subprocess
import time
import uuid
import warnings
from collections.abc import Callable, Iterator

import pytest

DEFAULT_REDIS = ("127.0.0.1", 6379)
TEST_KEY_PREFIX = "mjtest-"
# every prefix handed out in this session starts with this (one session's keys, whatever else
# runs against the same server at the same time)
SESSION_KEY_PREFIX = f"{TEST_KEY_PREFIX}{uuid.uuid4().hex[:8]}-"


# --- hangs: what every event loop was waiting for ---------------------------------------------


def _await_chain(task: asyncio.Task[object]) -> list[str]:
    """Where a task is suspended, outermost first: one line per coroutine it awaits through
    (a task's own stack shows only its outermost coroutine)."""
    lines: list[str] = []
    coro: object = task.get_coro()
    while coro is not None:
        frame = getattr(coro, "cr_frame", None) or getattr(coro, "ag_frame", None) or getattr(coro, "gi_frame", None)
        if frame is None:  # a future's iterator, or a finished coroutine: nothing more to show
            break
        lines.append(f"    {getattr(coro, '__qualname__', '?')} at {frame.f_code.co_filename}:{frame.f_lineno}")
        coro = getattr(coro, "cr_await", None) or getattr(coro, "ag_await", None) or getattr(coro, "gi_yieldfrom", None)
    return lines


def _dump_asyncio_tasks(terminal: object) -> None:
    """Called from pytest-timeout's timer thread while the test thread is stuck."""
    loops = [o for o in gc.get_objects() if isinstance(o, asyncio.AbstractEventLoop) and o.is_running()]
    for loop in loops:
        try:
            tasks = list(asyncio.all_tasks(loop))
        except RuntimeError:  # the set changed while being read: the loop is not stuck after all
            continue
        terminal.sep("~", title=f"asyncio tasks of {loop!r} ({len(tasks)})")  # type: ignore[attr-defined]
        for task in tasks:
            terminal.write(f"{task!r}\n" + "\n".join(_await_chain(task)) + "\n")  # type: ignore[attr-defined]


def pytest_configure(config: pytest.Config) -> None:
    # pytest-timeout prints the stack of every thread; for asyncio code that is the event loop
    # sitting in select(), so add what each task is awaiting.
    plugin = config.pluginmanager.getplugin("timeout")
    original = getattr(plugin, "dump_stacks", None)
    if original is None or getattr(original, "_adds_asyncio_tasks", False):
        return

    def dump_stacks(terminal: object) -> None:
        original(terminal)
        try:
            _dump_asyncio_tasks(terminal)
        except Exception as exc:  # never let the report hide the timeout itself
            terminal.write(f"(could not list asyncio tasks: {exc!r})\n")  # type: ignore[attr-defined]
        # the process ends next without any teardown: delete the Redis keys still in use here
        try:
            _delete_live_prefixes()
        except Exception as exc:
            terminal.write(f"(could not delete the test keys in Redis: {exc!r})\n")  # type: ignore[attr-defined]

    dump_stacks._adds_asyncio_tasks = True  # type: ignore[attr-defined]
    plugin.dump_stacks = dump_stacks  # type: ignore[union-attr]


_KEEP_TIMER = pytest.StashKey[bool]()


@pytest.hookimpl(wrapper=True)
def pytest_exception_interact(node: pytest.Item | pytest.Collector) -> object:
    # pytest-timeout stops the timer when a test fails (a post-mortem debugger may be about to
    # wait for a human). Without --pdb nobody waits, and the teardown that follows a failure
    # (fixtures, pytest-asyncio closing the loop and cancelling leftover tasks) is exactly where
    # a leaked task hangs: keep the timer running until the test's protocol ends.
    node.stash[_KEEP_TIMER] = not node.config.getoption("usepdb", False)
    try:
        return (yield)
    finally:
        node.stash[_KEEP_TIMER] = False


@pytest.hookimpl(tryfirst=True, optionalhook=True)  # a pytest-timeout hook
def pytest_timeout_cancel_timer(item: pytest.Item) -> bool | None:
    if item.stash.get(_KEEP_TIMER, False):
        return True  # handled: the timer stays armed
    return None


# --- Redis ------------------------------------------------------------------------------------


def _redis_answers(host: str, port: int, timeout: float = 0.5) -> bool:
    try:
        with socket.create_connection((host, port), timeout=timeout) as sock:
            sock.settimeout(timeout)
            sock.sendall(b"PING\r\n")
            return sock.recv(16).startswith(b"+PONG")
    except OSError:
        return False


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _unavailable(reason: str) -> None:
    if os.environ.get("CI", "").lower() == "true":
        pytest.fail(f"{reason} (CI=true: Redis tests must not be skipped)")
    pytest.skip(reason)


@pytest.fixture(scope="session")
def redis_url() -> Iterator[str]:
    if _redis_answers(*DEFAULT_REDIS):
        yield "redis://127.0.0.1:6379/0"
        return
    exe = shutil.which("redis-server")
    if exe is None:
        _unavailable("Redis is not reachable at {}:{} and redis-server is not on PATH".format(*DEFAULT_REDIS))
        return
    port = _free_port()
    proc = subprocess.Popen(
        [exe, "--port", str(port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no"],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        deadline = time.monotonic() + 10
        while not _redis_answers("127.0.0.1", port):
            if proc.poll() is not None or time.monotonic() > deadline:
                _unavailable(f"a private redis-server on port {port} did not start")
                return
            time.sleep(0.05)
        yield f"redis://127.0.0.1:{port}/0"
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=5)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(timeout=5)


# --- keys: a prefix per test, deleted afterwards ------------------------------------------------


def _delete_keys(url: str, patterns: list[str]) -> int:
    import redis

    client = redis.Redis.from_url(url, socket_connect_timeout=5, socket_timeout=10)
    try:
        deleted = 0
        for pattern in patterns:
            batch: list[bytes] = []
            for key in client.scan_iter(match=pattern, count=500):
                batch.append(key)
                if len(batch) >= 500:
                    deleted += int(client.delete(*batch))
                    batch = []
            if batch:
                deleted += int(client.delete(*batch))
        return deleted
    finally:
        client.close()


def _scan(url: str, pattern: str) -> set[bytes]:
    import redis

    client = redis.Redis.from_url(url, socket_connect_timeout=5, socket_timeout=10)
    try:
        return set(client.scan_iter(match=pattern, count=1000))
    finally:
        client.close()


# prefixes handed out and not yet cleaned up, by server URL: a run ended by pytest-timeout
# skips all teardown, so the timeout report deletes these itself
_LIVE_PREFIXES: dict[str, set[str]] = {}


def _delete_live_prefixes() -> None:
    for url, prefixes in list(_LIVE_PREFIXES.items()):
        if prefixes:
            _delete_keys(url, [f"{prefix}*" for prefix in prefixes])


@pytest.fixture
def redis_prefix_factory(redis_url: str) -> Iterator[Callable[[], str]]:
    """Makes fresh key prefixes (no trailing colon: stores add `:`); when the test ends, pass or
    fail, every key under each of them is deleted."""
    made: list[str] = []
    live = _LIVE_PREFIXES.setdefault(redis_url, set())

    def new() -> str:
        prefix = f"{SESSION_KEY_PREFIX}{uuid.uuid4().hex[:12]}"
        made.append(prefix)
        live.add(prefix)
        return prefix

    try:
        yield new
    finally:
        if made:
            # the prefixes are fixed-length random ids, so `<prefix>*` matches nobody else's keys
            _delete_keys(redis_url, [f"{prefix}*" for prefix in made])
            live.difference_update(made)


@pytest.fixture
def redis_prefix(redis_prefix_factory: Callable[[], str]) -> str:
    """One fresh key prefix, deleted with everything under it when the test ends."""
    return redis_prefix_factory()


@pytest.fixture(scope="session", autouse=True)
def _no_redis_keys_left_behind() -> Iterator[None]:
    """Only when the shared Redis answers: remember which test keys exist before the session,
    and after it fail on any key left under this session's prefix (warn about other new test
    keys, which another run may still be using)."""
    if not _redis_answers(*DEFAULT_REDIS):
        yield
        return
    url = "redis://{}:{}/0".format(*DEFAULT_REDIS)
    try:
        before = _scan(url, f"{TEST_KEY_PREFIX}*")
    except Exception as exc:  # the server went away meanwhile: nothing to compare against
        warnings.warn(f"cannot list test keys in Redis at {url}: {exc}", stacklevel=1)
        yield
        return
    yield
    if not _redis_answers(*DEFAULT_REDIS):
        return
    ours = _scan(url, f"{SESSION_KEY_PREFIX}*")
    everything = _scan(url, f"{TEST_KEY_PREFIX}*")
    others = everything - before - ours
    if stale := before & everything:
        warnings.warn(
            f"{len(stale)} test key(s) in Redis at {url} are older than this session (a killed or "
            f"concurrent run); once no other run is active: "
            f"redis-cli --scan --pattern '{TEST_KEY_PREFIX}*' | xargs -r redis-cli del",
            stacklevel=1,
        )
    if others:
        prefixes = sorted({k.decode(errors="replace").split(":", 1)[0] for k in others})
        warnings.warn(
            f"{len(others)} new test key(s) in Redis at {url} not made through redis_prefix "
            f"(a concurrent run, or a test that cleans up after itself by hand?): prefixes {prefixes[:10]}",
            stacklevel=1,
        )
    if ours:
        sample = sorted(k.decode(errors="replace") for k in ours)[:10]
        _delete_keys(url, [f"{SESSION_KEY_PREFIX}*"])
        pytest.fail(f"tests left {len(ours)} key(s) behind in Redis at {url} (now deleted): {sample}", pytrace=False)
