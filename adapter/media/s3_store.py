"""Result images on an S3-compatible object store (AWS S3, MinIO, Cloudflare R2, Ceph, moto...).

`MJ_ADAPTER_IMAGE_STORE_URL=s3://bucket/prefix?endpoint_url=...&region=...` selects it. Objects
are laid out like the local directory: `<prefix>/images/<key>` in the bucket mirrors
`<data dir>/images/<key>` on disk, so the bucket (or a CDN in front of it) can serve the very URLs
we hand out (`MJ_ADAPTER_IMAGE_PUBLIC_BASE_URL=<bucket URL>/<prefix>` makes them
`<...>/images/<job id>/<file>`), and `key_from_url` still recognises them for follow-ups.

The client is obstore (the Rust `object_store` crate behind a small async API): one wheel with no
Python dependencies, async without threads, streaming reads, batched deletes, and the standard
AWS environment variables read by the store itself. aiobotocore would bring botocore's models and
aiohttp for the four calls we make.

Credentials come from the environment only (AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY,
AWS_SESSION_TOKEN, or the instance/container role); a URL that tries to carry them is refused, so
they never end up in a config file, a log line or an error message.
"""

from __future__ import annotations

import asyncio
import os
import re
from datetime import timedelta
import urllib.parse
from collections.abc import AsyncIterator
from typing import Any

import msgspec

from adapter.domain.jobs import ImageRef
from adapter.media.store import ImageFile, StoredImage, content_type_from_key, is_valid_job_id, is_valid_key, new_key, sniff

_BUCKET_RE = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,254}")
_PREFIX_SEGMENT_RE = re.compile(r"[A-Za-z0-9._-]{1,128}")
_QUERY_PARAMS = ("endpoint_url", "region")
# anything that looks like a credential is refused with a pointer to the environment variables
_CREDENTIAL_WORDS = ("key", "secret", "token", "password", "credential", "signature")
_DELETE_BATCH = 1000  # S3's DeleteObjects takes at most 1000 keys
_STREAM_CHUNK = 256 * 1024

ENV_HINT = "set AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY (and AWS_SESSION_TOKEN) in the environment instead"


class S3Location(msgspec.Struct, frozen=True):
    bucket: str
    prefix: str = ""  # "" or "a/b": no leading or trailing slash
    endpoint_url: str | None = None  # None: AWS_ENDPOINT_URL(_S3), else AWS itself
    region: str | None = None  # None: AWS_REGION / AWS_DEFAULT_REGION, else us-east-1

    def describe(self) -> str:
        """For logs: where the images go (never credentials: the URL cannot hold any)."""
        where = f"s3://{self.bucket}/{self.prefix}".rstrip("/")
        return f"{where} at {self.endpoint_url}" if self.endpoint_url else where


def parse_s3_url(url: str) -> S3Location:
    """`s3://bucket/prefix?endpoint_url=http://127.0.0.1:9000&region=us-east-1` -> S3Location.

    Raises ValueError with a message that never repeats the URL or its parts: a mistyped URL may
    hold a secret."""
    try:
        parts = urllib.parse.urlsplit(url.strip())
    except ValueError:
        raise ValueError("image_store_url is not a valid URL (expected s3://bucket/prefix)") from None
    if parts.scheme.lower() != "s3":
        raise ValueError("image_store_url must be an s3://bucket/prefix URL (or empty for the local data directory)")
    if "@" in parts.netloc:
        raise ValueError(f"image_store_url must not hold credentials: {ENV_HINT}")
    bucket = parts.netloc
    if not _BUCKET_RE.fullmatch(bucket):
        raise ValueError("image_store_url must name a bucket: s3://bucket/prefix")
    segments = [urllib.parse.unquote(s) for s in parts.path.split("/") if s]
    if any(not _PREFIX_SEGMENT_RE.fullmatch(s) or s in (".", "..") for s in segments):
        raise ValueError("image_store_url's prefix may hold only letters, digits, '.', '_' and '-' between slashes")
    params: dict[str, str] = {}
    for name, value in urllib.parse.parse_qsl(parts.query, keep_blank_values=True):
        lowered = name.lower()
        if any(word in lowered for word in _CREDENTIAL_WORDS):
            raise ValueError(f"image_store_url must not hold credentials: {ENV_HINT}")
        if lowered not in _QUERY_PARAMS:
            # the name is not echoed either: it may be a pasted secret
            raise ValueError(f"image_store_url has an unknown query parameter; it understands {', '.join(_QUERY_PARAMS)}")
        if not value.strip():
            # likely an unset variable in a template: going to AWS instead would be a surprise
            raise ValueError(f"image_store_url's {lowered} is empty")
        params[lowered] = value.strip()
    endpoint = params.get("endpoint_url")
    if endpoint is not None:
        try:
            ep = urllib.parse.urlsplit(endpoint)
        except ValueError:
            ep = None
        if ep is None or ep.scheme.lower() not in ("http", "https") or not ep.hostname:
            raise ValueError("image_store_url's endpoint_url must be an http:// or https:// URL")
        if ep.username is not None or ep.password is not None:
            raise ValueError(f"image_store_url's endpoint_url must not hold credentials: {ENV_HINT}")
        endpoint = endpoint.rstrip("/")
    return S3Location(bucket=bucket, prefix="/".join(segments), endpoint_url=endpoint, region=params.get("region") or None)


class S3ImageStore:
    """The ImageStore protocol on a bucket; keys, refs and content types exactly as the local
    store's. Objects carry their Content-Type and the Cache-Control our `/images/` route would
    send at write time, so a bucket or CDN serving them directly behaves like the route."""

    def __init__(self, location: S3Location, *, cache_control: str) -> None:
        try:
            from obstore.store import S3Store
        except ImportError:
            raise RuntimeError("image_store_url needs the S3 client: pip install 'mj-adapter[s3]'") from None
        self.location = location
        self.cache_control = cache_control
        kwargs: dict[str, Any] = {}
        # the store reads the AWS_* variables itself; only allow_http needs to know the endpoint
        endpoint = location.endpoint_url or os.environ.get("AWS_ENDPOINT_URL_S3") or os.environ.get("AWS_ENDPOINT_URL")
        if location.endpoint_url:
            kwargs["endpoint"] = location.endpoint_url
        if location.region:
            kwargs["region"] = location.region
        # object_store speaks https only unless told; a plain-http endpoint (MinIO on a LAN,
        # a test server on loopback) was asked for explicitly
        client_options: dict[str, Any] = {"connect_timeout": "5s"}
        if endpoint and endpoint.lower().startswith("http://"):
            client_options["allow_http"] = True
        # its default (10 retries over up to 3 minutes) would hold an image request or a
        # retention pass that long when the store is down; a job's ingest retries on its own
        retry = {"max_retries": 3, "retry_timeout": timedelta(seconds=20)}
        self._store = S3Store(location.bucket, prefix=location.prefix or None, client_options=client_options, retry_config=retry, **kwargs)

    def _object(self, key: str) -> str:
        return f"images/{key}"

    async def put(
        self, data: bytes, content_type: str, *, job_id: str, name: str, durable: bool = True, seed: str | None = None
    ) -> ImageRef:
        # `durable` changes nothing here: an object is stored once the PUT is answered
        import obstore

        if not is_valid_job_id(job_id):
            raise ValueError("invalid job id")
        width, height, mime = await asyncio.to_thread(sniff, data, content_type)
        key = new_key(job_id, name, mime, seed=seed)
        # one PUT (no multipart): results are a few MB at most, and an aborted multipart
        # upload would leave hidden parts behind in the bucket
        await obstore.put_async(
            self._store,
            self._object(key),
            data,
            attributes={"Content-Type": mime, "Cache-Control": self.cache_control},
            use_multipart=False,
        )
        return ImageRef(key=key, width=width, height=height, content_type=mime, size=len(data))

    async def get(self, key: str) -> StoredImage | None:
        import obstore
        from obstore.exceptions import NotFoundError

        if not is_valid_key(key):
            return None
        try:
            result = await obstore.get_async(self._store, self._object(key))
            data = bytes(await result.bytes_async())
        except (FileNotFoundError, NotFoundError):  # obstore raises the former for a missing object
            return None
        return StoredImage(data=data, content_type=content_type_from_key(key) or "")

    async def open(self, key: str) -> ImageFile | None:
        import obstore
        from obstore.exceptions import NotFoundError

        if not is_valid_key(key):
            return None
        try:
            result = await obstore.get_async(self._store, self._object(key))
        except (FileNotFoundError, NotFoundError):  # obstore raises the former for a missing object
            return None
        meta = result.meta

        async def chunks() -> AsyncIterator[bytes]:
            async for chunk in result.stream(min_chunk_size=_STREAM_CHUNK):
                yield bytes(chunk)

        return ImageFile(
            content_type=content_type_from_key(key) or "",
            size=meta["size"],
            mtime=meta["last_modified"].timestamp(),
            chunks=chunks(),
        )

    async def delete_job(self, job_id: str) -> None:
        import obstore

        if not is_valid_job_id(job_id):
            raise ValueError("invalid job id")
        # a job has a handful of objects, so list first, then delete: deleting while paging a
        # listing may skip entries on some S3-compatible servers
        paths: list[str] = []
        async for batch in obstore.list(self._store, f"images/{job_id}/", chunk_size=_DELETE_BATCH):
            paths.extend(meta["path"] for meta in batch)
        for i in range(0, len(paths), _DELETE_BATCH):
            await obstore.delete_async(self._store, paths[i : i + _DELETE_BATCH])
