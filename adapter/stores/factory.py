"""Pick and configure a JobStore from one URL, as the config gives it.

    sqlite:///var/lib/mj/jobs.db        absolute path (three slashes, then the path)
    sqlite://data/jobs.db               path relative to the working directory
    sqlite://:memory:                   in memory, gone when closed (tests, demos)
        options: ?synchronous=FULL|NORMAL&busy_timeout_ms=5000
    redis://[:password@]host:6379/0?prefix=mj     (also rediss:// and unix://)
        `prefix` (default "mj") namespaces every key; the rest goes to redis-py unchanged.
"""

from __future__ import annotations

from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

from adapter.stores.base import JobStore

DEFAULT_REDIS_PREFIX = "mj"


_REDIS_SCHEMES = ("redis", "rediss", "unix")


def _scheme(url: str) -> str:
    return url.split("://", 1)[0].lower() if "://" in url else ""


def is_shared_store(url: str) -> bool:
    """Several processes may use the store at `url` at once (Redis): replicas of one service
    then coordinate their accounts. SQLite serves one process."""
    return _scheme(url) in _REDIS_SCHEMES


def open_store(url: str) -> JobStore:
    """A store for `url`, not yet opened: `await store.open()` (or `async with`) before use."""
    scheme = _scheme(url)
    if scheme == "sqlite":
        return _sqlite(url)
    if scheme in _REDIS_SCHEMES:
        return _redis(url)
    raise ValueError(f"unsupported store URL scheme {scheme!r}: use sqlite:// or redis://")


def _sqlite(url: str) -> JobStore:
    from adapter.stores.sqlite import SqliteJobStore

    rest = url.split("://", 1)[1]
    path, _, query = rest.partition("?")
    if path in ("", ":memory:", "/:memory:"):
        path = ":memory:"
    options = dict(parse_qsl(query, keep_blank_values=True))
    unknown = set(options) - {"synchronous", "busy_timeout_ms"}
    if unknown:
        raise ValueError(f"unknown sqlite store option(s): {', '.join(sorted(unknown))}")
    synchronous = options.get("synchronous", "FULL").upper()
    if synchronous not in ("FULL", "NORMAL"):
        raise ValueError("sqlite synchronous must be FULL or NORMAL")
    busy = int(options.get("busy_timeout_ms", "5000"))
    return SqliteJobStore(path, synchronous=synchronous, busy_timeout_ms=busy)  # type: ignore[arg-type]


def _redis(url: str) -> JobStore:
    try:
        from adapter.stores.redis import RedisJobStore
    except ImportError as exc:  # redis is an optional dependency (extra "redis")
        raise ValueError("a redis:// store needs the redis package: pip install 'mj-adapter[redis]'") from exc

    parts = urlsplit(url)
    query = parse_qsl(parts.query, keep_blank_values=True)
    prefix = DEFAULT_REDIS_PREFIX
    kept: list[tuple[str, str]] = []
    for key, value in query:
        if key == "prefix":
            prefix = value
        else:
            kept.append((key, value))
    if not prefix:
        raise ValueError("redis store prefix must not be empty")
    client_url = urlunsplit((parts.scheme, parts.netloc, parts.path, urlencode(kept), parts.fragment))
    return RedisJobStore(client_url, prefix=prefix)
