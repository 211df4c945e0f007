"""The simulated CDN: files served at `/attachments/<channel>/<id>/<filename>` behind signed,
expiring query strings shaped like Discord's (`?ex=<hex>&is=<hex>&hm=<hex>&`). A URL whose
signature does not match, or whose `ex` has passed, answers 404 like the real one."""

from __future__ import annotations

import hashlib
import hmac
import mimetypes
import os
import re
import time
from collections import OrderedDict
from typing import NamedTuple
from urllib.parse import parse_qs, urlsplit

from adapter.domain.ids import SnowflakeGenerator
from adapter.simulator.wire import Attachment

DEFAULT_TTL_SECONDS = 24 * 3600
MAX_FILES = 4000  # oldest files are forgotten first; a long demo must not grow without bound

_UNSAFE = re.compile(r"[^A-Za-z0-9._-]+")

CONTENT_TYPES = {
    ".png": "image/png",
    ".webp": "image/webp",
    ".jpg": "image/jpeg",
    ".jpeg": "image/jpeg",
    ".gif": "image/gif",
}


def content_type_for(filename: str) -> str:
    ext = os.path.splitext(filename)[1].lower()
    return CONTENT_TYPES.get(ext) or mimetypes.guess_type(filename)[0] or "application/octet-stream"


def safe_filename(filename: str) -> str:
    name = _UNSAFE.sub("_", os.path.basename(filename)).strip("._") or "file"
    return name[:120]


class CdnFile(NamedTuple):
    data: bytes
    content_type: str


class Cdn:
    def __init__(self, ids: SnowflakeGenerator, *, secret: bytes | None = None, ttl_seconds: int = DEFAULT_TTL_SECONDS) -> None:
        self._ids = ids
        self._secret = secret or os.urandom(32)
        self.ttl_seconds = ttl_seconds
        self.base_url = ""
        self._files: OrderedDict[str, CdnFile] = OrderedDict()

    @staticmethod
    def path(channel_id: str, attachment_id: str, filename: str) -> str:
        return f"/attachments/{channel_id}/{attachment_id}/{filename}"

    def signature(self, path: str, ex: int, issued: int) -> str:
        msg = f"{path}|{ex:x}|{issued:x}".encode()
        return hmac.new(self._secret, msg, hashlib.sha256).hexdigest()

    def signed_url(self, path: str, *, now: float | None = None, ttl_seconds: int | None = None) -> str:
        issued = int(time.time() if now is None else now)
        ex = issued + (self.ttl_seconds if ttl_seconds is None else ttl_seconds)
        return f"{self.base_url}{path}?ex={ex:x}&is={issued:x}&hm={self.signature(path, ex, issued)}&"

    def verify(self, path: str, query: dict[str, list[str]] | str, *, now: float | None = None) -> bool:
        if isinstance(query, str):
            query = parse_qs(query)
        try:
            ex = int(query["ex"][0], 16)
            issued = int(query["is"][0], 16)
            hm = query["hm"][0]
        except (KeyError, IndexError, ValueError):
            return False
        if ex < int(time.time() if now is None else now):
            return False
        return hmac.compare_digest(hm, self.signature(path, ex, issued))

    def put(self, path: str, data: bytes, content_type: str) -> None:
        self._files[path] = CdnFile(data, content_type)
        self._files.move_to_end(path)
        while len(self._files) > MAX_FILES:
            self._files.popitem(last=False)

    def get(self, path: str) -> CdnFile | None:
        return self._files.get(path)

    def get_url(self, url: str) -> CdnFile | None:
        """The file behind one of our signed URLs, or None (foreign, bad signature, expired)."""
        parts = urlsplit(url)
        if not self.verify(parts.path, parts.query):
            return None
        return self.get(parts.path)

    def is_ours(self, url: str) -> bool:
        return bool(self.base_url) and url.startswith(self.base_url + "/attachments/")

    def store(
        self,
        channel_id: str,
        filename: str,
        data: bytes,
        *,
        width: int | None = None,
        height: int | None = None,
        content_type: str | None = None,
    ) -> Attachment:
        """Keep `data` on the CDN and describe it as a Discord attachment."""
        attachment_id = self._ids.next()
        filename = safe_filename(filename)
        ctype = content_type or content_type_for(filename)
        path = self.path(channel_id, attachment_id, filename)
        self.put(path, data, ctype)
        url = self.signed_url(path)
        return Attachment(
            id=attachment_id,
            filename=filename,
            size=len(data),
            url=url,
            proxy_url=url,
            content_type=ctype,
            width=width,
            height=height,
        )
