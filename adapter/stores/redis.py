"""The shared job store for several replicas: one Redis (redis-py's asyncio client).

Key layout, everything under `<prefix>:` so several deployments (or test runs) share a server:

    job:<id>                      hash  d = msgpack Job, s = status, x = JSON list of the index
                                        keys the job is in, k = its count_by_status field
    idx:all | idx:unfinished      zset  job ids scored by created_at
    idx:finished                  zset  finished job ids scored by when they finished (retention)
    idx:owner:<owner>             zset  "
    idx:status:<status>           zset  "
    idx:action:<action>           zset  "
    idx:parent:<parent id>        zset  "
    idx:msg:<message id>          zset  "
    idx:hash:<job hash>           zset  "
    idx:idem:<len>:<owner>:<key>  zset  " (the owner's length keeps "a:b"+"c" apart from "a"+"b:c")
    idx:fp:<len>:<owner>:<fp>     zset  "
    counts                        hash  "<status>|<action>" -> number of jobs
    ob:item:<id>                  hash  d = msgpack OutboxItem, q = its queue key, s = its state,
                                        j = its job's ob:job key, c = the replica holding a claim
                                        on it ("" or absent: none; the claim's end is in d)
    ob:due                        zset  pending item ids scored by next_attempt_ms (a claim moves
                                        its item to the claim's end, so it is not due meanwhile)
    ob:q:<len>:<job id>:<url>     zset  pending item ids of one (job, url) scored by seq
    ob:closed                     zset  done / dead item ids scored by created_ms (for purging)
    ob:job:<job id>               set   every item id of one job (deleted with the job)
    meta                          hash  retention = "1" once data written before idx:finished,
                                        ob:closed and ob:job existed has been indexed (on open)

Every write is one Lua script, so a job and all its index entries change together and the
compare-and-set / duplicate checks cannot race another replica. Which index keys a job is in is
computed here in Python only and stored with the job (`x`), so the scripts stay generic and the
old entries can be removed on update without re-deriving them in Lua.

Scripts touch keys they derive at run time, which a single Redis (or a primary with replicas)
allows; Redis Cluster is not supported.

Durability is the server's: a write is acknowledged once Redis has it in memory; how soon it is
on disk depends on the server's `appendonly` / `appendfsync` settings (use `appendfsync always`
where losing the last second of submits on a power cut matters).
"""

from __future__ import annotations

import contextlib
import json
import logging
import re
from collections.abc import AsyncIterator, Sequence
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import msgspec
import redis.asyncio as aioredis
import redis.exceptions as redis_errors

from adapter.domain.jobs import Job, JobStatus
from adapter.stores.base import (
    FINISHED_STATUSES,
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

log = logging.getLogger(__name__)

_INSERT_JOB = """
local job_key, counts_key, count_field, score, id, blob, status, index_json =
  ARGV[1], ARGV[2], ARGV[3], ARGV[4], ARGV[5], ARGV[6], ARGV[7], ARGV[8]
local finished_key, finished_score = ARGV[9], ARGV[10]
local job_prefix = ARGV[11]
local dedupe = {{ARGV[12], ARGV[13], 'idempotency_key'}, {ARGV[14], ARGV[15], 'fingerprint'}}
if redis.call('EXISTS', job_key) == 1 then
  return {'duplicate_id'}
end
for _, check in ipairs(dedupe) do
  if check[1] ~= '' then
    local hit = redis.call('ZRANGE', check[1], '+inf', check[2], 'BYSCORE', 'REV', 'LIMIT', 0, 1)
    if #hit > 0 then
      local existing = redis.call('HGET', job_prefix .. hit[1], 'd')
      if existing then
        return {'duplicate_request', check[3], existing}
      end
    end
  end
end
redis.call('HSET', job_key, 'd', blob, 's', status, 'x', index_json, 'k', count_field)
for _, key in ipairs(cjson.decode(index_json)) do
  redis.call('ZADD', key, score, id)
end
if finished_key ~= '' then
  redis.call('ZADD', finished_key, finished_score, id)
end
redis.call('HINCRBY', counts_key, count_field, 1)
return {'ok'}
"""

_UPDATE_JOB = """
local job_key, counts_key, count_field, score, id, blob, status, index_json =
  ARGV[1], ARGV[2], ARGV[3], ARGV[4], ARGV[5], ARGV[6], ARGV[7], ARGV[8]
local finished_key, finished_score = ARGV[9], ARGV[10]
local expect, expect_blob = ARGV[11], ARGV[12]
local old = redis.call('HMGET', job_key, 's', 'x', 'k', 'd')
if not old[1] then
  return 0
end
if expect ~= '' and not string.find(',' .. expect .. ',', ',' .. old[1] .. ',', 1, true) then
  return 0
end
if expect_blob ~= '' and old[4] ~= expect_blob then
  return 0
end
for _, key in ipairs(cjson.decode(old[2])) do
  redis.call('ZREM', key, id)
end
if redis.call('HINCRBY', counts_key, old[3], -1) <= 0 then
  redis.call('HDEL', counts_key, old[3])
end
redis.call('HSET', job_key, 'd', blob, 's', status, 'x', index_json, 'k', count_field)
for _, key in ipairs(cjson.decode(index_json)) do
  redis.call('ZADD', key, score, id)
end
if finished_key ~= '' then
  redis.call('ZADD', finished_key, finished_score, id)
end
redis.call('HINCRBY', counts_key, count_field, 1)
return 1
"""

# Newest member of a zset within a score range, and its job record, read together so the
# record returned is the one the index pointed at.
_FIND_JOB = """
local hit = redis.call('ZRANGE', ARGV[1], '+inf', ARGV[2], 'BYSCORE', 'REV', 'LIMIT', 0, 1)
if #hit == 0 then
  return false
end
return redis.call('HGET', ARGV[3] .. hit[1], 'd')
"""

_OUTBOX_WRITE = """
local item_key, due_key, queue_key, id, blob, state, next_ms, seq, mode =
  ARGV[1], ARGV[2], ARGV[3], ARGV[4], ARGV[5], ARGV[6], ARGV[7], ARGV[8], ARGV[9]
local closed_key, created_ms, job_items_key = ARGV[10], ARGV[11], ARGV[12]
local claimed_by, expect_owner = ARGV[13], ARGV[14]
local old = redis.call('HMGET', item_key, 'q', 'j', 'c')
if mode == 'add' and old[1] then
  return 0
end
if mode == 'update' then
  if not old[1] then
    return 0
  end
  if expect_owner ~= '' and old[3] ~= expect_owner then
    return 0
  end
  redis.call('ZREM', old[1], id)
  redis.call('ZREM', due_key, id)
  redis.call('ZREM', closed_key, id)
  if old[2] and old[2] ~= job_items_key then
    redis.call('SREM', old[2], id)
  end
end
redis.call('HSET', item_key, 'd', blob, 'q', queue_key, 's', state, 'j', job_items_key, 'c', claimed_by)
redis.call('SADD', job_items_key, id)
if state == 'pending' then
  redis.call('ZADD', due_key, next_ms, id)
  redis.call('ZADD', queue_key, seq, id)
else
  redis.call('ZADD', closed_key, created_ms, id)
end
return 1
"""

# Claims an item for one delivery attempt if the record is still the one read (`expected`:
# compare-and-set on the blob, which carries the current claim's end) and the item is pending,
# due and heads its queue. The claim defers the item to its end in ob:due. 1 = claimed,
# 0 = not claimable (or missing), -1 = the record changed since it was read.
_OUTBOX_CLAIM = """
local item_key, due_key, id, expected, blob, owner, until_ms, now_ms =
  ARGV[1], ARGV[2], ARGV[3], ARGV[4], ARGV[5], ARGV[6], ARGV[7], tonumber(ARGV[8])
local old = redis.call('HMGET', item_key, 'd', 's', 'q')
if not old[1] then
  return 0
end
if old[1] ~= expected then
  return -1
end
if (old[2] and old[2] ~= 'pending') or not old[3] then
  return 0
end
local due = redis.call('ZSCORE', due_key, id)
if not due or tonumber(due) > now_ms then
  return 0
end
local head = redis.call('ZRANGE', old[3], 0, 0, 'WITHSCORES')
local mine = redis.call('ZSCORE', old[3], id)
if not mine or not head[2] or tonumber(mine) > tonumber(head[2]) then
  return 0
end
redis.call('HSET', item_key, 'd', blob, 'c', owner)
redis.call('ZADD', due_key, until_ms, id)
return 1
"""

# Removes one outbox item and every index entry of it; prepended to the scripts that need it.
_DROP_ITEM = """
local function drop_item(item_key, id, due_key, closed_key)
  local old = redis.call('HMGET', item_key, 'q', 'j')
  if old[1] then
    redis.call('ZREM', old[1], id)
  end
  if old[2] then
    redis.call('SREM', old[2], id)
  end
  redis.call('ZREM', due_key, id)
  redis.call('ZREM', closed_key, id)
  redis.call('DEL', item_key)
end
"""

_OUTBOX_DELETE = (
    _DROP_ITEM
    + """
drop_item(ARGV[1], ARGV[3], ARGV[2], ARGV[4])
return 1
"""
)

# Done / dead items created before the cut-off, at most `limit` per call. The state is checked
# on the item itself, so a pending item is never dropped even if an index entry were stale.
_OUTBOX_PURGE = (
    _DROP_ITEM
    + """
local closed_key, due_key, item_prefix, before, limit = ARGV[1], ARGV[2], ARGV[3], ARGV[4], tonumber(ARGV[5])
local ids = redis.call('ZRANGE', closed_key, '-inf', before, 'BYSCORE', 'LIMIT', 0, limit)
local purged = 0
for _, id in ipairs(ids) do
  local state = redis.call('HGET', item_prefix .. id, 's')
  if state and state ~= 'pending' then
    drop_item(item_prefix .. id, id, due_key, closed_key)
    purged = purged + 1
  else
    redis.call('ZREM', closed_key, id)
  end
end
return {purged, #ids}
"""
)

# Jobs with every index entry they are in (the job hash lists them in `x`) and their outbox items.
_DELETE_JOBS = (
    _DROP_ITEM
    + """
local counts_key, job_prefix, item_prefix, job_items_prefix, due_key, closed_key =
  ARGV[1], ARGV[2], ARGV[3], ARGV[4], ARGV[5], ARGV[6]
local deleted = 0
for i = 7, #ARGV do
  local id = ARGV[i]
  local job_key = job_prefix .. id
  local old = redis.call('HMGET', job_key, 'x', 'k')
  if old[1] then
    for _, key in ipairs(cjson.decode(old[1])) do
      redis.call('ZREM', key, id)
    end
    if old[2] and redis.call('HINCRBY', counts_key, old[2], -1) <= 0 then
      redis.call('HDEL', counts_key, old[2])
    end
    redis.call('DEL', job_key)
    deleted = deleted + 1
  end
  local items_key = job_items_prefix .. id
  for _, item_id in ipairs(redis.call('SMEMBERS', items_key)) do
    drop_item(item_prefix .. item_id, item_id, due_key, closed_key)
  end
  redis.call('DEL', items_key)
end
return deleted
"""
)

# Indexes one outbox item written before `s`, `j`, ob:closed and ob:job existed - only if it is
# still the record that was read (compare-and-set on the blob).
_OUTBOX_BACKFILL = """
local item_key, blob, state, job_items_key, closed_key, created_ms, id =
  ARGV[1], ARGV[2], ARGV[3], ARGV[4], ARGV[5], ARGV[6], ARGV[7]
local old = redis.call('HMGET', item_key, 'd', 's')
if old[2] then
  return 1
end
if old[1] ~= blob then
  return 0
end
redis.call('HSET', item_key, 's', state, 'j', job_items_key)
redis.call('SADD', job_items_key, id)
if state ~= 'pending' then
  redis.call('ZADD', closed_key, created_ms, id)
end
return 1
"""

# Pending items whose time has come, keeping only the head (lowest seq) of each (job, url)
# queue; scanned in batches so items held back behind a retrying head do not hide later ones.
_OUTBOX_DUE = """
local due_key, item_prefix, now_ms, limit = ARGV[1], ARGV[2], ARGV[3], tonumber(ARGV[4])
local out = {}
local offset, batch = 0, 200
while #out < limit do
  local ids = redis.call('ZRANGE', due_key, '-inf', now_ms, 'BYSCORE', 'LIMIT', offset, batch)
  if #ids == 0 then
    break
  end
  for _, id in ipairs(ids) do
    local item = redis.call('HMGET', item_prefix .. id, 'q', 'd')
    if item[1] then
      local head = redis.call('ZRANGE', item[1], 0, 0, 'WITHSCORES')
      local mine = redis.call('ZSCORE', item[1], id)
      if mine and head[2] and tonumber(mine) <= tonumber(head[2]) then
        out[#out + 1] = item[2]
        if #out >= limit then
          break
        end
      end
    end
  end
  offset = offset + batch
end
return out
"""

_SCAN_PAGE = 100  # ids fetched per round trip while filtering list_jobs candidates
_DELETE_BATCH = 100  # jobs per delete script
_PURGE_BATCH = 500  # outbox items per purge script
_UPGRADE_PAGE = 200  # records read per round trip while indexing data from before retention
_RETENTION_MARK = b"1"


def redact_url(url: str) -> str:
    """The URL with its password (if any) masked, for reprs and messages."""
    parts = urlsplit(url)
    if parts.password is None:
        return url
    host = parts.hostname or ""
    if parts.port is not None:
        host = f"{host}:{parts.port}"
    user = parts.username or ""
    return urlunsplit((parts.scheme, f"{user}:***@{host}", parts.path, parts.query, parts.fragment))


def _length_prefixed(first: str, second: str) -> str:
    return f"{len(first)}:{first}:{second}"


def _glob_escape(text: str) -> str:
    # a key prefix is operator-chosen text: keep SCAN's pattern characters literal
    return re.sub(r"([*?\[\]\\])", r"\\\1", text)


class RedisJobStore:
    """JobStore on Redis. `url` is a redis-py URL (redis://, rediss://, unix://)."""

    def __init__(self, url: str, *, prefix: str = "mj", client: aioredis.Redis | None = None) -> None:
        if not prefix:
            raise ValueError("redis key prefix must not be empty")
        self._url = url
        self.prefix = prefix
        self._client = client
        self._owns_client = client is None
        self._open = False

    def __repr__(self) -> str:
        return f"RedisJobStore(url={redact_url(self._url)!r}, prefix={self.prefix!r})"

    @property
    def client_url(self) -> str:
        """The redis-py URL (credentials included: never log it; repr() redacts them)."""
        return self._url

    async def __aenter__(self) -> RedisJobStore:
        await self.open()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    # --- keys ---------------------------------------------------------------------------------

    def _k(self, *parts: str) -> str:
        return ":".join((self.prefix, *parts))

    def _job_key(self, job_id: str) -> str:
        return self._k("job", job_id)

    def _index_keys(self, job: Job) -> list[str]:
        keys = [
            self._k("idx", "all"),
            self._k("idx", "owner", job.owner),
            self._k("idx", "status", job.status.value),
            self._k("idx", "action", job.action.value),
        ]
        if job.status.finished:
            # scored by finish time, not created_at: see _job_args
            keys.append(self._finished_key())
        else:
            keys.append(self._k("idx", "unfinished"))
        if job.idempotency_key:
            keys.append(self._idem_key(job.owner, job.idempotency_key))
        if fingerprint := job_fingerprint(job):
            keys.append(self._fp_key(job.owner, fingerprint))
        if job.message_id:
            keys.append(self._k("idx", "msg", job.message_id))
        if job.job_hash:
            keys.append(self._k("idx", "hash", job.job_hash))
        if job.parent_id:
            keys.append(self._k("idx", "parent", job.parent_id))
        return keys

    def _finished_key(self) -> str:
        return self._k("idx", "finished")

    def _idem_key(self, owner: str, key: str) -> str:
        return self._k("idx", "idem", _length_prefixed(owner, key))

    def _fp_key(self, owner: str, fingerprint: str) -> str:
        return self._k("idx", "fp", _length_prefixed(owner, fingerprint))

    def _outbox_key(self, item_id: str) -> str:
        return self._k("ob", "item", item_id)

    def _queue_key(self, item: OutboxItem) -> str:
        return self._k("ob", "q", _length_prefixed(item.job_id, item.url))

    def _job_items_key(self, job_id: str) -> str:
        return self._k("ob", "job", job_id)

    def _closed_key(self) -> str:
        return self._k("ob", "closed")

    @staticmethod
    def _count_field(job: Job) -> str:
        return f"{job.status.value}|{job.action.value}"

    # --- lifecycle ----------------------------------------------------------------------------

    async def open(self) -> None:
        if self._open:
            return
        if self._client is None:
            # A blocking pool: a burst of calls waits for a free connection (up to `timeout`)
            # instead of failing with "too many connections". `?max_connections=` in the URL
            # sizes it.
            pool = aioredis.BlockingConnectionPool.from_url(
                self._url, decode_responses=False, socket_connect_timeout=5, timeout=20
            )
            self._client = aioredis.Redis.from_pool(pool)
            self._owns_client = True
        client = self._client
        self._insert_job = client.register_script(_INSERT_JOB)
        self._update_job = client.register_script(_UPDATE_JOB)
        self._find_job = client.register_script(_FIND_JOB)
        self._outbox_write = client.register_script(_OUTBOX_WRITE)
        self._outbox_del = client.register_script(_OUTBOX_DELETE)
        self._outbox_claim_script = client.register_script(_OUTBOX_CLAIM)
        self._outbox_due_script = client.register_script(_OUTBOX_DUE)
        self._outbox_purge_script = client.register_script(_OUTBOX_PURGE)
        self._outbox_backfill = client.register_script(_OUTBOX_BACKFILL)
        self._delete_jobs_script = client.register_script(_DELETE_JOBS)
        try:
            async with self._errors():
                await client.ping()
            self._open = True
            await self._upgrade()
        except BaseException:
            self._open = False
            await self._drop_client()
            raise

    async def close(self) -> None:
        self._open = False
        await self._drop_client()

    async def _drop_client(self) -> None:
        # A client handed in by the caller is theirs to close.
        if self._owns_client and self._client is not None:
            client, self._client = self._client, None
            await client.aclose()

    # --- data written before retention --------------------------------------------------------

    async def _upgrade(self) -> None:
        """Index what an adapter without retention wrote: finished jobs into idx:finished, and
        outbox items into ob:job / ob:closed. Runs once per prefix (idempotent, and safe when
        several replicas start at the same time: every write is a compare-and-set)."""
        redis = self._redis
        meta = self._k("meta")
        async with self._errors():
            if await redis.hget(meta, "retention") == _RETENTION_MARK:
                return
        jobs = await self._upgrade_jobs()
        items = await self._upgrade_outbox()
        async with self._errors():
            await redis.hset(meta, "retention", _RETENTION_MARK)
        if jobs or items:
            log.info(
                "redis store %s: indexed %d finished jobs and %d outbox items for retention", self.prefix, jobs, items
            )

    async def _upgrade_jobs(self) -> int:
        done = 0
        for status in FINISHED_STATUSES:
            zset = self._k("idx", "status", status.value)
            members = (m async for m, _ in self._redis.zscan_iter(zset, count=_UPGRADE_PAGE))
            async for page in self._pages(members):
                done += await self._upgrade_job_page([m.decode() for m in page])
        return done

    async def _upgrade_job_page(self, ids: list[str]) -> int:
        redis = self._redis
        finished_key = self._finished_key()
        async with self._errors():
            pipe = redis.pipeline(transaction=False)
            for job_id in ids:
                pipe.hmget(self._job_key(job_id), "d", "x")
            rows = await pipe.execute()
        done = 0
        for blob, index_json in rows:
            if blob is None or index_json is None or finished_key in json.loads(index_json):
                continue
            if await self._reindex(blob):
                done += 1
        return done

    async def _reindex(self, blob: bytes) -> bool:
        """Rewrite a job record as it is (so its index list is recomputed), unless it changed."""
        redis = self._redis
        try:
            job = decode_job(blob)
        except StoreError:
            return False  # unreadable: nothing could serve it anyway; leave it as it is
        async with self._errors():
            return bool(await self._update_job(keys=[], args=[*self._job_args(job, blob), "", blob], client=redis))

    async def _upgrade_outbox(self) -> int:
        redis = self._redis
        pattern = _glob_escape(self._outbox_key("")) + "*"
        done = 0
        async for keys in self._pages(redis.scan_iter(match=pattern, count=500)):
            async with self._errors():
                pipe = redis.pipeline(transaction=False)
                for key in keys:
                    pipe.hmget(key, "d", "s")
                rows = await pipe.execute()
            for key, (blob, state) in zip(keys, rows, strict=True):
                if blob is not None and state is None and await self._index_old_item(key, blob):
                    done += 1
        return done

    async def _pages(self, members: AsyncIterator[bytes]) -> AsyncIterator[list[bytes]]:
        """A (Z)SCAN in pages, handled as they come rather than collected whole first."""
        page: list[bytes] = []
        while True:
            async with self._errors():
                member = await anext(members, None)
            if member is None:
                break
            page.append(member)
            if len(page) >= _UPGRADE_PAGE:
                yield page
                page = []
        if page:
            yield page

    async def _index_old_item(self, key: bytes, blob: bytes) -> bool:
        redis = self._redis
        for _ in range(3):  # the item changed between read and write: read it again
            try:
                item = decode_outbox(blob)
            except StoreError:
                return False
            args = [
                key,
                blob,
                item.state,
                self._job_items_key(item.job_id),
                self._closed_key(),
                str(item.created_ms),
                item.id,
            ]
            async with self._errors():
                if await self._outbox_backfill(keys=[], args=args, client=redis):
                    return True
                fresh = await redis.hget(key, "d")
            if not isinstance(fresh, bytes):  # deleted meanwhile
                return False
            blob = fresh
        return False

    @contextlib.asynccontextmanager
    async def _errors(self) -> AsyncIterator[None]:
        # redis-py's messages name host and port but never the password; still, say which store.
        try:
            yield
        except (redis_errors.ConnectionError, redis_errors.TimeoutError) as exc:
            raise StoreUnavailable(f"redis unreachable ({redact_url(self._url)}): {exc}") from exc
        except redis_errors.RedisError as exc:
            raise StoreError(f"redis: {exc}") from exc

    @property
    def _redis(self) -> aioredis.Redis:
        if not self._open or self._client is None:
            raise StoreUnavailable("redis job store is not open")
        return self._client

    # --- jobs ---------------------------------------------------------------------------------

    def _job_args(self, job: Job, blob: bytes | None = None) -> list[Any]:
        finished = expiry_time(job)
        return [
            self._job_key(job.id),
            self._k("counts"),
            self._count_field(job),
            str(job.created_at),
            job.id,
            encode_job(job) if blob is None else blob,
            job.status.value,
            json.dumps(self._index_keys(job)),
            # every index is scored by created_at except this one (it is also in the list above,
            # so updates and deletes remove it like any other)
            self._finished_key() if finished is not None else "",
            str(finished) if finished is not None else "",
        ]

    async def insert(
        self,
        job: Job,
        *,
        idempotency_since_ms: int | None = None,
        fingerprint_since_ms: int | None = None,
    ) -> None:
        redis = self._redis
        idem_zset = idem_since = fp_zset = fp_since = ""
        if job.idempotency_key and idempotency_since_ms is not None:
            idem_zset, idem_since = self._idem_key(job.owner, job.idempotency_key), str(idempotency_since_ms)
        fingerprint = job_fingerprint(job)
        if fingerprint and fingerprint_since_ms is not None:
            fp_zset, fp_since = self._fp_key(job.owner, fingerprint), str(fingerprint_since_ms)
        args = [*self._job_args(job), self._job_key(""), idem_zset, idem_since, fp_zset, fp_since]
        async with self._errors():
            reply = await self._insert_job(keys=[], args=args, client=redis)
        outcome = reply[0].decode()
        if outcome == "duplicate_id":
            raise DuplicateJob(job.id)
        if outcome == "duplicate_request":
            matched = "fingerprint" if reply[1] == b"fingerprint" else "idempotency_key"
            raise DuplicateRequest(decode_job(reply[2]), matched=matched)

    async def update(self, job: Job, *, expect_status: ExpectStatus = None) -> bool:
        redis = self._redis
        expect = ",".join(expected_values(expect_status))  # status values hold no comma
        async with self._errors():
            return bool(await self._update_job(keys=[], args=[*self._job_args(job), expect, ""], client=redis))

    def cached_finished(self, job_id: str) -> bytes | None:
        return None  # other replicas write the same jobs: only a read can tell what is current

    def cached_finished_by_key(self, owner: str, key: str) -> bytes | None:
        return None

    async def get(self, job_id: str) -> Job | None:
        redis = self._redis
        async with self._errors():
            blob = await redis.hget(self._job_key(job_id), "d")
        return decode_job(blob) if blob is not None else None

    async def get_many(self, ids: Sequence[str]) -> list[Job]:
        blobs = await self._blobs(ids)
        return [decode_job(b) for b in blobs if b is not None]

    async def _blobs(self, ids: Sequence[str]) -> list[bytes | None]:
        redis = self._redis
        if not ids:
            return []
        async with self._errors():
            pipe = redis.pipeline(transaction=False)
            for job_id in ids:
                pipe.hget(self._job_key(job_id), "d")
            return list(await pipe.execute())

    async def _find(self, zset: str, since_ms: int | None) -> Job | None:
        redis = self._redis
        since = str(since_ms) if since_ms is not None else "-inf"
        async with self._errors():
            blob = await self._find_job(keys=[], args=[zset, since, self._job_key("")], client=redis)
        return decode_job(blob) if blob is not None else None

    async def find_by_idempotency(self, owner: str, key: str, *, since_ms: int | None = None) -> Job | None:
        return await self._find(self._idem_key(owner, key), since_ms) if key else None

    async def find_by_fingerprint(self, owner: str, fingerprint: str, *, since_ms: int) -> Job | None:
        return await self._find(self._fp_key(owner, fingerprint), since_ms) if fingerprint else None

    async def find_by_message(self, message_id: str) -> Job | None:
        return await self._find(self._k("idx", "msg", message_id), None) if message_id else None

    async def find_by_job_hash(self, job_hash: str) -> Job | None:
        return await self._find(self._k("idx", "hash", job_hash), None) if job_hash else None

    async def list_unfinished(self) -> list[Job]:
        redis = self._redis
        async with self._errors():
            ids = await redis.zrange(self._k("idx", "unfinished"), 0, -1)
        jobs = await self.get_many([i.decode() for i in ids])
        # a job may have finished between the two reads
        return [j for j in jobs if not j.status.finished]

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
        statuses = normalize_statuses(status)
        actions = normalize_actions(action)
        if statuses == [] or actions == []:
            return []

        def wanted(job: Job) -> bool:
            return (
                (owner is None or job.owner == owner)
                and (statuses is None or job.status in statuses)
                and (actions is None or job.action in actions)
                and (parent_id is None or job.parent_id == parent_id)
                and (before_ms is None or job.created_at < before_ms)
            )

        # Scan the narrowest index; the others become filters on the records read.
        if owner is not None:
            sources = [self._k("idx", "owner", owner)]
        elif parent_id is not None:
            sources = [self._k("idx", "parent", parent_id)]
        elif statuses is not None:
            sources = [self._k("idx", "status", s.value) for s in dict.fromkeys(statuses)]
        elif actions is not None:
            sources = [self._k("idx", "action", a.value) for a in dict.fromkeys(actions)]
        else:
            sources = [self._k("idx", "all")]

        found: dict[str, Job] = {}
        for source in sources:
            # Each source contributes its own newest `limit` matches; the merge keeps the best.
            for job in await self._scan_newest(source, before_ms, limit, wanted):
                found[job.id] = job
        ordered = sorted(found.values(), key=lambda j: (j.created_at, j.id.encode()), reverse=True)
        return ordered[:limit]

    async def _scan_newest(self, zset: str, before_ms: int | None, limit: int, wanted: Any) -> list[Job]:
        redis = self._redis
        top = f"({before_ms}" if before_ms is not None else "+inf"
        out: list[Job] = []
        seen: set[str] = set()
        offset = 0
        page = max(limit, _SCAN_PAGE)
        while len(out) < limit:
            async with self._errors():
                raw = await redis.zrange(zset, top, "-inf", desc=True, byscore=True, offset=offset, num=page)
            if not raw:
                break
            ids = [i.decode() for i in raw]
            for blob in await self._blobs(ids):
                if blob is None:
                    continue
                job = decode_job(blob)
                if job.id not in seen and wanted(job):
                    seen.add(job.id)
                    out.append(job)
            if len(raw) < page:
                break
            offset += page
        return out

    async def count_by_status(self) -> dict[tuple[str, str], int]:
        redis = self._redis
        async with self._errors():
            raw = await redis.hgetall(self._k("counts"))
        counts: dict[tuple[str, str], int] = {}
        for field, value in raw.items():
            status, _, action = field.decode().partition("|")
            if (n := int(value)) > 0:
                counts[(status, action)] = n
        return counts

    # --- retention ----------------------------------------------------------------------------

    async def list_expired(self, finished_before_ms: int, limit: int) -> list[str]:
        redis = self._redis
        if check_limit(limit) == 0:
            return []
        async with self._errors():
            # equal scores come back in member (byte) order: ties broken by id, as in SQLite
            raw = await redis.zrange(
                self._finished_key(), "-inf", f"({finished_before_ms}", byscore=True, offset=0, num=limit
            )
        return [i.decode() for i in raw]

    async def delete_jobs(self, ids: Sequence[str]) -> int:
        redis = self._redis
        unique = list(dict.fromkeys(ids))
        head = [
            self._k("counts"),
            self._job_key(""),
            self._outbox_key(""),
            self._job_items_key(""),
            self._k("ob", "due"),
            self._closed_key(),
        ]
        deleted = 0
        # batches keep each script (which blocks the server while it runs) short
        for start in range(0, len(unique), _DELETE_BATCH):
            batch = unique[start : start + _DELETE_BATCH]
            async with self._errors():
                deleted += int(await self._delete_jobs_script(keys=[], args=[*head, *batch], client=redis))
        return deleted

    async def outbox_purge(self, before_ms: int) -> int:
        redis = self._redis
        args = [self._closed_key(), self._k("ob", "due"), self._outbox_key(""), f"({before_ms}", str(_PURGE_BATCH)]
        purged = 0
        while True:
            async with self._errors():
                done, seen = await self._outbox_purge_script(keys=[], args=args, client=redis)
            purged += int(done)
            if int(seen) < _PURGE_BATCH:
                return purged

    # --- webhook outbox -----------------------------------------------------------------------

    def _outbox_args(self, item: OutboxItem, mode: str, expect_owner: str | None = None) -> list[Any]:
        return [
            self._outbox_key(item.id),
            self._k("ob", "due"),
            self._queue_key(item),
            item.id,
            encode_outbox(item),
            item.state,
            str(item.next_attempt_ms),
            str(item.seq),
            mode,
            self._closed_key(),
            str(item.created_ms),
            self._job_items_key(item.job_id),
            item.claimed_by or "",
            expect_owner or "",
        ]

    async def outbox_add(self, item: OutboxItem) -> None:
        redis = self._redis
        async with self._errors():
            added = await self._outbox_write(keys=[], args=self._outbox_args(item, "add"), client=redis)
        if not added:
            raise DuplicateOutboxItem(item.id)

    async def outbox_get(self, item_id: str) -> OutboxItem | None:
        redis = self._redis
        async with self._errors():
            blob = await redis.hget(self._outbox_key(item_id), "d")
        return decode_outbox(blob) if blob is not None else None

    async def outbox_due(self, now_ms: int, limit: int = 100) -> list[OutboxItem]:
        redis = self._redis
        if check_limit(limit) == 0:
            return []
        args = [self._k("ob", "due"), self._outbox_key(""), str(now_ms), str(limit)]
        async with self._errors():
            blobs = await self._outbox_due_script(keys=[], args=args, client=redis)
        return [decode_outbox(b) for b in blobs]

    async def outbox_claim(self, item_id: str, owner: str, until_ms: int, now_ms: int) -> OutboxItem | None:
        redis = self._redis
        key = self._outbox_key(item_id)
        for _ in range(5):  # the record changed between read and claim: read it again
            async with self._errors():
                blob = await redis.hget(key, "d")
            if blob is None:
                return None
            current = decode_outbox(blob)
            if current.claimed_until_ms > now_ms:
                return None  # a live claim (the script checks that this is still the record)
            claimed = msgspec.structs.replace(
                current, claimed_by=owner, claimed_until_ms=until_ms, next_attempt_ms=until_ms
            )
            args = [key, self._k("ob", "due"), item_id, blob, encode_outbox(claimed), owner, str(until_ms), str(now_ms)]
            async with self._errors():
                outcome = int(await self._outbox_claim_script(keys=[], args=args, client=redis))
            if outcome >= 0:
                return claimed if outcome == 1 else None
        return None

    async def outbox_update(self, item: OutboxItem, *, expect_owner: str | None = None) -> bool:
        redis = self._redis
        async with self._errors():
            return bool(
                await self._outbox_write(keys=[], args=self._outbox_args(item, "update", expect_owner), client=redis)
            )

    async def outbox_delete(self, item_id: str) -> None:
        redis = self._redis
        args = [self._outbox_key(item_id), self._k("ob", "due"), item_id, self._closed_key()]
        async with self._errors():
            await self._outbox_del(keys=[], args=args, client=redis)
