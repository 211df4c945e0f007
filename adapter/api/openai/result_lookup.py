"""Is this image one of our results, and which one? For edits with a mask (Vary (Region) of that
job) and for variations (V<i> / Vary (Strong) of it).

An image comes back to us either as one of our URLs (its key names the job) or as uploaded
bytes. Bytes are matched by content hash against the images of the caller's recent successful
jobs. Candidates are filtered by pixel size first (stored refs know theirs), so only images
that could match are read and hashed, and every hash is remembered (keys are immutable, so a
hash never goes stale). Only the caller's own jobs are ever considered.
"""

from __future__ import annotations

import asyncio
import hashlib
from collections import OrderedDict
from typing import Literal

import msgspec

from adapter.domain.jobs import ImageRef, Job, JobStatus, is_grid_job
from adapter.engine.errors import JobNotFound
from adapter.engine.service import JobService
from adapter.media.store import KEY_RE, ImageStore, job_id_from_key

ResultKind = Literal["grid", "tile", "single"]
_TOKEN_LEN = 26  # the random part of a key (see media.store)


class OurResult(msgspec.Struct, frozen=True, kw_only=True):
    job: Job
    kind: ResultKind  # the whole 2x2 grid, one of its four images, or a single (upscaled) image
    index: int | None = None  # 1-4 for a tile


def _token(key: str) -> str | None:
    m = KEY_RE.fullmatch(key)
    return m["token"] if m else None


def classify(job: Job, key: str) -> OurResult | None:
    """What `key` is among the job's results. A converted copy (`output_format`) is named after
    the original's token, so it counts as that original. Inputs and previews are not results."""
    m = KEY_RE.fullmatch(key)
    if m is None or job.status is not JobStatus.SUCCESS:
        return None

    def same(ref: ImageRef) -> bool:
        return ref.key == key or m["name"][:_TOKEN_LEN] == _token(ref.key)

    grid = is_grid_job(job)
    if job.image is not None and same(job.image):
        return OurResult(job=job, kind="grid" if grid else "single")
    for i, ref in enumerate(job.images, start=1):
        if same(ref):
            return OurResult(job=job, kind="tile", index=i) if grid else OurResult(job=job, kind="single")
    return None


def _digest(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


class ResultFinder:
    def __init__(self, service: JobService, store: ImageStore, *, scan_jobs: int = 50, remember: int = 20_000) -> None:
        self.service = service
        self.store = store
        self.scan_jobs = scan_jobs
        self._remember = remember
        self._hash_by_key: OrderedDict[str, str] = OrderedDict()
        self._key_by_hash: dict[str, str] = {}

    async def by_key(self, key: str, owner: str) -> OurResult | None:
        job_id = job_id_from_key(key)
        if job_id is None:
            return None
        try:
            job = await self.service.get(job_id, owner)
        except JobNotFound:
            return None  # another key's job is no result of this caller
        return classify(job, key)

    async def by_content(self, data: bytes, width: int, height: int, owner: str) -> OurResult | None:
        digest = await self._hash(data)
        if (key := self._key_by_hash.get(digest)) is not None:
            return await self.by_key(key, owner)
        jobs = await self.service.store.list_jobs(owner=owner, status=JobStatus.SUCCESS, limit=self.scan_jobs)
        for job in jobs:
            refs = {r.key: r for r in ([job.image] if job.image else []) + list(job.images)}
            for ref in refs.values():
                if (ref.width, ref.height) != (width, height):
                    continue
                if await self._hash_of(ref.key) == digest:
                    return classify(job, ref.key)
        return None

    async def _hash(self, data: bytes) -> str:
        return await asyncio.to_thread(_digest, data) if len(data) > 256 * 1024 else _digest(data)

    async def _hash_of(self, key: str) -> str | None:
        if (known := self._hash_by_key.get(key)) is not None:
            self._hash_by_key.move_to_end(key)
            return known
        stored = await self.store.get(key)
        if stored is None:
            return None
        digest = await self._hash(stored.data)
        self._hash_by_key[key] = digest
        self._key_by_hash[digest] = key
        while len(self._hash_by_key) > self._remember:
            old_key, old_digest = self._hash_by_key.popitem(last=False)
            if self._key_by_hash.get(old_digest) == old_key:
                del self._key_by_hash[old_digest]
        return digest
