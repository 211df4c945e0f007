"""Where re-hosted result images live, and the URLs they are served at.

Discord CDN links expire, so every result is stored once and served from
`<public base>/images/<key>`. A key is `<job id>/<token>-<name>.<ext>`: the token (128 random
bits) makes it unguessable, so the URL itself is the capability to read the image, and the job id
in front lets a chat follow-up ("U2" under a pasted image URL) find the job that made it.
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import errno
import io
import mmap
import os
import re
import secrets
import shutil
import stat
import threading
import urllib.parse
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Protocol, runtime_checkable

import msgspec

from adapter.domain.jobs import ImageRef
from adapter.media.decoding import is_mp4, mime_of, open_image

_JOB_ID = r"[A-Za-z0-9_-]{1,64}"
_TOKEN = r"[a-z2-7]{26}"  # 16 random bytes, base32, lower case, unpadded
_NAME = r"[A-Za-z0-9_-]{1,64}"
JOB_ID_RE = re.compile(_JOB_ID)
KEY_RE = re.compile(
    rf"(?P<job>{_JOB_ID})/(?P<token>{_TOKEN})-(?P<name>{_NAME})\.(?P<ext>png|jpg|webp|gif|mp4)"
)

# Midjourney's video results (MP4) are kept and served like its images
_EXT_BY_MIME = {"image/png": "png", "image/jpeg": "jpg", "image/webp": "webp", "image/gif": "gif", "video/mp4": "mp4"}
_MIME_BY_EXT = {ext: mime for mime, ext in _EXT_BY_MIME.items()}
_UNSAFE_NAME_CHARS = re.compile(r"[^A-Za-z0-9_-]+")
_IMAGE_SUFFIX = re.compile(r"\.(png|jpe?g|webp|gif)$", re.IGNORECASE)


class StoredImage(msgspec.Struct, frozen=True):
    data: bytes
    content_type: str

    def __repr__(self) -> str:
        return f"StoredImage({self.content_type}, {len(self.data)} bytes)"


class ImageFile(msgspec.Struct, frozen=True):
    """A stored image opened for serving: `chunks` is its bytes as a stream, read from a file
    that is already open (or an object already fetched), so the answer is whole even if
    retention deletes the image while it is being sent, and a large MP4 is never held in memory.
    `mtime` (epoch seconds) is when it was written: what the route's Cache-Control counts
    retention from."""

    content_type: str
    size: int
    mtime: float
    chunks: AsyncIterator[bytes]


@runtime_checkable
class ImageStore(Protocol):
    async def put(
        self, data: bytes, content_type: str, *, job_id: str, name: str, durable: bool = True, seed: str | None = None
    ) -> ImageRef:
        """Store an image; the returned ref's key is new and unguessable (with `seed`: derived
        from it, see new_key; storing again under that key replaces the file whole). The content type is
        sniffed from the bytes (the argument is only a fallback hint). Never partly visible under
        its key. `durable=False`: the image may be lost in a crash of the machine (not of the
        process) soon after it was stored, for what is worthless by then (progress previews);
        a store may then skip flushing it to disk."""
        ...

    async def get(self, key: str) -> StoredImage | None: ...

    async def open(self, key: str) -> ImageFile | None:
        """The image to serve at `/images/<key>`, or None if there is none (or the key is not
        one of ours: checked before any I/O)."""
        ...

    async def delete_job(self, job_id: str) -> None: ...


# -- keys ------------------------------------------------------------------------------------------


def is_valid_job_id(job_id: str) -> bool:
    return JOB_ID_RE.fullmatch(job_id) is not None


def is_valid_key(key: str) -> bool:
    return KEY_RE.fullmatch(key) is not None


def new_key(job_id: str, name: str, content_type: str, *, seed: str | None = None) -> str:
    """A fresh key: its token is random, or, with `seed` (text that is itself secret, such as
    another image's key), derived from it, so every process that stores the same derived image
    (a converted copy of a result) arrives at the same key and stores it once."""
    if not is_valid_job_id(job_id):
        raise ValueError("invalid job id")
    ext = _EXT_BY_MIME.get(content_type.split(";", 1)[0].strip().lower())
    if ext is None:
        raise ValueError(f"unsupported image type {content_type!r}")
    # callers often pass a file name ("result.png"); the real extension comes from the bytes
    stem = _IMAGE_SUFFIX.sub("", name)
    safe_name = _UNSAFE_NAME_CHARS.sub("-", stem).strip("-")[:32] or "image"
    raw = secrets.token_bytes(16) if seed is None else hashlib.sha256(seed.encode()).digest()[:16]
    token = base64.b32encode(raw).decode("ascii").rstrip("=").lower()
    return f"{job_id}/{token}-{safe_name}.{ext}"


def job_id_from_key(key: str) -> str | None:
    m = KEY_RE.fullmatch(key)
    return m.group("job") if m else None


def content_type_from_key(key: str) -> str | None:
    m = KEY_RE.fullmatch(key)
    return _MIME_BY_EXT[m.group("ext")] if m else None


# -- URLs ------------------------------------------------------------------------------------------


def image_url(public_base: str, key: str) -> str:
    return f"{public_base.rstrip('/')}/images/{key}"


_MAX_OUR_URL_CHARS = 2048


def key_from_url(url: str, public_base: str | None = None) -> str | None:
    """The store key inside one of our image URLs, or None if the URL is not one.

    With `public_base`, only URLs under that base count; without it any URL whose path ends in
    `/images/<job id>/<file>` does (the adapter may sit behind several names or proxies)."""
    url = url.strip()
    # Ours are short http(s) URLs, and nothing else may reach urlsplit: it keeps its last 128
    # inputs and their parts in an lru_cache, so a data URL handed to it would stay pinned in
    # memory (twice its size) long after the request.
    if len(url) > _MAX_OUR_URL_CHARS or not url[:8].lower().startswith(("http://", "https://")):
        return None
    try:
        parts = urllib.parse.urlsplit(url)
    except ValueError:
        return None
    path = parts.path
    if public_base is not None:
        try:
            base = urllib.parse.urlsplit(public_base.strip().rstrip("/"))
        except ValueError:
            return None
        if base.netloc and (parts.scheme.lower(), parts.netloc.lower()) != (
            base.scheme.lower(),
            base.netloc.lower(),
        ):
            return None
        prefix = base.path.rstrip("/") + "/images/"
        if not path.startswith(prefix):
            return None
        candidate = path[len(prefix) :]
    else:
        segments = path.split("/")
        if len(segments) < 3 or segments[-3] != "images":
            return None
        candidate = f"{segments[-2]}/{segments[-1]}"
    candidate = urllib.parse.unquote(candidate)
    return candidate if is_valid_key(candidate) else None


# -- local directory -------------------------------------------------------------------------------


def sniff(data: bytes, hint: str) -> tuple[int, int, str]:
    """(width, height, content type) of image bytes; every store keys and describes an image by
    what its bytes are, the caller's content type is only a fallback."""
    if is_mp4(data):
        return 0, 0, "video/mp4"
    img = open_image(data)
    mime = mime_of(img.format)
    if mime not in _EXT_BY_MIME:
        mime = hint
    return img.size[0], img.size[1], mime


# A durable write of a big file (a grid, its tiles) skips the page cache: copying a few MB into it
# costs more CPU than anything else in storing them (~20 ms for a 7.7 MB grid on the development
# VM, ~6 ms with direct I/O), and the fsync that follows writes them out anyway. Direct I/O wants
# the memory, the length and the offset aligned to the device's block size: the bytes go through a
# page-aligned buffer padded to 4 KiB, and the file is then cut to its real length. Filesystems
# that refuse it (EINVAL: tmpfs before Linux 6.6, some FUSE and network filesystems) get the usual
# buffered write, and are not asked again.
_DIRECT_MIN_BYTES = 1 << 20
_DIRECT_ALIGN = 4096
_direct_io = hasattr(os, "O_DIRECT")
# the buffer's pages made at once rather than by a page fault each
_MMAP_FLAGS = mmap.MAP_PRIVATE | mmap.MAP_ANONYMOUS | getattr(mmap, "MAP_POPULATE", 0)
# One buffer is kept for the next write (making ~15 MB of fresh pages per four-image job costs a
# few ms of CPU): the largest asked for so far, up to this size; a write that finds it in use by
# another thread makes its own.
_KEEP_BUFFER_BYTES = 16 << 20
_kept_lock = threading.Lock()
_kept: mmap.mmap | None = None


def _buffer(size: int) -> tuple[mmap.mmap, bool]:
    """A page-aligned buffer of at least `size` bytes, and whether it is the kept one (then
    `_kept_lock` is held: give it back with `_release`)."""
    global _kept
    if size <= _KEEP_BUFFER_BYTES and _kept_lock.acquire(blocking=False):
        if _kept is None or len(_kept) < size:
            if _kept is not None:
                _kept.close()
            _kept = mmap.mmap(-1, size, flags=_MMAP_FLAGS)
        return _kept, True
    return mmap.mmap(-1, size, flags=_MMAP_FLAGS), False


def _release(buffer: mmap.mmap, kept: bool) -> None:
    if kept:
        _kept_lock.release()
        return
    try:
        buffer.close()
    except BufferError:  # a view of it still held by a traceback: freed with it
        pass


def _write_direct(tmp: Path, data: bytes) -> bool:
    """`data` into the new file `tmp` with direct I/O, fsynced; False (and no file) where the
    filesystem does not take direct I/O."""
    global _direct_io
    size = -(-len(data) // _DIRECT_ALIGN) * _DIRECT_ALIGN
    try:
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC | os.O_DIRECT, 0o666)
    except OSError as exc:
        if exc.errno != errno.EINVAL:
            raise
        _direct_io = False
        return False
    buffer, kept = _buffer(size)
    try:
        buffer[: len(data)] = data
        buffer[len(data) : size] = bytes(size - len(data))  # no bytes of an earlier file on disk
        with memoryview(buffer) as whole, whole[:size] as view:
            done = os.write(fd, view)
            while done < size:  # a short write
                with view[done:] as rest:
                    done += os.write(fd, rest)
        os.ftruncate(fd, len(data))
        os.fsync(fd)
    except BaseException as exc:
        os.close(fd)
        tmp.unlink(missing_ok=True)
        if isinstance(exc, OSError) and exc.errno == errno.EINVAL:
            _direct_io = False
            return False
        raise
    finally:
        _release(buffer, kept)
    os.close(fd)
    return True


def _write_atomically(path: Path, data: bytes, durable: bool = True) -> None:
    """Written whole under a temporary name, then renamed: readers see the whole file or none.
    `durable`: flushed to disk (fsync) before the rename, so a crash of the machine leaves it
    whole too; without, a crash soon after may lose it (or, on some filesystems, leave it empty)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    # the temp name starts with "." and has no valid key shape, so it can never be served
    tmp = path.with_name(f".{path.name}.{secrets.token_hex(6)}.tmp")
    try:
        if durable and _direct_io and len(data) >= _DIRECT_MIN_BYTES and _write_direct(tmp, data):
            os.replace(tmp, path)
            return
        with open(tmp, "xb") as f:
            f.write(data)
            if durable:
                f.flush()
                os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


def _read(path: Path) -> bytes | None:
    try:
        return path.read_bytes()
    except (FileNotFoundError, NotADirectoryError, IsADirectoryError):
        return None


class LocalImageStore:
    """Files under `<root>/images/<job id>/<token>-<name>.<ext>`, i.e. the key is the relative
    path. Keys are checked against the strict key grammar before touching the disk, so no
    `..`, absolute path or separator trick can escape the directory."""

    def __init__(self, root: Path | str) -> None:
        self.root = Path(root)
        self._dir = (self.root / "images").resolve()

    def _file(self, key: str) -> Path | None:
        if not is_valid_key(key):
            return None
        job_id, filename = key.split("/", 1)
        return self._dir / job_id / filename

    async def put(
        self, data: bytes, content_type: str, *, job_id: str, name: str, durable: bool = True, seed: str | None = None
    ) -> ImageRef:
        if not is_valid_job_id(job_id):
            raise ValueError("invalid job id")
        width, height, mime = await asyncio.to_thread(sniff, data, content_type)
        key = new_key(job_id, name, mime, seed=seed)
        target = self._file(key)
        assert target is not None
        await asyncio.to_thread(_write_atomically, target, data, durable)
        return ImageRef(key=key, width=width, height=height, content_type=mime, size=len(data))

    async def get(self, key: str) -> StoredImage | None:
        target = self._file(key)
        if target is None:
            return None
        data = await asyncio.to_thread(_read, target)
        if data is None:
            return None
        return StoredImage(data=data, content_type=content_type_from_key(key) or "")

    async def path(self, key: str) -> Path | None:
        target = self._file(key)
        if target is None:
            return None
        return target if await asyncio.to_thread(target.is_file) else None

    async def open(self, key: str) -> ImageFile | None:
        target = self._file(key)
        if target is None:
            return None
        # the file is opened here, before any header is sent: retention may delete it at any
        # moment, and an open descriptor still reads the whole file after the unlink (a path
        # opened later would fail after its Content-Length went out: a truncated answer)
        opened = await asyncio.to_thread(_open_regular, target)
        if opened is None:  # missing, or deleted by retention in between
            return None
        handle, st = opened
        return ImageFile(
            content_type=content_type_from_key(key) or "",
            size=st.st_size,
            mtime=st.st_mtime,
            chunks=_FileChunks(handle),
        )

    async def delete_job(self, job_id: str) -> None:
        if not is_valid_job_id(job_id):
            raise ValueError("invalid job id")
        await asyncio.to_thread(shutil.rmtree, self._dir / job_id, True)


_READ_CHUNK = 256 * 1024


def _open_regular(target: Path) -> tuple[io.FileIO, os.stat_result] | None:
    try:
        handle = io.FileIO(target, "r")
    except OSError:
        return None
    try:
        st = os.fstat(handle.fileno())
    except OSError:
        handle.close()
        return None
    if not stat.S_ISREG(st.st_mode):
        handle.close()
        return None
    return handle, st


class _FileChunks:
    """An open file's bytes as an async stream, read off the event loop. The descriptor is closed
    at the end, on an error, by `aclose()`, or when the stream is dropped unread (a client that
    went away before the body was sent)."""

    def __init__(self, handle: io.FileIO) -> None:
        self._handle = handle

    def __aiter__(self) -> _FileChunks:
        return self

    async def __anext__(self) -> bytes:
        if self._handle.closed:
            raise StopAsyncIteration
        try:
            chunk = await asyncio.to_thread(self._handle.read, _READ_CHUNK)
        except BaseException:
            self._handle.close()
            raise
        if not chunk:
            self._handle.close()
            raise StopAsyncIteration
        return chunk

    async def aclose(self) -> None:
        self._handle.close()

    def __del__(self) -> None:
        self._handle.close()
